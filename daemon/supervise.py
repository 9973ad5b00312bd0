"""Side tasks are supervised: one that ends on its own is a bug, so the daemon says so
and stops (with a failing exit status, so systemd restarts it) instead of limping on."""

from __future__ import annotations

import asyncio

import structlog

log = structlog.get_logger("callbackd")


class Supervisor:
    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.failed = False

    def watch(self, task: asyncio.Task[None]) -> asyncio.Task[None]:
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        log.error("side task ended, stopping", task=task.get_name(), exc_info=task.exception())
        self.failed = True
        self.stop.set()
