"""Group commit: small writes submitted while a transaction is being written go
together into the next one.

Under load the call engine writes several small things per call (claims, bridges,
ends, events); one transaction each would cost one round trip to the writer thread and
one fsync each. Here a write never waits for a timer: the first one starts a
transaction at once, and whatever arrives meanwhile shares the next. Each write runs
inside its own savepoint, so one that fails is undone alone and only its caller sees
the error; a write the store refuses (disk full) fails the whole group.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from daemon.store.db import Database

T = TypeVar("T")
Work = Callable[[sqlite3.Connection], Any]


class GroupCommit:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._waiting: list[tuple[Work, asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in the next transaction; return its result once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._waiting.append((work, future))
        if self._writer is None:
            # Started as a task, not inline: the writes submitted in this loop turn
            # still join the first transaction.
            self._writer = loop.create_task(self._write_groups())
        return await future

    async def _write_groups(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                await self._write_group(group)
        finally:
            self._writer = None
            for _, future in self._waiting:  # only left when cancelled
                future.cancel()
            self._waiting = []

    async def _write_group(self, group: list[tuple[Work, asyncio.Future[Any]]]) -> None:
        try:
            results = await self._db.write(lambda conn: _each_in_savepoint(conn, group))
        except BaseException as exc:
            for _, future in group:
                if future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), (ok, value) in zip(group, results, strict=True):
            if future.done():
                continue  # its caller stopped waiting; the write stands
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


def _each_in_savepoint(
    conn: sqlite3.Connection, group: Sequence[tuple[Work, asyncio.Future[Any]]]
) -> list[tuple[bool, Any]]:
    results: list[tuple[bool, Any]] = []
    for work, _ in group:
        conn.execute("SAVEPOINT one_write")
        try:
            value = work(conn)
        except sqlite3.OperationalError:
            raise  # the store refuses writes: every write of the group fails
        except Exception as exc:
            conn.execute("ROLLBACK TO one_write")
            conn.execute("RELEASE one_write")
            results.append((False, exc))
            continue
        conn.execute("RELEASE one_write")
        results.append((True, value))
    return results
