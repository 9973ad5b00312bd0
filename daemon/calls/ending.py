"""Closing an attempt: its outcome from the tracker (a cancel or an interruption named
as such) is stored with the call's last events, the store moving the task on in the
same write, then the listeners are told."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from ami.outcome import COMMENTS, Result
from daemon.calls.active import ActiveCall, Calls
from daemon.calls.listener import AttemptListener
from daemon.calls.writes import CallWrites
from daemon.clock import Clock
from daemon.metrics import Metrics
from daemon.models import format_time
from daemon.store.attempts import AttemptNotes, AttemptRepository


class CallEnder:
    def __init__(
        self,
        calls: Calls,
        attempts: AttemptRepository,
        clock: Clock,
        writes: CallWrites,
        listener: AttemptListener,
        metrics: Metrics | None,
    ) -> None:
        self._calls = calls
        self._attempts = attempts
        self._clock = clock
        self._writes = writes
        self._listener = listener
        self._metrics = metrics

    def close(self, call: ActiveCall, at: datetime) -> None:
        """Close the call's attempt (once; the write runs beside event intake)."""
        if call.closing:
            return
        call.closing = True
        if call.tracker.end_time is None:
            call.tracker.end_time = at
        self._writes.spawn(self._finish(call))

    async def _finish(self, call: ActiveCall) -> None:
        outcome = call.tracker.outcome()
        if not outcome.success and (call.cancelled or call.interrupted):
            result = Result.CANCELLED if call.cancelled else Result.INTERRUPTED
            outcome = replace(outcome, result=result, comment=COMMENTS[result])
        end = outcome.end_time or self._clock.now()
        notes = AttemptNotes(refusal=call.refusal, cancel_time=call.cancel_time)
        events, call.pending_events = call.pending_events, []
        on_their_way = call.events_on_their_way
        # The store decides the task's next state (daemon/lifecycle.py) in the same write.
        ended = await self._writes.stored(
            call,
            lambda: self._attempts.end(
                call.call_uuid, call.task_id, outcome, end, events, notes, on_their_way
            ),
        )
        self._calls.pop(call.call_uuid, None)
        step = ended.step
        call.log().info(
            "attempt ended",
            result=str(outcome.result),
            comment=outcome.comment,
            answered_a_number=outcome.answered_a_number,
            task_finished=step is None or step.finished,
            next_attempt=format_time(step.next_attempt) if step and step.next_attempt else None,
        )
        if ended.closed and self._metrics is not None:
            self._metrics.attempts.labels(outcome=str(outcome.result)).inc()
        await self._listener.attempt_ended(call.task_id, call.call_uuid, outcome, step)
