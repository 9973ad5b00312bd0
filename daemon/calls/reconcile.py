"""Checking the followed calls against the channels Asterisk has (`CoreShowChannels`):
after every (re)login, for calls a previous run of the daemon started (adopted), and
for calls whose events stopped coming (the watchdog). A call still up is followed to
its end; one that is gone is closed ("interrupted" unless it was already bridged)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

import structlog

from ami.client import AmiClient, AmiError
from ami.events import linkedid, uniqueid
from ami.originate import channel, dial_string_of
from config import Settings
from daemon.calls.active import ActiveCall, Calls, follow
from daemon.calls.ending import CallEnder
from daemon.calls.routing import EventRouter
from daemon.clock import Clock
from daemon.models import parse_time
from daemon.plan import profile_for
from daemon.store.attempts import AttemptRepository, LiveAttempt

log = structlog.get_logger("callbackd.engine")


class Reconciler:
    def __init__(
        self,
        ami: AmiClient,
        calls: Calls,
        attempts: AttemptRepository,
        clock: Clock,
        settings: Callable[[], Settings],
        router: EventRouter,
        ender: CallEnder,
        hang_up_channel: Callable[[str], Coroutine[Any, Any, None]],
    ) -> None:
        self._ami = ami
        self._calls = calls
        self._attempts = attempts
        self._clock = clock
        self._settings = settings
        self._router = router
        self._ender = ender
        self._hang_up_channel = hang_up_channel

    async def reconcile(self, only: set[str] | None = None) -> None:
        """Match the attempts that are in a call with the channels Asterisk has."""
        channels = await self._ami.core_show_channels()
        by_call: dict[str, set[str]] = {}
        for ev in channels:
            by_call.setdefault(linkedid(ev), set()).add(uniqueid(ev))
        if only is None:
            for live in await self._attempts.live():
                if live.call_uuid not in self._calls:
                    await self._adopt(live)
        now = self._clock.now()
        for call in list(self._calls.values()):
            if call.closing or (only is not None and call.call_uuid not in only):
                continue
            present = by_call.get(call.call_uuid, set())
            if present:
                call.tracker.live_channels = set(present)
                call.tracker.seen_channel = True
                call.last_event_at = now
                # A talk looked at by the watchdog is routine, once every timeout.
                routine = only is not None and call.tracker.bridged_time is not None
                line = call.log().debug if routine else call.log().info
                line("call still up; following it", channels=len(present))
                listed = [ev for ev in channels if linkedid(ev) == call.call_uuid]
                for milestone in call.tracker.catch_up(listed, now):
                    self._router.on_milestone(call, milestone, now)
                if call.cancelled:
                    # Cancelled while the link was down: its hang-up never got through.
                    for uid in sorted(present):
                        await self._hang_up_channel(uid)
            elif call.tracker.ended:
                # Its end was among the stored events: the result is known.
                self._ender.close(call, now)
            elif call.tracker.placed_nothing:
                # Nothing rang: A's channel could not be created ("A unavailable").
                call.log().info("originate failed and no channel of the call exists")
                self._ender.close(call, now)
            else:
                call.log().warning("call gone without its end; closing it as interrupted")
                call.interrupted = True
                self._ender.close(call, now)

    async def _adopt(self, live: LiveAttempt) -> None:
        """Follow an attempt that a previous run of the daemon started."""
        record = await self._attempts.task(live.task_id)
        extension_id = record.task.extension_id if record is not None else None
        profile = profile_for(self._settings(), extension_id)
        dial_strings = {
            dial_string_of(channel(profile.a_channel, n)): n for n in live.plan.a_numbers
        }
        call = follow(
            self._calls, live.call_uuid, live.task_id, live.attempt_no, dial_strings, profile
        )
        call.tracker.b_number = live.plan.b_number
        # The stored events tell the dial statuses and causes seen so far; the attempt
        # row adds what may have been stored before its events (the answer, the bridge).
        for ev, received in await self._attempts.stored_events(live.call_uuid):
            call.tracker.feed(ev, received)
        call.next_seq = await self._attempts.next_event_seq(live.call_uuid)
        call.tracker.restore(
            parse_time(live.a_answer_time) if live.a_answer_time else None,
            live.answered_a_number,
            parse_time(live.bridged_time) if live.bridged_time else None,
        )

    async def check_silent_calls(self, following: bool) -> None:
        """Check against Asterisk's channel list the calls quiet for longer than they
        may be (`calls.event_silence_timeout` past their ring phase, or past the maximum
        talk time once bridged): one gone is closed, one still up is followed on. A
        talk sends no events, so a long call is looked at once every timeout."""
        now = self._clock.now()
        timeout = timedelta(seconds=self._settings().calls.event_silence_timeout)
        silent = {
            c.call_uuid
            for c in self._calls.values()
            if not c.closing
            and c.last_event_at is not None
            and now - c.last_event_at > _quiet_limit(c, timeout)
        }
        if silent and following:
            try:
                await self.reconcile(only=silent)
            except AmiError as exc:
                log.warning("watchdog check failed", error=str(exc))


# An Originate's failure may come before the call's channel events (it does not pass
# through Stasis); past this much quiet none are coming, and the channel list is asked.
PLACED_NOTHING_GRACE = timedelta(seconds=2)


def _quiet_limit(call: ActiveCall, timeout: timedelta) -> timedelta:
    """How long a call may be quiet before Asterisk's channel list is asked about it:
    its ring phase until it is bridged, its maximum talk time after, plus `timeout`."""
    if call.tracker.placed_nothing:
        return PLACED_NOTHING_GRACE
    return (call.ring_phase if call.tracker.bridged_time is None else call.max_talk) + timeout
