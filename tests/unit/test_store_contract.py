"""The contract every store backend must keep (daemon/store/backend.py), run against each
backend there is: the embedded SQLite store on a real file, and the shared PostgreSQL
store on the throwaway PostgreSQL of tools/testpg. A new backend is one more entry in
BACKENDS and must pass all of it."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from daemon.lifecycle import Claimed
from daemon.models import QueueInput, QueueUpdate, TaskInput, TaskStatus, parse_time
from daemon.store.backend import StoreBackend
from daemon.store.db import Database
from daemon.store.pg.backend import PgDatabase
from daemon.store.queues import QueueRepository
from daemon.store.tasks import ChangeOutcome, IdempotentRequest, TaskRepository, transition

NOW = "2026-01-01 00:00:00"


async def _sqlite(request: pytest.FixtureRequest) -> Database:
    directory: Path = request.getfixturevalue("tmp_path")
    return await Database.open(directory / "contract.db")


async def _postgres(request: pytest.FixtureRequest) -> Database:
    backend: Any = await PgDatabase.open(request.getfixturevalue("pg_url"))
    return backend  # the same interface; the tests use it through Database's


BACKENDS: dict[str, Callable[[pytest.FixtureRequest], Awaitable[Database]]] = {
    "sqlite": _sqlite,
    "postgres": _postgres,
}


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Database]:
    backend = await BACKENDS[request.param](request)
    await backend.write(lambda conn: conn.execute("CREATE TABLE counter (n INTEGER)"))
    await backend.write(lambda conn: conn.execute("INSERT INTO counter VALUES (0)"))
    yield backend
    await backend.close()


def test_every_backend_offers_the_backend_interface(store: Database) -> None:
    assert isinstance(store, StoreBackend)


async def _count(store: Database) -> int:
    return int(await store.fetch_value("SELECT n FROM counter"))


def _add_one(conn: sqlite3.Connection) -> int:
    # Read, then write: wrong counts if two writes ever ran side by side.
    n = int(conn.execute("SELECT n FROM counter").fetchone()[0])
    conn.execute("UPDATE counter SET n = ?", (n + 1,))
    return n + 1


async def test_writes_never_run_side_by_side(store: Database) -> None:
    results = await asyncio.gather(*(store.write(_add_one) for _ in range(50)))
    assert sorted(results) == list(range(1, 51))
    assert await _count(store) == 50


async def test_a_read_sees_every_write_answered_before_it(store: Database) -> None:
    for expected in range(1, 21):
        await store.write(_add_one)
        assert await _count(store) == expected


async def test_a_read_begun_later_is_not_held_back_by_an_older_snapshot(store: Database) -> None:
    # A read in progress keeps its snapshot; it must not be the snapshot of the next.
    in_snapshot, release = threading.Event(), threading.Event()

    def slow_read(conn: sqlite3.Connection) -> int:
        n = int(conn.execute("SELECT n FROM counter").fetchone()[0])
        in_snapshot.set()
        release.wait(10)
        return n

    slow = asyncio.create_task(store.read(slow_read))
    await asyncio.to_thread(in_snapshot.wait, 10)
    await store.write(_add_one)
    assert await _count(store) == 1
    release.set()
    assert await slow == 0  # its own snapshot, taken before the write


async def test_a_write_in_progress_does_not_hold_up_reads(store: Database) -> None:
    writing, release = threading.Event(), threading.Event()

    def slow_write(conn: sqlite3.Connection) -> None:
        _add_one(conn)
        writing.set()
        release.wait(10)

    write = asyncio.create_task(store.write(slow_write))
    await asyncio.to_thread(writing.wait, 10)
    assert await _count(store) == 0  # not committed yet, and not waited for
    release.set()
    await write
    assert await _count(store) == 1


async def test_a_failing_write_keeps_nothing_and_fails_alone(store: Database) -> None:
    def half_then_fail(conn: sqlite3.Connection) -> None:
        _add_one(conn)
        raise ValueError("changed its mind")

    results = await asyncio.gather(
        store.write(_add_one),
        store.write(half_then_fail),
        store.write(_add_one),
        return_exceptions=True,
    )
    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], ValueError)
    assert await _count(store) == 2


async def test_no_work_runs_on_the_event_loop(store: Database) -> None:
    loop_thread = threading.get_ident()

    def where(conn: sqlite3.Connection) -> int:
        return threading.get_ident()

    assert await store.write(where) != loop_thread
    assert await store.read(where) != loop_thread


async def test_a_write_stands_when_its_caller_stops_waiting(store: Database) -> None:
    # A client that hangs up mid-request: the write goes on, and is not half done.
    started, release = threading.Event(), threading.Event()

    def slow_add(conn: sqlite3.Connection) -> int:
        started.set()
        release.wait(10)
        return _add_one(conn)

    write = asyncio.create_task(store.write(slow_add))
    await asyncio.to_thread(started.wait, 10)
    write.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await write
    await store.write(lambda conn: None)  # after the cancelled one
    assert await _count(store) == 1


# --- what the store's entities promise over any backend -----------------------------


async def test_the_answer_to_a_write_is_the_state_that_write_made(store: Database) -> None:
    queues = QueueRepository(store)
    created = await asyncio.gather(
        *(queues.create("acme", QueueInput(name=f"q{i}"), NOW) for i in range(20))
    )
    assert [q.name for q in created] == [f"q{i}" for i in range(20)]
    updated = await asyncio.gather(
        *(queues.update("acme", q.id, QueueUpdate(comment=f"c{q.id}")) for q in created)
    )
    assert [u.comment if u else None for u in updated] == [f"c{q.id}" for q in created]


async def test_a_repeated_idempotency_key_stores_nothing_twice(store: Database) -> None:
    queue = await QueueRepository(store).create("acme", QueueInput(name="q"), NOW)
    tasks = TaskRepository(store)
    key = IdempotentRequest(key="k", request_hash="h", since="2025-12-31 00:00:00")

    def render(created: list[Any]) -> str:
        return ",".join(str(t["id"]) for t in created)

    answers = await asyncio.gather(
        *(
            tasks.add("acme", queue.id, [TaskInput(a_number="1", b_number="2")], NOW, render, key)
            for _ in range(10)
        )
    )
    assert len({a.body for a in answers}) == 1
    assert [a.replayed for a in answers].count(False) == 1
    assert await store.fetch_value("SELECT count(*) FROM tasks") == 1


async def test_a_task_moves_on_only_from_the_state_it_was_decided_from(store: Database) -> None:
    queue = await QueueRepository(store).create("acme", QueueInput(name="q"), NOW)
    tasks = TaskRepository(store)
    await tasks.add("acme", queue.id, [TaskInput(a_number="1", b_number="2")], NOW, str)
    task_id = int(await store.fetch_value("SELECT max(id) FROM tasks"))
    cancelled = await tasks.cancel(queue.id, task_id, NOW)
    assert cancelled.outcome is ChangeOutcome.CHANGED

    claimed = await store.write(
        lambda conn: transition(conn, task_id, Claimed("late"), parse_time(NOW))
    )
    assert claimed is None  # a claim after the cancel claims nothing
    task = await tasks.get(queue.id, task_id)
    assert task is not None and task.status is TaskStatus.FINISHED and task.cdr == ""
