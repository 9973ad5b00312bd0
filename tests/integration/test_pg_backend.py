"""The PostgreSQL store backend keeps the promises of the SQLite one: writes one at a
time and durable when answered, reads in one snapshot that sees them, a failing write
keeps nothing, and the store's own entity code runs on it unchanged."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable

import pytest

from daemon.models import TaskStatus
from daemon.store.attempts import AttemptRepository, StoredEvent
from daemon.store.db import StoreUnavailable
from daemon.store.pg.backend import PgDatabase
from daemon.store.queries import q
from daemon.store.tasks import ChangeOutcome, TaskFilter, TaskRepository
from tests.pg import TestPg

pytestmark = pytest.mark.pg
NOW = "2026-01-01 00:00:00"


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PgDatabase]:
    db = await PgDatabase.open(pg_url)
    await db.write(lambda conn: conn.execute("CREATE TABLE counter (n INTEGER)"))
    await db.write(lambda conn: conn.execute("INSERT INTO counter VALUES (0)"))
    yield db
    await db.close()


def _add_one(conn: sqlite3.Connection) -> int:
    n = int(conn.execute("SELECT n FROM counter").fetchone()[0])
    conn.execute("UPDATE counter SET n = ?", (n + 1,))
    return n + 1


async def test_writes_never_run_side_by_side(store: PgDatabase) -> None:
    results = await asyncio.gather(*(store.write(_add_one) for _ in range(30)))
    assert sorted(results) == list(range(1, 31))
    assert await store.fetch_value("SELECT n FROM counter") == 30


async def test_a_failing_write_keeps_nothing(store: PgDatabase) -> None:
    def fails(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE counter SET n = :n", {"n": 99})
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await store.write(fails)
    assert await store.fetch_value("SELECT n FROM counter") == 0


async def test_a_write_refused_by_postgresql_is_undone_alone_in_its_group(
    store: PgDatabase,
) -> None:
    # A broken constraint leaves PostgreSQL's transaction aborted: the writes after it
    # in the same group still go in, once its savepoint is rolled back.
    await store.write(lambda conn: conn.execute("CREATE TABLE seen (v INTEGER UNIQUE)"))

    def insert(value: int) -> Callable[[sqlite3.Connection], int]:
        def work(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT INTO seen (v) VALUES (?)", (value,))
            return value

        return work

    results = await asyncio.gather(
        *(store.write(insert(v)) for v in (1, 2, 2, 3)), return_exceptions=True
    )
    assert results[:2] == [1, 2] and results[3] == 3
    assert isinstance(results[2], sqlite3.IntegrityError)
    rows = await store.fetch_all("SELECT v FROM seen ORDER BY v")
    assert [row[0] for row in rows] == [1, 2, 3]


async def test_each_event_of_a_call_is_stored_once_whatever_writes_carry_it(
    store: PgDatabase,
) -> None:
    attempts = AttemptRepository(store)  # type: ignore[arg-type]
    call = "7b0c6a52-3f0e-4d6b-9a53-0c2f5e9d1a10"

    def events(seqs: range) -> list[StoredEvent]:
        return [StoredEvent(call, seq, f"{NOW}.{seq:03d}", {"N": str(seq)}) for seq in seqs]

    await attempts.save_events(events(range(1, 4)))  # a flush
    await attempts.save_events(events(range(1, 7)))  # the end, with the same three
    await attempts.save_events(events(range(2, 4)))  # a late retry of the flush

    stored = await attempts.stored_events(call)
    assert [event["N"] for event, _ in stored] == [str(n) for n in range(1, 7)]
    assert await store.fetch_value("SELECT count(*) FROM call_event_batches") == 2


async def test_rows_are_read_by_position_and_by_name(store: PgDatabase) -> None:
    row = await store.fetch_one("SELECT n, n + 1 AS next FROM counter")
    assert (row[0], row["next"], row.keys()) == (0, 1, ["n", "next"])


async def test_a_result_still_held_keeps_its_rows_while_later_statements_run(
    store: PgDatabase,
) -> None:
    def interleaved(conn: sqlite3.Connection) -> tuple[object, ...]:
        rows = conn.execute("SELECT n FROM generate_series(1, 3) AS n ORDER BY n")
        first = rows.fetchone()
        changed = conn.execute("UPDATE counter SET n = n + 1")
        conn.execute("SELECT 42").fetchone()
        return first[0], [row[0] for row in rows], changed.rowcount, rows.fetchone()

    assert await store.write(interleaved) == (1, [2, 3], 1, None)


async def test_the_stores_own_queries_and_code_run_on_it(store: PgDatabase) -> None:
    tasks = TaskRepository(store)  # type: ignore[arg-type]
    queue = {
        "client_id": "acme",
        "name": "support",
        "comment": "",
        "status": "on",
        "concurrent_task_limit": 10,
        "interval_id": None,
        "now": NOW,
    }
    first = await store.write(lambda conn: conn.execute(q("insert_queue"), queue).fetchone())
    second = await store.write(lambda conn: conn.execute(q("insert_queue"), queue).fetchone())
    await store.write(
        lambda conn: conn.execute(
            "INSERT INTO tasks (id, scheduler_id, params, status, next_attempt, create_date)"
            " VALUES (?, ?, ?, 'scheduled', ?, ?)",
            (7, first[0], '{"a_number": "1001", "b_number": "1002"}', NOW, NOW),
        )
    )

    cancelled = await tasks.cancel(first[0], 7, NOW)
    page, total = await tasks.list(first[0], TaskFilter(statuses=(TaskStatus.FINISHED,)), 10, 0)

    assert (first[0], second[0]) == (1, 2)
    assert cancelled.outcome is ChangeOutcome.CHANGED
    assert total == 1
    assert page[0]["finish_comment"] == "cancelled"


async def test_a_postgresql_restart_fails_a_write_whole_and_reads_and_later_writes_go_on(
    store: PgDatabase, testpg: TestPg
) -> None:
    await store.write(_add_one)
    assert await store.fetch_value("SELECT n FROM counter") == 1
    await asyncio.to_thread(testpg.restart)

    read_at_once = await store.fetch_value("SELECT n FROM counter")  # a read is run again
    with pytest.raises(StoreUnavailable):
        await store.write(_add_one)
    after = await store.write(_add_one)

    assert read_at_once == 1
    assert after == 2  # the failed write kept nothing
    assert await store.fetch_value("SELECT n FROM counter") == 2


async def test_values_compare_as_sqlite_compares_them(store: PgDatabase) -> None:
    # A JSON field is text here, a number in SQLite; a NUL cannot be stored here at all.
    await store.write(lambda conn: conn.execute("CREATE TABLE docs (body TEXT)"))
    await store.write(lambda conn: conn.execute("INSERT INTO docs VALUES ('{\"ext\": 101}')"))

    by_number = await store.fetch_value(
        "SELECT count(*) FROM docs WHERE body ->> '$.ext' = ?", (101,)
    )
    by_nul = await store.fetch_value("SELECT count(*) FROM docs WHERE body = ?", ("a\x00",))

    assert (by_number, by_nul) == (1, 0)
