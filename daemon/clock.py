"""Time, injected: the daemon reads the clock only through a `Clock`, so tests drive time
instead of patching it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol

from daemon.models import format_time


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep_until(self, moment: datetime) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, moment: datetime) -> None:
        delay = (moment - self.now()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)


class FakeClock:
    """A clock that moves only when a test calls `advance`; sleepers wake on time."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._changed = asyncio.Condition()

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, moment: datetime) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._now >= moment)

    async def advance(self, seconds: float) -> None:
        async with self._changed:
            self._now += timedelta(seconds=seconds)
            self._changed.notify_all()


def now_text(clock: Clock) -> str:
    return format_time(clock.now())


async def sleep_until_woken(clock: Clock, woken: asyncio.Event, until: datetime | None) -> None:
    """Sleep until `until` (never, if None) or until `woken` is set, whichever is first."""
    waiters: list[asyncio.Future[object]] = [asyncio.ensure_future(woken.wait())]
    if until is not None:
        waiters.append(asyncio.ensure_future(clock.sleep_until(until)))
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.wait(waiters)
