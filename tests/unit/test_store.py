"""The SQLite store on a real file: durability settings, all-or-nothing adds, what is read
back equals what was answered, trigger-kept counts, and index use of the list queries."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from daemon.models import FinishResult, QueueInput, TaskInput, TaskOutput, TaskStatus
from daemon.store.attempts import AttemptRepository, StoredEvent, _insert_events
from daemon.store.db import Database, StoreUnavailable, migrate, schema_version
from daemon.store.queries import migrations, q
from daemon.store.queues import DeleteOutcome, QueueRepository
from daemon.store.tasks import (
    Changed,
    ChangeOutcome,
    TaskFilter,
    TaskRepository,
    _filter_sql,
    page_sql,
)
from tests.store_sql import execute

NOW = "2024-05-01 12:00:00"

FULL_TASK = {
    "name": "order 42",
    "a_number": "+74951230001",
    "b_number": "101",
    "extension_id": 101,
    "try_count": 3,
    "try_again_pause": "90",
    "try_count_caller": 2,
    "try_again_pause_caller": 30,
    "url_before": "https://panel.example.com/before",
    "url_after": "https://panel.example.com/after?x=1",
    "start_time_utc": "2030-01-02T03:04:05+01:00",
    "callback_params": {
        "caller_id_name": "Sales",
        "caller_id_number": "4951234567",
        "extended_a_numbers": ["+74951230002"],
    },
    "variables": {"ORDER": "42"},
    "attempts_src_ani_numbers": ["111", "222"],
    "attempts_dst_ani_numbers": ["333"],
}


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "store" / "callbackd.db")
    yield database
    await database.close()


async def _queue(db: Database, client: str = "acme") -> int:
    created = await QueueRepository(db).create(client, QueueInput(name="q"), NOW)
    return created.id


def _render(created: list[object]) -> str:
    return str(len(created))


async def _finish(db: Database, task_id: int, result: FinishResult) -> None:
    """A task as a call's end leaves it (the engine's own path needs a call)."""
    await execute(
        db,
        "UPDATE tasks SET status = 'finished', finish_result = ? WHERE id = ?",
        (str(result), task_id),
    )


async def test_store_is_durable_wal_with_full_sync(db: Database) -> None:
    assert await db.fetch_value("PRAGMA journal_mode") == "wal"
    assert await db.fetch_value("PRAGMA synchronous") == 2  # FULL
    assert await db.fetch_value("PRAGMA foreign_keys") == 1


async def test_reopening_a_migrated_store_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "callbackd.db"
    first = await Database.open(path)
    queue_id = await _queue(first)
    await first.close()

    again = await Database.open(path)
    try:
        assert await QueueRepository(again).get("acme", queue_id) is not None
        assert await again.read(schema_version) == migrations()[-1][0]
    finally:
        await again.close()


async def test_a_stored_task_reads_back_exactly_as_it_was_answered(db: Database) -> None:
    queue_id = await _queue(db)
    tasks = TaskRepository(db)
    answered = []

    def render(created: list[dict[str, Any]]) -> str:
        answered.extend(created)
        return ""

    await tasks.add("acme", queue_id, [TaskInput.model_validate(FULL_TASK)], NOW, render)
    stored = await tasks.get(queue_id, answered[0]["id"])

    assert stored is not None
    assert stored.model_dump(mode="json") == answered[0]
    assert TaskOutput.model_validate(answered[0]) == stored
    assert stored.start_time_utc == "2030-01-02 02:04:05"
    assert stored.try_again_pause == 90


async def test_a_failing_add_stores_nothing(db: Database) -> None:
    queue_id = await _queue(db)
    tasks = TaskRepository(db)

    def broken(created: list[object]) -> str:
        raise RuntimeError("rendering failed after the inserts")

    with pytest.raises(RuntimeError):
        await tasks.add("acme", queue_id, [TaskInput(a_number="1", b_number="2")] * 5, NOW, broken)

    assert await tasks.list(queue_id, TaskFilter(), 100, 0) == ([], 0)
    assert (await QueueRepository(db).get("acme", queue_id)).task_count == 0  # type: ignore[union-attr]


async def test_task_counts_follow_every_change(db: Database) -> None:
    queue_id = await _queue(db)
    tasks = TaskRepository(db)
    await tasks.add("acme", queue_id, [TaskInput(a_number="1", b_number="2")] * 6, NOW, _render)
    page, _ = await tasks.list(queue_id, TaskFilter(), 100, 0)
    await _finish(db, page[0]["id"], FinishResult.SUCCESS)
    assert (await tasks.cancel(queue_id, page[1]["id"], NOW)).outcome is ChangeOutcome.CHANGED
    again = await tasks.cancel(queue_id, page[1]["id"], NOW)
    assert again.outcome is ChangeOutcome.WRONG_STATE
    await db.write(
        lambda conn: conn.execute(
            "UPDATE tasks SET status = 'delayed' WHERE id = ?", (page[2]["id"],)
        )
    )

    for where in (
        TaskFilter(),
        TaskFilter(statuses=(TaskStatus.FINISHED,)),
        TaskFilter(statuses=(TaskStatus.SCHEDULED, TaskStatus.DELAYED)),
        TaskFilter(finish_result=FinishResult.FAILED),
        TaskFilter(statuses=(TaskStatus.FINISHED,), finish_result=FinishResult.SUCCESS),
    ):
        condition, params = _filter_sql(queue_id, where)
        counted = await db.fetch_value(f"SELECT count(*) FROM tasks WHERE {condition}", params)
        listed, total = await tasks.list(queue_id, where, 100, 0)
        assert total == counted == len(listed), where
    queue = await QueueRepository(db).get("acme", queue_id)
    assert queue is not None
    assert (queue.task_count, queue.sched_task_count) == (6, 4)


async def test_only_a_waiting_task_changes(db: Database) -> None:
    queue_id = await _queue(db)
    tasks = TaskRepository(db)
    await tasks.add("acme", queue_id, [TaskInput(a_number="1", b_number="2")] * 2, NOW, _render)
    waiting, done = (await tasks.list(queue_id, TaskFilter(), 100, 0))[0]
    await tasks.cancel(queue_id, done["id"], NOW)
    change = TaskInput(a_number="3", b_number="4", name="changed")

    changed = await tasks.update(queue_id, waiting["id"], change, NOW)
    assert changed.outcome is ChangeOutcome.CHANGED
    assert changed.task == await tasks.get(queue_id, waiting["id"])
    assert changed.task is not None and changed.task.name == "changed"
    refused = await tasks.update(queue_id, done["id"], change, NOW)
    assert refused.outcome is ChangeOutcome.WRONG_STATE
    assert refused.task is not None and refused.task.finish_comment == "cancelled"
    unknown = await tasks.update(queue_id + 1, waiting["id"], change, NOW)
    assert unknown == Changed(ChangeOutcome.NOT_FOUND)


async def test_queue_delete_is_refused_while_tasks_are_unfinished(db: Database) -> None:
    queue_id = await _queue(db)
    queues, tasks = QueueRepository(db), TaskRepository(db)
    await tasks.add("acme", queue_id, [TaskInput(a_number="1", b_number="2")], NOW, _render)
    [waiting], _ = await tasks.list(queue_id, TaskFilter(), 100, 0)

    assert await queues.delete("beta", queue_id) is DeleteOutcome.NOT_FOUND
    assert await queues.delete("acme", queue_id) is DeleteOutcome.HAS_UNFINISHED_TASKS
    await tasks.cancel(queue_id, waiting["id"], NOW)
    assert await queues.delete("acme", queue_id) is DeleteOutcome.DELETED
    assert await db.fetch_value("SELECT count(*) FROM tasks") == 0
    assert await db.fetch_value("SELECT coalesce(sum(n), 0) FROM task_counts") == 0


async def _finished_task(db: Database, queue_id: int) -> int:
    tasks = TaskRepository(db)
    await tasks.add("acme", queue_id, [TaskInput(a_number="1", b_number="2")], NOW, _render)
    task_id = int(await db.fetch_value("SELECT max(id) FROM tasks"))
    await _finish(db, task_id, FinishResult.SUCCESS)
    return task_id


async def test_ids_of_a_deleted_queue_and_its_tasks_are_never_given_again(db: Database) -> None:
    kept_queue = await _queue(db)
    kept_task = await _finished_task(db, kept_queue)
    deleted_queue = await _queue(db)
    deleted_task = await _finished_task(db, deleted_queue)
    assert await QueueRepository(db).delete("acme", deleted_queue) is DeleteOutcome.DELETED

    new_queue = await _queue(db)
    new_task = await _finished_task(db, new_queue)
    assert new_queue > deleted_queue > kept_queue
    assert new_task > deleted_task > kept_task


async def _store_of_version(directory: Path, version: int) -> Path:
    """A store file as an older callbackd left it: migrated up to `version` only."""
    path = directory / "callbackd.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as old:
        migrate(old, migrations()[:version])
    return path


async def test_an_older_store_retires_the_ids_its_webhooks_name(tmp_path: Path) -> None:
    """Migration 2 on a store that deleted a queue before it existed: the outbox still
    holds a webhook of the deleted queue's task, and neither id comes back."""
    path = await _store_of_version(tmp_path, 1)
    body = '{"event": "after", "task": {"id": 7, "scheduler_id": 3}}'
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO outbox (task_id, event, url, body, created, next_try)"
            " VALUES (7, 'after', 'http://127.0.0.1/', ?, ?, ?)",
            (body, NOW, NOW),
        )
    db = await Database.open(path)
    try:
        queue_id = await _queue(db)
        assert queue_id == 4
        assert await _finished_task(db, queue_id) == 8
    finally:
        await db.close()


def _events(call_uuid: str, seqs: range) -> list[StoredEvent]:
    return [
        StoredEvent(call_uuid, seq, f"{NOW}.{seq:03d}", {"Event": "Newstate", "N": str(seq)})
        for seq in seqs
    ]


async def _stored_events(db: Database, call_uuid: str) -> list[tuple[str, str]]:
    rows = await db.fetch_all(q("select_call_events"), {"call_uuid": call_uuid})
    return [(row["received_at"], json.loads(row["event"])["N"]) for row in rows]


async def test_each_event_of_a_call_is_stored_once_whatever_writes_carry_it(
    db: Database,
) -> None:
    """A flush and the call's end can carry the same events, and a write retried after
    the store refused it can come after a later one: every event is stored once, and
    read back in arrival order."""
    attempts = AttemptRepository(db)
    call = "7b0c6a52-3f0e-4d6b-9a53-0c2f5e9d1a10"
    await attempts.save_events(_events(call, range(1, 4)))  # a flush
    await attempts.save_events(_events(call, range(1, 7)))  # the end, with the same three
    await attempts.save_events(_events(call, range(2, 4)))  # a late retry of the flush
    await attempts.save_events(_events("another call", range(1, 3)))

    assert await _stored_events(db, call) == [(f"{NOW}.{n:03d}", str(n)) for n in range(1, 7)]
    assert await attempts.next_event_seq(call) == 7
    assert await db.fetch_value("SELECT count(*) FROM call_event_batches") == 3


@pytest.mark.parametrize(
    ("stored_before", "carried", "on_their_way", "batches"),
    [
        (range(0), range(1, 7), 0, 1),  # nothing stored, nothing on its way
        (range(1, 4), range(4, 7), 3, 2),  # the write before stored and answered
        (range(1, 4), range(1, 7), 3, 2),  # the bridge's write on its way, then stored
        (range(0), range(1, 7), 3, 1),  # that write was refused: all six go here
        (range(1, 4), range(1, 7), 6, 2),  # a write carrying all six, stored in part
        (range(1, 7), range(1, 7), 6, 1),  # a write carrying all six, all stored
    ],
)
async def test_a_call_end_stores_each_event_once_whatever_was_on_its_way(
    db: Database, stored_before: range, carried: range, on_their_way: int, batches: int
) -> None:
    call = "7b0c6a52-3f0e-4d6b-9a53-0c2f5e9d1a10"
    attempts = AttemptRepository(db)
    await attempts.save_events(_events(call, stored_before))
    await db.write(partial(_insert_events, _events(call, carried), on_their_way=on_their_way))

    assert await _stored_events(db, call) == [(f"{NOW}.{n:03d}", str(n)) for n in range(1, 7)]
    assert await db.fetch_value("SELECT count(*) FROM call_event_batches") == batches


async def test_an_older_store_keeps_its_call_events_in_order(tmp_path: Path) -> None:
    """Migration 4 moves the events of a store that kept one row per event into batch
    rows; they read back in the same order and a followed call numbers on after them."""
    path = await _store_of_version(tmp_path, 3)
    call = "7b0c6a52-3f0e-4d6b-9a53-0c2f5e9d1a10"
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO call_events (call_uuid, seq, received_at, event) VALUES (?, ?, ?, ?)",
            [
                (e.call_uuid, e.seq, e.received_at, json.dumps(e.event))
                for e in _events(call, range(12, 0, -1))
            ],
        )
    db = await Database.open(path)
    try:
        assert await _stored_events(db, call) == [(f"{NOW}.{n:03d}", str(n)) for n in range(1, 13)]
        assert await AttemptRepository(db).next_event_seq(call) == 13
    finally:
        await db.close()


@pytest.mark.parametrize(
    "where",
    [
        TaskFilter(),
        TaskFilter(statuses=(TaskStatus.SCHEDULED,)),
        TaskFilter(finish_result=FinishResult.FAILED),
        TaskFilter(name="order 42"),
    ],
)
@pytest.mark.parametrize("order", ["", "DESC"])
async def test_task_list_queries_use_an_index(db: Database, where: TaskFilter, order: str) -> None:
    condition, params = _filter_sql(1, where)
    sql = f"EXPLAIN QUERY PLAN {page_sql(condition, order)}"
    rows = await db.fetch_all(sql, [*params, 100, 0])
    plan = " | ".join(row["detail"] for row in rows)

    assert "USING COVERING INDEX" in plan, plan
    assert "SCAN" not in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # rows come in index order, nothing is sorted


async def test_every_page_is_the_slice_of_the_whole_list_it_names(db: Database) -> None:
    # Pages past the middle are counted from the end; they must be the same tasks.
    queue_id = await _queue(db)
    tasks = TaskRepository(db)
    inputs = [TaskInput(a_number="1", b_number="2", name=f"n{i % 2}") for i in range(23)]
    await tasks.add("acme", queue_id, inputs, NOW, _render)
    everything, _ = await tasks.list(queue_id, TaskFilter(), 100, 0)
    for task in everything[::3]:
        await tasks.cancel(queue_id, task["id"], NOW)

    for where in (
        TaskFilter(),
        TaskFilter(statuses=(TaskStatus.SCHEDULED,)),
        TaskFilter(finish_result=FinishResult.FAILED),
        TaskFilter(name="n1"),
    ):
        whole, total = await tasks.list(queue_id, where, 1000, 0)
        ids = [task["id"] for task in whole]
        assert len(ids) == total
        for per_page in (1, 3, 5, 10, 100):
            for offset in range(0, total + per_page, per_page):
                page, page_total = await tasks.list(queue_id, where, per_page, offset)
                assert page_total == total
                assert [t["id"] for t in page] == ids[offset : offset + per_page], (
                    where,
                    per_page,
                    offset,
                )


async def test_a_write_the_store_refuses_is_store_unavailable_and_leaves_nothing(
    db: Database,
) -> None:
    queue_id = await _queue(db)

    def change_then_refused(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE queues SET name = 'changed' WHERE id = ?", (queue_id,))
        # What a full disk or a locked file raises inside a write.
        conn.execute("INSERT INTO no_such_table VALUES (1)")

    with pytest.raises(StoreUnavailable):
        await db.write(change_then_refused)

    queue = await QueueRepository(db).get("acme", queue_id)
    assert queue is not None and queue.name == "q"
    await execute(db, "UPDATE queues SET name = 'later' WHERE id = ?", (queue_id,))
    queue = await QueueRepository(db).get("acme", queue_id)
    assert queue is not None and queue.name == "later"  # the connection is usable again
