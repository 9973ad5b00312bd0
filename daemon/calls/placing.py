"""Placing calls: each attempt is claimed and its row written before its one Originate
is sent (never twice, not after a reconnect or a restart); an Originate that certainly
rang nobody is given back, and a cancel hangs up every channel of the task's call."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

from ami.client import AmiActionError, AmiClient, AmiError, AmiNotConnected, AmiSentButUnanswered
from ami.originate import CallRequest, a_dial_strings, originate_fields
from config import Settings
from daemon.calls.active import ActiveCall, Calls, follow
from daemon.calls.ending import CallEnder
from daemon.calls.gate import OriginateGate, gives_back
from daemon.calls.listener import AttemptListener
from daemon.calls.writes import CallWrites
from daemon.clock import Clock
from daemon.plan import plan_attempt
from daemon.store.attempts import AttemptRepository, Claim, TaskRecord


class Placer:
    def __init__(
        self,
        ami: AmiClient,
        calls: Calls,
        attempts: AttemptRepository,
        clock: Clock,
        settings: Callable[[], Settings],
        gate: OriginateGate,
        writes: CallWrites,
        ender: CallEnder,
        listener: AttemptListener,
        may_dial: Callable[[], bool] = lambda: True,
    ) -> None:
        self._ami = ami
        self._may_dial = may_dial
        self._calls = calls
        self._attempts = attempts
        self._clock = clock
        self._settings = settings
        self._gate = gate
        self._writes = writes
        self._ender = ender
        self._listener = listener
        # Tasks whose Originate is on its way: the webhook outbox holds their webhooks
        # until Asterisk answers it, because an attempt Asterisk refuses while it stops
        # is given back and its `before` webhook withdrawn; the panel must never hear
        # of an attempt that rang nobody.
        self.originating: set[int] = set()

    async def place_many(self, records: Sequence[TaskRecord]) -> dict[int, str]:
        now = self._clock.now()
        settings = self._settings()
        planned = []
        for record in records:
            attempt_no = record.attempts_made + 1
            call_uuid = str(uuid.uuid4())
            request, plan = plan_attempt(record, settings, attempt_no, call_uuid)
            claim = Claim(record.id, record.scheduler_id, call_uuid, attempt_no, plan)
            planned.append((record, request, claim))
        self.originating.update(record.id for record, _, _ in planned)
        try:
            return await self._send_claimed(planned, now)
        finally:
            self.originating.difference_update(record.id for record, _, _ in planned)
            self._listener.originates_answered()

    async def _send_claimed(
        self, planned: Sequence[tuple[TaskRecord, CallRequest, Claim]], now: datetime
    ) -> dict[int, str]:
        claimed = await self._attempts.claim([claim for _, _, claim in planned], now)
        calls = []
        for record, request, claim in planned:
            if claim.call_uuid not in claimed:
                continue
            call = follow(
                self._calls,
                claim.call_uuid,
                record.id,
                claim.attempt_no,
                a_dial_strings(request),
                request,
            )
            call.tracker.b_number = request.b_number
            call.last_event_at = now
            await self._listener.attempt_started(record, claim.call_uuid)
            calls.append((record, request, call))
        sent = await asyncio.gather(*(self._originate(*c) for c in calls))
        return {
            record.id: call.call_uuid
            for (record, _, call), ok in zip(calls, sent, strict=True)
            if ok
        }

    async def _originate(self, record: TaskRecord, request: CallRequest, call: ActiveCall) -> bool:
        """Send the attempt's one Originate; False if it was certainly not sent."""
        if call.cancelled:
            call.log().info("cancelled before the Originate; nothing is sent")
            self._ender.close(call, self._clock.now())
            return True
        if not self._may_dial():
            # This host's lease on the shared store ran out (frozen, cut off): the
            # others may take its claims any moment, so it rings nobody.
            call.log().warning("lease of this host is over; attempt given back")
            await self._give_back(record, call)
            return False
        try:
            await self._ami.originate(originate_fields(request))
            if self._gate.accepted():
                self._listener.ready_to_place()
        except AmiNotConnected:
            # Certainly not sent: give the attempt back.
            await self._give_back(record, call)
            return False
        except AmiActionError as exc:
            refusal = self._gate.refused(exc.message, self._clock.now())
            if gives_back(refusal):
                # Nothing rang, and every call would meet the same answer now: the
                # attempt is given back and the task starts again once the PBX can
                # take it (Asterisk stopping: once AMI is back).
                call.log().info(
                    "originate refused; attempt given back", reason=exc.message, refusal=refusal
                )
                await self._give_back(record, call, exc.message)
                return False
            call.log().warning("originate refused", reason=exc.message)
            call.tracker.rejected = True
            call.refusal = exc.message
            self._ender.close(call, self._clock.now())
        except AmiSentButUnanswered:
            # It may ring: never resend. Reconcile or the watchdog settles it.
            call.log().warning("originate unanswered; the call is followed by its events")
        call.log().info("originate sent", a_numbers=request.a_numbers, b_number=request.b_number)
        return True

    async def _give_back(
        self, record: TaskRecord, call: ActiveCall, refusal: str | None = None
    ) -> None:
        """Undo a claim whose Originate rang nobody: no attempt is used. `refusal`:
        what the PBX answered, kept with the task."""
        self._calls.pop(call.call_uuid)
        now = self._clock.now()
        await self._writes.stored(
            call, lambda: self._attempts.release(record.id, call.call_uuid, now, refusal)
        )
        await self._listener.attempt_withdrawn(record.id)

    async def hang_up_task(self, task_id: int) -> bool:
        """Hang up every channel of the task's call in progress."""
        calls = [c for c in self._calls.values() if c.task_id == task_id and not c.closing]
        for call in calls:
            call.cancelled = True
            call.cancel_time = self._clock.now()
            call.log().info(
                "task cancelled; hanging up its call", channels=len(call.tracker.live_channels)
            )
            for uid in sorted(call.tracker.live_channels | {call.call_uuid}):
                await self.hang_up_channel(uid)
        return bool(calls)

    async def hang_up_channel(self, uid: str) -> None:
        # Already gone, or AMI is down: the call ends or is reconciled anyway.
        with contextlib.suppress(AmiError):
            await self._ami.hangup(uid)
