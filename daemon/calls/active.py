"""A call the engine follows: its tracker (what the events showed so far), the events
not stored yet, and what the watchdog and a cancel need to know about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from ami.outcome import CallTracker
from daemon.logsetup import call_log
from daemon.store.attempts import Answer, StoredEvent


class CallTiming(Protocol):
    """The ring and talk times a call was placed with: its CallRequest, or the profile
    of a call adopted after a restart."""

    @property
    def a_ring_timeout(self) -> int: ...

    @property
    def b_ring_timeout(self) -> int: ...

    @property
    def max_talk_time(self) -> int: ...


@dataclass
class ActiveCall:
    call_uuid: str
    task_id: int
    attempt_no: int
    tracker: CallTracker
    next_seq: int = 1
    pending_events: list[StoredEvent] = field(default_factory=list)
    # The last event number a write on its way carries (the bridge's, a flush's): the
    # call's end, written after it, first tries to store only the events after that.
    events_on_their_way: int = 0
    last_event_at: datetime | None = None
    # How long the call may be quiet on its own: the ring phase (A, then B) before the
    # bridge, the maximum talk time (0 = none) after it.
    ring_phase: timedelta = timedelta(0)
    max_talk: timedelta = timedelta(0)
    closing: bool = False
    # Set by a cancel: a channel of this call that appears from now on is hung up, and
    # an Originate not sent yet is not sent at all.
    cancelled: bool = False
    cancel_time: datetime | None = None  # set by a cancel of a call that was up
    # What Asterisk answered to the Originate when it refused it for this call alone.
    refusal: str | None = None
    # Set when the call was found gone without the events of its end (link down,
    # daemon restarted, Asterisk restarted): its result is not known.
    interrupted: bool = False
    # A answered and this is not stored yet: it goes with the bridge, the next event
    # flush or the end, whichever comes first (only crash recovery reads it earlier).
    unsaved_answer: Answer | None = None
    _logger: Any = None

    def stored_up_to(self, seq: int) -> None:
        """Drop from the buffer the events numbered up to `seq`: a write stored them.
        The buffer holds consecutive numbers, so this is a cut, and a second write that
        stored the same events cuts nothing more."""
        if self.pending_events:
            del self.pending_events[: max(0, seq - self.pending_events[0].seq + 1)]

    def log(self) -> Any:
        # Bound once per call: binding costs as much as rendering a line. The level
        # and the format are looked up per line, so a reload still applies.
        if self._logger is None:
            self._logger = call_log(self.task_id, self.attempt_no, self.call_uuid)
        return self._logger


Calls = dict[str, ActiveCall]  # the calls followed, by call uuid


def follow(
    calls: Calls,
    call_uuid: str,
    task_id: int,
    attempt_no: int,
    dial_strings: dict[str, str],
    timing: CallTiming,
) -> ActiveCall:
    """Start following a call: its events are routed to it from now on."""
    call = ActiveCall(call_uuid, task_id, attempt_no, CallTracker(call_uuid, dial_strings))
    call.ring_phase = timedelta(seconds=timing.a_ring_timeout + timing.b_ring_timeout)
    call.max_talk = timedelta(seconds=timing.max_talk_time)
    calls[call_uuid] = call
    return call
