"""When Originates may be sent: the dialplan contexts callbackd needs are loaded, and
the PBX has not refused Originates for a reason that is true of every call.

A refusal is sorted by `classify_refusal` (a pure table, docs/decisions.md): one that
says the PBX cannot take calls now gives the attempt back (no try used) and holds every
start, /readyz naming why, until a re-check finds it fixed; one about this call alone
ends the attempt "rejected by the PBX".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import structlog

from ami.client import AmiClient
from ami.dialplan import dialplan_problem, missing_contexts
from daemon import notify

log = structlog.get_logger("callbackd.engine")

# How long no attempt starts after a PBX-wide refusal; then one is tried again.
REFUSAL_PAUSE = timedelta(seconds=60)


class Refusal(StrEnum):
    """What the manager's answer to an Originate says about the PBX."""

    STOPPING = "stopping"  # Asterisk shuts down or restarts; the link goes down next
    NOT_PERMITTED = "not_permitted"  # the AMI user may not originate (manager.conf)
    NO_DIALPLAN = "no_dialplan"  # callbackd's dialplan is not loaded (any more)
    PBX_FAILED = "pbx_failed"  # the PBX could not start the Originate at all
    FINAL = "final"  # about this call alone: the attempt ends "rejected by the PBX"


# Asterisk's words (lower case, matched as a part of its Message) -> what they mean.
REFUSALS: tuple[tuple[str, Refusal], ...] = (
    ("shutting down", Refusal.STOPPING),
    ("permission denied", Refusal.NOT_PERMITTED),
    ("access forbidden", Refusal.NOT_PERMITTED),
    ("extension does not exist", Refusal.NO_DIALPLAN),
    ("originate failed", Refusal.PBX_FAILED),
)


def classify_refusal(message: str) -> Refusal:
    """What an Originate's error answer means (pure)."""
    text = message.lower()
    for words, refusal in REFUSALS:
        if words in text:
            return refusal
    return Refusal.FINAL


def gives_back(refusal: Refusal) -> bool:
    """Whether the attempt is given back: nothing rang, and the next call would meet
    the same answer, so using a try on it would burn every due task."""
    return refusal is not Refusal.FINAL


def hold_reason(refusal: Refusal, message: str) -> str:
    """What /readyz says while `refusal` holds the starts."""
    fix = {
        Refusal.NOT_PERMITTED: "the AMI user needs 'originate' in its write= classes in "
        "manager.conf, then 'manager reload'",
        Refusal.NO_DIALPLAN: "callbackd's dialplan is not loaded: include "
        "config/asterisk/extensions_callbackd.conf and run 'dialplan reload'",
        Refusal.PBX_FAILED: "see the Asterisk log",
    }.get(refusal, "")
    return f"the PBX refused the Originate ({message})" + (f": {fix}" if fix else "")


@dataclass(frozen=True)
class Hold:
    refusal: Refusal
    reason: str
    since: datetime


class OriginateGate:
    def __init__(self) -> None:
        # Set while ShowDialPlan does not find callbackd's contexts.
        self.dialplan_error: str | None = None
        # Set while a PBX-wide refusal holds the starts; `_trying` once the pause is
        # over and the next dispatch may try again.
        self.hold: Hold | None = None
        self._trying = False

    @property
    def may_start(self) -> bool:
        return self.dialplan_error is None and (self.hold is None or self._trying)

    @property
    def open(self) -> bool:
        """Nothing holds the Originates (what /readyz reports)."""
        return self.dialplan_error is None and self.hold is None

    @property
    def dialplan_missing(self) -> bool:
        """The dialplan check failed, or an Originate said the dialplan is gone."""
        return self.dialplan_error is not None or (
            self.hold is not None and self.hold.refusal is Refusal.NO_DIALPLAN
        )

    @property
    def error(self) -> str | None:
        if self.dialplan_error is not None:
            return self.dialplan_error
        return self.hold.reason if self.hold is not None else None

    def refused(self, message: str, now: datetime) -> Refusal:
        """Take an Originate's error answer; returns what it means. A refusal that
        holds the starts is logged once, not at every attempt it gives back."""
        refusal = classify_refusal(message)
        if refusal in (Refusal.FINAL, Refusal.STOPPING):
            return refusal
        reason = hold_reason(refusal, message)
        if self.hold is None or self.hold.reason != reason:
            log.error("the PBX cannot take calls now; no attempt starts", error=reason)
            notify.status(f"not ready: {reason}")
        self.hold = Hold(refusal, reason, now)
        self._trying = False
        return refusal

    def accepted(self) -> bool:
        """An Originate was accepted; True if that ended a hold."""
        if self.hold is None:
            return False
        self.hold, self._trying = None, False
        log.info("the PBX takes Originates again; ready")
        notify.status("ready")
        return True

    def try_again(self, now: datetime) -> bool:
        """After the pause, let the next dispatch try again (a fixed PBX needs no
        restart of callbackd); True when that is now. Until then /readyz keeps naming
        the cause."""
        if self.hold is None or self._trying or now - self.hold.since < REFUSAL_PAUSE:
            return False
        self._trying = True
        log.info("trying the Originate again")
        return True

    async def check_dialplan(self, ami: AmiClient) -> None:
        """Look for callbackd's dialplan contexts; a hold for a missing dialplan ends
        as soon as they are found (no need to wait out the pause)."""
        error = dialplan_problem(await missing_contexts(ami))
        if error is not None and error != self.dialplan_error:
            log.error("dialplan check failed", error=error)  # once, not at every recheck
            notify.status(f"not ready: {error}")
        self.dialplan_error = error
        if error is None and self.hold is not None and self.hold.refusal is Refusal.NO_DIALPLAN:
            self._trying = True
