"""The store writes of the calls: each runs as a side task so a slow disk never stalls
event intake, is tried again while the store refuses writes, and the buffered events of
every call are flushed in one batch on a timer (and at shutdown)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import structlog

from daemon.calls.active import ActiveCall, Calls
from daemon.clock import Clock
from daemon.store.attempts import AttemptRepository
from daemon.store.until_stored import until_stored

log = structlog.get_logger("callbackd.engine")
T = TypeVar("T")

EVENT_FLUSH_INTERVAL = 0.5


class CallWrites:
    def __init__(self, attempts: AttemptRepository, clock: Clock, calls: Calls) -> None:
        self._attempts = attempts
        self._clock = clock
        self._calls = calls
        self._side_tasks: set[asyncio.Task[None]] = set()

    async def stored(self, call: ActiveCall, write: Callable[[], Awaitable[T]]) -> T:
        """A call's answer, bridge, end or give-back must reach the disk: while the
        store refuses writes (a full disk) it is tried again, and the call stays known
        to the engine until it is stored."""
        return await until_stored(
            self._clock, write, log, task_id=call.task_id, call_uuid=call.call_uuid
        )

    def spawn(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_task_done)

    def _side_task_done(self, task: asyncio.Task[None]) -> None:
        self._side_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("engine side task failed", exc_info=task.exception())

    def save_answer(self, call: ActiveCall) -> None:
        if call.unsaved_answer is not None:
            at, number = call.unsaved_answer
            call.unsaved_answer = None
            self.spawn(
                self.stored(call, lambda: self._attempts.mark_answered(call.call_uuid, at, number))
            )

    async def flush_events(self) -> None:
        for call in self._calls.values():
            if not call.closing:
                self.save_answer(call)  # shares the transaction of the events
        taken = [
            (call, call.pending_events[-1].seq)
            for call in self._calls.values()
            if not call.closing and call.pending_events
        ]
        batch = [ev for call, _ in taken for ev in call.pending_events]
        for call, last in taken:
            call.events_on_their_way = last
        await self._attempts.save_events(batch)
        # Dropped from the buffers only once stored; events that came meanwhile stay.
        for call, last in taken:
            call.stored_up_to(last)

    async def drain(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - the shutdown grace
        """Wait for the store writes in flight (shutdown, tests). Writes a refusing
        store still holds back after `timeout` are dropped: the next start reconciles
        their calls from what is on disk."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    while self._side_tasks:
                        await asyncio.gather(*list(self._side_tasks), return_exceptions=True)
                    # May hand answers to new side tasks.
                    await until_stored(self._clock, self.flush_events, log)
                    if not self._side_tasks:
                        return
        except TimeoutError:
            left = list(self._side_tasks)
            log.error(
                "store writes left undone at shutdown; the next start reconciles them",
                writes=len(left),
            )
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)
