"""Group commit: writes submitted together share one transaction, a failing write is
undone alone, a store that refuses writes fails every write of the group, and a large
write goes alone, after the small ones waiting with it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from daemon.store.backend import StoreUnavailable
from daemon.store.db import Worker
from daemon.store.group_commit import GroupCommit


@dataclass
class Counted:
    """The writer's connection, counting the transactions run on it."""

    worker: Worker
    transactions: int = 0

    async def run(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        self.transactions += 1
        return await self.worker.run(work)


@pytest.fixture(params=[False, True], ids=["savepoints", "undo by retry"])
def undo_by_retry(request: pytest.FixtureRequest) -> bool:
    # Both ways of undoing a failing write alone keep the same promises.
    return bool(request.param)


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[Counted]:
    worker = Worker("test-writer")
    await worker.open(tmp_path / "cb.db")
    await worker.run(lambda conn: conn.execute("CREATE TABLE t (v INTEGER UNIQUE)"))
    yield Counted(worker)
    await worker.close()


def insert(value: int) -> Callable[[sqlite3.Connection], int]:
    def work(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t (v) VALUES (?)", (value,))
        return value

    return work


async def stored(writer: Counted) -> list[int]:
    rows = await writer.worker.run(
        lambda conn: conn.execute("SELECT v FROM t ORDER BY v").fetchall()
    )
    return [row[0] for row in rows]


async def test_writes_submitted_together_share_one_transaction(
    writer: Counted, undo_by_retry: bool
) -> None:
    commit = GroupCommit(writer.run, undo_by_retry=undo_by_retry)
    results = await asyncio.gather(*(commit.write(insert(v)) for v in range(10)))
    assert results == list(range(10))
    assert await stored(writer) == list(range(10))
    assert writer.transactions == 1


async def test_a_write_that_comes_during_a_transaction_goes_into_the_next(
    writer: Counted, undo_by_retry: bool
) -> None:
    commit = GroupCommit(writer.run, undo_by_retry=undo_by_retry)
    first = asyncio.create_task(commit.write(insert(1)))
    await asyncio.sleep(0)  # the first transaction is on its way
    await asyncio.gather(first, *(commit.write(insert(v)) for v in (2, 3)))
    assert await stored(writer) == [1, 2, 3]
    assert writer.transactions == 2


async def test_a_failing_write_is_undone_alone(writer: Counted, undo_by_retry: bool) -> None:
    commit = GroupCommit(writer.run, undo_by_retry=undo_by_retry)

    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (v) VALUES (100)")
        conn.execute("INSERT INTO t (v) VALUES (1)")  # UNIQUE: fails

    results = await asyncio.gather(
        commit.write(insert(1)),
        commit.write(half_then_fail),
        commit.write(insert(2)),
        return_exceptions=True,
    )
    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert await stored(writer) == [1, 2]


async def test_a_refused_write_fails_the_whole_group(writer: Counted, undo_by_retry: bool) -> None:
    commit = GroupCommit(writer.run, undo_by_retry=undo_by_retry)

    def refused(conn: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    results = await asyncio.gather(
        commit.write(insert(1)), commit.write(refused), return_exceptions=True
    )
    assert all(isinstance(r, StoreUnavailable) for r in results)
    assert await stored(writer) == []
    assert await commit.write(insert(5)) == 5  # later writes go through again


async def test_a_large_write_waits_alone_behind_the_small_ones_that_came_with_it(
    writer: Counted, undo_by_retry: bool
) -> None:
    commit = GroupCommit(writer.run, undo_by_retry=undo_by_retry)
    order: list[str] = []

    def tagged(tag: str, value: int) -> Callable[[sqlite3.Connection], int]:
        def work(conn: sqlite3.Connection) -> int:
            order.append(tag)
            return insert(value)(conn)

        return work

    first = asyncio.create_task(commit.write(tagged("small 1", 1)))
    await asyncio.sleep(0)  # the first transaction is on its way
    bulk = commit.write(tagged("bulk", 100), alone=True)
    await asyncio.gather(
        first, bulk, commit.write(tagged("small 2", 2)), commit.write(tagged("small 3", 3))
    )
    assert order == ["small 1", "small 2", "small 3", "bulk"]
    assert writer.transactions == 3  # small 1; small 2 and 3; the bulk on its own
    assert await stored(writer) == [1, 2, 3, 100]


async def test_a_write_failing_alone_in_its_transaction_keeps_nothing(
    writer: Counted, undo_by_retry: bool
) -> None:
    commit = GroupCommit(writer.run, undo_by_retry=undo_by_retry)

    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (v) VALUES (100)")
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await commit.write(half_then_fail)
    assert await commit.write(insert(1)) == 1
    assert await stored(writer) == [1]
