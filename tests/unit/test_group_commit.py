"""Group commit: writes submitted together share one transaction, a failing write is
undone alone, and a store that refuses writes fails every write of the group."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from daemon.store.db import Database, StoreUnavailable
from daemon.store.group_commit import GroupCommit


class CountingDatabase(Database):
    transactions = 0

    async def write(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        self.transactions += 1
        return await super().write(work)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[CountingDatabase]:
    opened = await CountingDatabase.open(tmp_path / "cb.db")
    async with opened.transaction() as tx:
        await tx.execute("CREATE TABLE t (v INTEGER UNIQUE)")
    yield opened
    await opened.close()


def insert(value: int) -> Callable[[sqlite3.Connection], int]:
    def work(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t (v) VALUES (?)", (value,))
        return value

    return work


async def stored(db: Database) -> list[int]:
    return [row[0] for row in await db.fetch_all("SELECT v FROM t ORDER BY v")]


async def test_writes_submitted_together_share_one_transaction(db: CountingDatabase) -> None:
    commit = GroupCommit(db)
    results = await asyncio.gather(*(commit.write(insert(v)) for v in range(10)))
    assert results == list(range(10))
    assert await stored(db) == list(range(10))
    assert db.transactions == 1


async def test_a_write_that_comes_during_a_transaction_goes_into_the_next(
    db: CountingDatabase,
) -> None:
    commit = GroupCommit(db)
    first = asyncio.create_task(commit.write(insert(1)))
    await asyncio.sleep(0)  # the first transaction is on its way
    await asyncio.gather(first, *(commit.write(insert(v)) for v in (2, 3)))
    assert await stored(db) == [1, 2, 3]
    assert db.transactions == 2


async def test_a_failing_write_is_undone_alone(db: CountingDatabase) -> None:
    commit = GroupCommit(db)

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
    assert await stored(db) == [1, 2]


async def test_a_refused_write_fails_the_whole_group(db: CountingDatabase) -> None:
    commit = GroupCommit(db)

    def refused(conn: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    results = await asyncio.gather(
        commit.write(insert(1)), commit.write(refused), return_exceptions=True
    )
    assert all(isinstance(r, StoreUnavailable) for r in results)
    assert await stored(db) == []
    assert await commit.write(insert(5)) == 5  # later writes go through again
