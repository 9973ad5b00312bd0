"""Routing AMI events to their calls: each event goes to the call its Linkedid,
Uniqueid or DestLinkedid names (all carry the call uuid), is buffered for the store, and fed to the
call's tracker; what the tracker says was reached (answer, bridge, end) is acted on."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from ami.events import AmiEvent, header, linkedid, name, uniqueid
from ami.outcome import A_SIDE_SUFFIX, Milestone
from daemon.calls.active import ActiveCall, Calls
from daemon.calls.ending import CallEnder
from daemon.calls.listener import AttemptListener
from daemon.calls.writes import CallWrites
from daemon.models import format_event_time
from daemon.store.attempts import Answer, AttemptRepository, StoredEvent


class EventRouter:
    def __init__(
        self,
        calls: Calls,
        attempts: AttemptRepository,
        writes: CallWrites,
        ender: CallEnder,
        listener: AttemptListener,
        hang_up_channel: Callable[[str], Coroutine[Any, Any, None]],
    ) -> None:
        self._calls = calls
        self._attempts = attempts
        self._writes = writes
        self._ender = ender
        self._listener = listener
        self._hang_up_channel = hang_up_channel
        self._last_time: datetime | None = None
        self._last_text = ""

    def route(self, ev: AmiEvent, at: datetime) -> None:
        call = self._calls.get(linkedid(ev)) or self._calls.get(
            uniqueid(ev).removesuffix(A_SIDE_SUFFIX)
        )
        if call is None:
            # The Originate's own dial names no channel of its own, only the one it
            # rings: in a call of one A number, that is A.
            call = self._calls.get(header(ev, "DestLinkedid"))
            if call is None:
                return
        call.last_event_at = at
        call.pending_events.append(StoredEvent(call.call_uuid, call.next_seq, self._text(at), ev))
        call.next_seq += 1
        for milestone in call.tracker.feed(ev, at):
            self.on_milestone(call, milestone, at)
        if call.cancelled and name(ev) == "Newchannel":
            # A channel that came up after the cancel (the Originate was in flight).
            self._writes.spawn(self._hang_up_channel(uniqueid(ev)))

    def _text(self, at: datetime) -> str:
        # The events of one read share their arrival time: format it once.
        if at is not self._last_time:
            self._last_time, self._last_text = at, format_event_time(at)
        return self._last_text

    def on_milestone(self, call: ActiveCall, milestone: Milestone, at: datetime) -> None:
        tracker = call.tracker
        # At info a call logs two lines, when it starts and when it ends (with what
        # happened); the steps between are debug lines, and stored with its events.
        if milestone is Milestone.A_ANSWERED:
            number = tracker.answered_a.number if tracker.answered_a else None
            call.log().debug("A answered", number=number)
            call.unsaved_answer = (at, number)
        elif milestone is Milestone.BRIDGED:
            call.log().debug("A and B bridged")
            # Stored at once, with its `success` webhook and the answer if that is not
            # stored yet: after a crash, a call found gone counts as a success only if
            # its bridge was stored.
            answer, call.unsaved_answer = call.unsaved_answer, None
            # The events so far go with it: what a restart needs to know of the legs.
            events = list(call.pending_events)
            if events:
                call.events_on_their_way = events[-1].seq
            self._writes.spawn(self._bridged(call, at, answer, events))
        elif milestone is Milestone.ENDED:
            self._ender.close(call, at)

    async def _bridged(
        self, call: ActiveCall, at: datetime, answer: Answer | None, events: list[StoredEvent]
    ) -> None:
        await self._writes.stored(
            call,
            lambda: self._attempts.mark_bridged(call.call_uuid, call.task_id, at, answer, events),
        )
        if events:
            call.stored_up_to(events[-1].seq)
        await self._listener.call_bridged(call.task_id, call.call_uuid)
