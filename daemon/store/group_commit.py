"""Group commit: writes submitted while a transaction is being written go together into
the next one.

Under load the call engine writes several small things per call (claims, bridges,
ends, events); one transaction each would cost one round trip to the writer thread and
one fsync each. Here a write never waits for a timer: the first one starts a
transaction at once, and whatever arrives meanwhile shares the next. Each write runs
inside its own savepoint, so one that fails is undone alone and only its caller sees
the error; a write the store refuses (disk full) fails the whole group.

A large write (a bulk add of 10,000 tasks) is written `alone`: the small writes waiting
with it go first, in their own transaction, and none of them waits for its commit.

Where each statement is a round trip (the shared store), a group is first run `undo_by_
retry`: without a savepoint per write, two round trips a write fewer. If one of its
writes fails, that transaction is rolled back and the group is run again with a
savepoint each, so the failing write is still undone alone: each write is a function of
the store's state, and its second run does what its first would have.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from daemon.store.backend import StoreUnavailable

T = TypeVar("T")
Work = Callable[[sqlite3.Connection], Any]
Waiting = tuple[Work, asyncio.Future[Any]]
# Runs a function on the writer's connection, on its thread.
Runner = Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]


class GroupCommit:
    def __init__(self, run: Runner, *, undo_by_retry: bool = False) -> None:
        self._run = run
        self._undo_by_retry = undo_by_retry
        self._waiting: list[Waiting] = []
        self._alone: list[Waiting] = []
        self._writer: asyncio.Task[None] | None = None

    async def write(self, work: Callable[[sqlite3.Connection], T], *, alone: bool = False) -> T:
        """Run `work` in the next transaction (one of its own if `alone`); return its
        result once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        (self._alone if alone else self._waiting).append((work, future))
        if self._writer is None:
            # Started as a task, not inline: the writes submitted in this loop turn
            # still join the first transaction.
            self._writer = loop.create_task(self._write_groups())
        return await future

    async def drain(self) -> None:
        """Wait until every write submitted so far is written."""
        while self._writer is not None:
            await asyncio.shield(self._writer)

    async def _write_groups(self) -> None:
        try:
            while self._waiting or self._alone:
                if self._waiting:
                    group, self._waiting = self._waiting, []
                else:
                    group, self._alone = self._alone[:1], self._alone[1:]
                await self._write_group(group)
        finally:
            self._writer = None
            for _, future in [*self._waiting, *self._alone]:  # only left when cancelled
                future.cancel()
            self._waiting, self._alone = [], []

    async def _write_group(self, group: list[Waiting]) -> None:
        retry = self._undo_by_retry
        try:
            results = await self._run(lambda conn: _in_transaction(conn, group, retry))
        except BaseException as exc:
            for _, future in group:
                if future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(_refused(exc))
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


def _refused(exc: BaseException) -> BaseException:
    if isinstance(exc, sqlite3.OperationalError):
        unavailable = StoreUnavailable(f"the store refused a write: {exc}")
        unavailable.__cause__ = exc
        return unavailable
    return exc


def _in_transaction(
    conn: sqlite3.Connection, group: Sequence[Waiting], undo_by_retry: bool
) -> list[tuple[bool, Any]]:
    if undo_by_retry:
        results = _without_savepoints(conn, group)
        if results is not None:
            return results
    with _transaction(conn):
        results = _each_in_savepoint(conn, group)
        conn.execute("COMMIT")
    return results


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """A transaction begun; rolled back if what runs in it raises before it ended (its
    COMMIT, or a ROLLBACK of its own, is the body's to send)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _each_in_savepoint(
    conn: sqlite3.Connection, group: Sequence[Waiting]
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


def _without_savepoints(
    conn: sqlite3.Connection, group: Sequence[Waiting]
) -> list[tuple[bool, Any]] | None:
    """The group in one transaction without a savepoint per write; None, nothing of it
    kept, when one of its writes failed and others are to be kept (the caller runs it
    again with savepoints)."""
    with _transaction(conn):
        try:
            results = [(True, work(conn)) for work, _ in group]
        except sqlite3.OperationalError:
            raise  # the store refuses writes: every write of the group fails
        except Exception as exc:
            conn.execute("ROLLBACK")
            return [(False, exc)] if len(group) == 1 else None
        conn.execute("COMMIT")
    return results
