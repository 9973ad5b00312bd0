"""What happened to one attempt, decided from its AMI events alone.

`CallTracker` folds the events of one call, in arrival order, into the facts that matter
(which A number answered, whether B answered and was bridged, dial statuses, hangup
causes, times) and reports milestones as they happen. `decide()` is the same fold as one
pure function, for tests on recorded event streams. Nothing here does I/O or reads a
clock: event times are passed in.

The call has one of the two shapes of docs/call-flow.md. Direct (one A number): the
Originate itself dials A's channel (uniqueid `<uuid>`), which then dials B. Local
(several A numbers): the Originate's Local;2 half (uniqueid `<uuid>-a`) dials the A
numbers, Local;1 (uniqueid `<uuid>`) dials B. Either way B is dialled by `<uuid>`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from ami.events import AmiEvent, header, name

A_SIDE_SUFFIX = "-a"
A_CONTEXT = "callbackd-a"
# What the Originate of the Local shape dials; the direct shape's dials A itself.
LOCAL_A_DIAL_STRING = f"s@{A_CONTEXT}"
CHANNEL_STATE_UP = "6"
INVALID_NUMBER_CAUSES = frozenset({1, 28})
# Q.850 21 "call rejected": the phone or its network refused the call (SIP 603 Decline,
# 403 Forbidden). Dial() reports it as NOANSWER; only the dialled channel's cause tells.
# The dialplan's own refusal also hangs up with 21, on the Local channels: it is told by
# its UserEvent (CallbackdRejected), never by a dialled leg's cause.
REJECTED_CAUSE = 21


class Result(StrEnum):
    SUCCESS = "success"
    A_BUSY = "a_busy"
    A_NO_ANSWER = "a_no_answer"
    A_CONGESTION = "a_congestion"
    A_UNAVAILABLE = "a_unavailable"
    A_INVALID = "a_invalid"
    A_REJECTED = "a_rejected"
    B_BUSY = "b_busy"
    B_NO_ANSWER = "b_no_answer"
    B_CONGESTION = "b_congestion"
    B_UNAVAILABLE = "b_unavailable"
    B_INVALID = "b_invalid"
    B_REJECTED = "b_rejected"
    A_HUNG_UP = "a_hung_up_before_b"
    REJECTED = "rejected"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"


COMMENTS = {
    Result.SUCCESS: "A and B connected",
    Result.A_BUSY: "A busy",
    Result.A_NO_ANSWER: "A did not answer",
    Result.A_CONGESTION: "A congestion",
    Result.A_UNAVAILABLE: "A unavailable",
    Result.A_INVALID: "A number invalid",
    Result.A_REJECTED: "A rejected",
    Result.B_BUSY: "B busy",
    Result.B_NO_ANSWER: "B did not answer",
    Result.B_CONGESTION: "B congestion",
    Result.B_UNAVAILABLE: "B unavailable",
    Result.B_INVALID: "B number invalid",
    Result.B_REJECTED: "B rejected",
    Result.A_HUNG_UP: "A hung up before B answered",
    Result.REJECTED: "rejected by the PBX",
    Result.INTERRUPTED: "interrupted",
    Result.CANCELLED: "cancelled",
}


class Milestone(StrEnum):
    A_ANSWERED = "a_answered"
    B_ANSWERED = "b_answered"
    BRIDGED = "bridged"
    ENDED = "ended"


@dataclass(frozen=True)
class Outcome:
    result: Result
    comment: str
    answered_a_number: str | None = None
    a_dial_status: str | None = None
    b_dial_status: str | None = None
    a_hangup_cause: int | None = None
    b_hangup_cause: int | None = None
    # The technology's own cause, where Asterisk gives it (Hangup's TechCause): for a
    # PJSIP channel, the SIP response that ended it (486, 603, ...).
    a_tech_cause: int | None = None
    b_tech_cause: int | None = None
    a_answer_time: datetime | None = None
    bridged_time: datetime | None = None
    end_time: datetime | None = None
    invalid_numbers: tuple[str, ...] = ()

    @property
    def success(self) -> bool:
        return self.result is Result.SUCCESS

    @property
    def a_answered(self) -> bool:
        return self.a_answer_time is not None


def dial_side(ev: AmiEvent, call_uuid: str) -> str | None:
    """Which leg a DialBegin/DialState/DialEnd of the call dials: "A", "B" or None
    (the Originate's own dial of the Local shape's Local;1)."""
    uid = header(ev, "Uniqueid")
    if uid == call_uuid:
        return "B"
    if uid == call_uuid + A_SIDE_SUFFIX:
        return "A"
    # The Originate's own dial has no Uniqueid. In the direct shape it rings A; its
    # DialEnd carries no DialString, but only a DialBegin registers a leg.
    if not uid and header(ev, "DestUniqueid") == call_uuid:
        return None if header(ev, "DialString") == LOCAL_A_DIAL_STRING else "A"
    return None


# The DialStatus of an A that the direct shape's Originate rang and that sent no
# DialEnd: the ring timeout of the Originate ends A's ringing silently. Its Hangup
# cause tells (19), and so does the OriginateResponse's Reason (3) when it comes
# before the call's last Hangup (it may come after: it does not pass through Stasis).
_CAUSE_STATUS = {17: "BUSY", 18: "NOANSWER", 19: "NOANSWER", 34: "CONGESTION"}
_REASON_STATUS = {"3": "NOANSWER", "5": "BUSY", "8": "CONGESTION"}


def _cause(ev: AmiEvent, key: str = "Cause") -> int | None:
    text = header(ev, key)
    return int(text) if text.isdigit() else None


# DialStatus of one dialled leg -> the side's result when no leg answered.
_A_STATUS = {
    "BUSY": Result.A_BUSY,
    "NOANSWER": Result.A_NO_ANSWER,
    "CONGESTION": Result.A_CONGESTION,
    "CHANUNAVAIL": Result.A_UNAVAILABLE,
    "DONTCALL": Result.REJECTED,
    "TORTURE": Result.REJECTED,
    "INVALIDARGS": Result.REJECTED,
}
_B_STATUS = {
    "BUSY": Result.B_BUSY,
    "NOANSWER": Result.B_NO_ANSWER,
    "CONGESTION": Result.B_CONGESTION,
    "CHANUNAVAIL": Result.B_UNAVAILABLE,
    "DONTCALL": Result.REJECTED,
    "TORTURE": Result.REJECTED,
    "INVALIDARGS": Result.REJECTED,
}
# With several A numbers ringing, the reason shown is the most telling one.
_A_PRIORITY = [
    Result.A_NO_ANSWER,
    Result.A_BUSY,
    Result.A_REJECTED,
    Result.A_CONGESTION,
    Result.A_UNAVAILABLE,
    Result.A_INVALID,
    Result.REJECTED,
]


@dataclass
class _Leg:
    number: str
    uniqueid: str = ""
    dial_status: str | None = None
    cause: int | None = None
    tech_cause: int | None = None


@dataclass
class CallTracker:
    """The state of one call, fed its events one by one."""

    call_uuid: str
    # Dial string as Asterisk reports it in DialBegin (after the technology, e.g.
    # "1001@phones") -> the A number it rings.
    a_dial_strings: Mapping[str, str]
    b_number: str = ""
    a_legs: dict[str, _Leg] = field(default_factory=dict)  # by DestUniqueid
    b_leg: _Leg | None = None
    live_channels: set[str] = field(default_factory=set)
    seen_channel: bool = False
    answered_a: _Leg | None = None
    a_answer_time: datetime | None = None
    b_answer_time: datetime | None = None
    bridged_time: datetime | None = None
    end_time: datetime | None = None
    rejected: bool = False
    originate_failed: bool = False
    originate_reason: str = ""

    @property
    def ended(self) -> bool:
        return self.end_time is not None

    @property
    def placed_nothing(self) -> bool:
        """The Originate failed and no channel of the call has appeared: Asterisk could
        not create A's channel (one A number: no such endpoint, say). Its channel events
        may still be on their way; only Asterisk's channel list can tell they are not."""
        return self.originate_failed and not self.seen_channel

    def feed(self, ev: AmiEvent, at: datetime) -> list[Milestone]:
        """Take one event of this call; return the milestones it reached."""
        if self.ended:
            return []
        handler = _HANDLERS.get(name(ev) or "")
        reached = handler(self, ev, at) if handler else []
        if self._over():
            self.end_time = at
            reached.append(Milestone.ENDED)
        return reached

    def restore(
        self, a_answered_at: datetime | None, a_number: str | None, bridged_at: datetime | None
    ) -> None:
        """Start from what was stored of the call by an earlier run of the daemon, where
        its replayed events did not tell it already."""
        if a_answered_at is not None and self.answered_a is None:
            self.answered_a = _Leg(number=a_number or "")
            self.a_answer_time = a_answered_at
        if bridged_at is not None and self.bridged_time is None:
            self.bridged_time = bridged_at

    def catch_up(self, listed: Iterable[AmiEvent], at: datetime) -> list[Milestone]:
        """Take what `CoreShowChannels` lists of this call after its events were missed
        (the AMI link was down, or the daemon was not running). Local;1, whose uniqueid
        is the call uuid, is answered only once an A phone answered, and is in a bridge
        only once B answered too: the answer and the bridge are what can be recovered."""
        channels = list(listed)
        origin = next((ev for ev in channels if header(ev, "Uniqueid") == self.call_uuid), None)
        if origin is None:
            return []
        reached = []
        if self.answered_a is None and header(origin, "ChannelState") == CHANNEL_STATE_UP:
            self.answered_a = _Leg(number=self._answered_number(channels), dial_status="ANSWER")
            self.a_answer_time = at
            reached.append(Milestone.A_ANSWERED)
        if self.bridged_time is None and header(origin, "BridgeId"):
            if self.b_leg is None:
                self.b_leg = _Leg(number=self.b_number, dial_status="ANSWER")
            self.b_answer_time = self.b_answer_time or at
            self.bridged_time = at
            reached.append(Milestone.BRIDGED)
        return reached

    def _answered_number(self, channels: Iterable[AmiEvent]) -> str:
        """The A number whose phone channel is up, when its name tells (Local/... and
        other channels named after their dial string); the only one, if there is one."""
        numbers = set(self.a_dial_strings.values())
        if len(numbers) == 1:
            return next(iter(numbers))
        for ev in channels:
            if header(ev, "ChannelState") != CHANNEL_STATE_UP:
                continue
            # "Local/1001@phones-0000001a;1" was dialled as "1001@phones".
            dialled = header(ev, "Channel").split("/", 1)[-1].rsplit("-", 1)[0]
            if dialled in self.a_dial_strings:
                return self.a_dial_strings[dialled]
        return ""

    def _over(self) -> bool:
        # Only the channels tell when the call is over. Asterisk writes OriginateResponse
        # to AMI directly while channel events pass through Stasis, so when many calls
        # start together a Failure arrives before the call's first Newchannel (on the
        # test PBX: 123 of 300 busy A numbers started 100 at a time), and the channels
        # that follow say why it failed. A call whose channel never appears is closed by
        # the engine's watchdog, which finds no channel of it.
        return self.seen_channel and not self.live_channels

    def _on_newchannel(self, ev: AmiEvent, at: datetime) -> list[Milestone]:
        self.live_channels.add(header(ev, "Uniqueid"))
        self.seen_channel = True
        return []

    def _on_hangup(self, ev: AmiEvent, at: datetime) -> list[Milestone]:
        uid = header(ev, "Uniqueid")
        self.live_channels.discard(uid)
        leg = self.a_legs.get(uid)
        if leg is None and self.b_leg is not None and self.b_leg.uniqueid == uid:
            leg = self.b_leg
        if leg is not None and not (leg.uniqueid == self.call_uuid and self._b_failed()):
            # In the direct shape A's own channel dialled B, and Asterisk hangs it up
            # with B's cause when B failed: that cause is B's, not A's.
            leg.cause = _cause(ev)
            leg.tech_cause = _cause(ev, "TechCause")
        return []

    def _b_failed(self) -> bool:
        b = self.b_leg
        return b is not None and b.dial_status not in (None, "ANSWER", "CANCEL")

    def _on_dial_begin(self, ev: AmiEvent, at: datetime) -> list[Milestone]:
        side, dest = dial_side(ev, self.call_uuid), header(ev, "DestUniqueid")
        if side == "A":
            dial_string = header(ev, "DialString")
            number = self.a_dial_strings.get(dial_string, dial_string)
            self.a_legs[dest] = _Leg(number=number, uniqueid=dest)
        elif side == "B":
            self.b_leg = _Leg(number=self.b_number, uniqueid=dest)
        return []

    def _on_dial_end(self, ev: AmiEvent, at: datetime) -> list[Milestone]:
        side, dest = dial_side(ev, self.call_uuid), header(ev, "DestUniqueid")
        status = header(ev, "DialStatus")
        if side == "A" and dest in self.a_legs:
            leg = self.a_legs[dest]
            leg.dial_status = status
            if status == "ANSWER" and self.answered_a is None:
                self.answered_a = leg
                self.a_answer_time = at
                return [Milestone.A_ANSWERED]
        elif side == "B":
            if self.b_leg is None:  # its DialBegin came while the events were missed
                self.b_leg = _Leg(number=self.b_number, uniqueid=dest)
            self.b_leg.dial_status = status
            if status == "ANSWER" and self.b_answer_time is None:
                self.b_answer_time = at
                return [Milestone.B_ANSWERED]
        return []

    def _on_bridge_enter(self, ev: AmiEvent, at: datetime) -> list[Milestone]:
        b_up = self.b_leg is not None and self.b_answer_time is not None
        if (
            b_up
            and self.bridged_time is None
            and header(ev, "Uniqueid")
            in (
                self.call_uuid,
                self.b_leg.uniqueid if self.b_leg else "",
            )
        ):
            self.bridged_time = at
            return [Milestone.BRIDGED]
        return []

    def _on_originate_response(self, ev: AmiEvent, at: datetime) -> list[Milestone]:
        if header(ev, "Response") == "Failure":
            self.originate_failed = True
            self.originate_reason = header(ev, "Reason")
        return []

    def _on_user_event(self, ev: AmiEvent, at: datetime) -> list[Milestone]:
        kind = header(ev, "UserEvent")
        if kind == "CallbackdRejected":
            self.rejected = True
        elif kind == "CallbackdBDialResult" and self.b_leg is None:
            # B's channel could not be created: Dial() rang nothing and says why here.
            self.b_leg = _Leg(number=self.b_number, dial_status=header(ev, "DialStatus"))
        return []

    def outcome(self) -> Outcome:
        """The attempt's result from what is known now. Before the call ended this is
        the result of an interrupted call, unless it was already bridged."""
        result = self._result()
        answered = self.answered_a
        a_ended = self._a_ended_leg()
        b = self.b_leg
        return Outcome(
            result=result,
            comment=COMMENTS[result],
            answered_a_number=(answered.number or None) if answered else None,
            a_dial_status=answered.dial_status if answered else self._a_status(),
            b_dial_status=b.dial_status if b else None,
            a_hangup_cause=a_ended.cause if a_ended else None,
            b_hangup_cause=b.cause if b else None,
            a_tech_cause=a_ended.tech_cause if a_ended else None,
            b_tech_cause=b.tech_cause if b else None,
            a_answer_time=self.a_answer_time,
            bridged_time=self.bridged_time,
            end_time=self.end_time,
            invalid_numbers=tuple(
                leg.number
                for leg in self.a_legs.values()
                if leg.cause in INVALID_NUMBER_CAUSES and leg is not answered
            ),
        )

    def _result(self) -> Result:
        if self.bridged_time is not None:
            return Result.SUCCESS
        if not self.ended:
            return Result.INTERRUPTED
        if self.rejected:
            return Result.REJECTED
        if self.answered_a is None:
            return self._a_failure()
        return self._b_failure()

    def _status(self, leg: _Leg) -> str | None:
        if leg.dial_status is None and leg.uniqueid == self.call_uuid:
            by_cause = _CAUSE_STATUS.get(leg.cause) if leg.cause is not None else None
            return by_cause or _REASON_STATUS.get(self.originate_reason)
        return leg.dial_status

    def _a_status(self) -> str | None:
        statuses = {status for leg in self.a_legs.values() if (status := self._status(leg))}
        return ",".join(sorted(statuses)) or None

    def _a_ended_leg(self) -> _Leg | None:
        """The A leg whose end is reported: the one that answered, else the first that
        hung up with a cause."""
        if self.answered_a is not None:
            return self.answered_a
        return next((leg for leg in self.a_legs.values() if leg.cause is not None), None)

    def _a_failure(self) -> Result:
        results = set()
        for leg in self.a_legs.values():
            if leg.cause in INVALID_NUMBER_CAUSES:
                results.add(Result.A_INVALID)
            elif leg.cause == REJECTED_CAUSE:
                results.add(Result.A_REJECTED)
            elif (status := self._status(leg)) is not None and status in _A_STATUS:
                results.add(_A_STATUS[status])
            elif status == "CANCEL":
                results.add(Result.A_NO_ANSWER)  # the ring timeout of the Originate
        for candidate in _A_PRIORITY:
            if candidate in results:
                return candidate
        return Result.A_NO_ANSWER if self.a_legs else Result.A_UNAVAILABLE

    def _b_failure(self) -> Result:
        b = self.b_leg
        if b is None or b.dial_status in (None, "CANCEL", "ANSWER"):
            # B never rang, or its ringing was cancelled because the A side went away.
            return Result.A_HUNG_UP
        if b.cause in INVALID_NUMBER_CAUSES:
            return Result.B_INVALID
        if b.cause == REJECTED_CAUSE:
            return Result.B_REJECTED
        return _B_STATUS.get(b.dial_status, Result.B_NO_ANSWER)


_HANDLERS = {
    "Newchannel": CallTracker._on_newchannel,
    "Hangup": CallTracker._on_hangup,
    "DialBegin": CallTracker._on_dial_begin,
    "DialEnd": CallTracker._on_dial_end,
    "BridgeEnter": CallTracker._on_bridge_enter,
    "UserEvent": CallTracker._on_user_event,
    "OriginateResponse": CallTracker._on_originate_response,
}


def decide(
    call_uuid: str,
    a_dial_strings: Mapping[str, str],
    events: Iterable[tuple[AmiEvent, datetime]],
) -> Outcome:
    """The outcome of a call from its events in arrival order (pure)."""
    tracker = CallTracker(call_uuid, a_dial_strings)
    for ev, at in events:
        tracker.feed(ev, at)
    return tracker.outcome()
