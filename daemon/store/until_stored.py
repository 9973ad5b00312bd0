"""Writes that must land: tried again, after growing pauses, while the store refuses
them. A full disk passes; stopping the daemon or dropping the write would not help."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from daemon.clock import Clock
from daemon.store.db import StoreUnavailable

T = TypeVar("T")

# Doubling from the first pause to the longest, so a full disk costs a few tries a
# minute, not a hot loop.
FIRST_PAUSE_S = 1.0
LONGEST_PAUSE_S = 30.0


async def until_stored(
    clock: Clock, write: Callable[[], Awaitable[T]], log: Any, **context: object
) -> T:
    """Run `write()` until the store takes it; each refusal is logged with `context`."""
    pause = FIRST_PAUSE_S
    while True:
        try:
            return await write()
        except StoreUnavailable as exc:
            log.error(
                "store refused a write; trying again", retry_in=pause, error=str(exc), **context
            )
        await clock.sleep_until(clock.now() + timedelta(seconds=pause))
        pause = min(pause * 2, LONGEST_PAUSE_S)
