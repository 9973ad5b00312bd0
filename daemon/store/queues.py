"""Queues (`task_scheduler`) in the store, always scoped to one client."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from enum import Enum
from functools import partial
from typing import Any

from daemon.clock import Clock, SystemClock
from daemon.models import QueueInput, QueueOutput, QueueUpdate
from daemon.store.db import Database
from daemon.store.intervals import hours_state, opening_text
from daemon.store.queries import q


class DeleteOutcome(Enum):
    DELETED = "deleted"
    NOT_FOUND = "not_found"
    HAS_UNFINISHED_TASKS = "has_unfinished_tasks"


class UnknownInterval(Exception):
    """The queue names an interval that is not its client's."""


def queue_from_row(row: sqlite3.Row, now: datetime) -> QueueOutput:
    hours = hours_state(row["interval_timezone"], row["interval_conditions"], now)
    return QueueOutput(
        id=row["id"],
        name=row["name"],
        comment=row["comment"],
        status=row["status"],
        concurrent_task_limit=row["concurrent_task_limit"],
        create_date_utc=row["create_date"],
        task_count=row["task_count"],
        sched_task_count=row["sched_task_count"],
        last_call_date=row["last_call_date"],
        interval_id=row["interval_id"],
        interval_open=hours.open,
        next_open_utc=opening_text(hours),
    )


def _check_interval(conn: sqlite3.Connection, client_id: str, interval_id: int | None) -> None:
    if interval_id is not None:
        ids = {"id": interval_id, "client_id": client_id}
        if conn.execute(q("select_interval"), ids).fetchone() is None:
            raise UnknownInterval(interval_id)


def _select(conn: sqlite3.Connection, client_id: str, queue_id: int) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        q("select_queue"), {"id": queue_id, "client_id": client_id}
    ).fetchone()
    return row


def _create(client_id: str, queue: QueueInput, now: str, conn: sqlite3.Connection) -> sqlite3.Row:
    _check_interval(conn, client_id, queue.interval_id)
    row = conn.execute(
        q("insert_queue"), {"client_id": client_id, "now": now, **queue.model_dump()}
    ).fetchone()
    created = _select(conn, client_id, int(row[0]))
    assert created is not None  # inserted in this very transaction
    return created


def _update(
    client_id: str, queue_id: int, change: QueueUpdate, conn: sqlite3.Connection
) -> sqlite3.Row | None:
    row = _select(conn, client_id, queue_id)
    if row is None:
        return None
    merged: dict[str, Any] = dict(row) | change.model_dump(exclude_none=True)
    if "interval_id" in change.model_fields_set:  # null takes the queue off it
        merged["interval_id"] = change.interval_id
        _check_interval(conn, client_id, change.interval_id)
    conn.execute(q("update_queue"), {**merged, "client_id": client_id})
    return _select(conn, client_id, queue_id)


def _delete(client_id: str, queue_id: int, conn: sqlite3.Connection) -> DeleteOutcome:
    ids = {"id": queue_id, "client_id": client_id}
    if _select(conn, client_id, queue_id) is None:
        return DeleteOutcome.NOT_FOUND
    unfinished = conn.execute(q("count_unfinished_in_queue"), ids).fetchone()
    if unfinished is not None and unfinished[0] > 0:
        return DeleteOutcome.HAS_UNFINISHED_TASKS
    for name in (
        "retire_queue_task_ids",
        "retire_queue_id",
        "delete_queue_tasks_events",
        "delete_queue_attempts",
        "delete_queue_tasks",
        "delete_queue_counts",
        "delete_queue",
    ):
        conn.execute(q(name), ids)
    return DeleteOutcome.DELETED


class QueueRepository:
    """Every answer to a write is read in the write's own transaction: it shows what
    that write made, whatever other requests do meanwhile."""

    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        self._db = db
        # The interval's open/closed state in an answer is read at this clock's now.
        self._clock = clock or SystemClock()

    async def create(self, client_id: str, queue: QueueInput, now: str) -> QueueOutput:
        """Raises UnknownInterval for an interval that is not the client's."""
        row = await self._db.write(partial(_create, client_id, queue, now))
        return queue_from_row(row, self._clock.now())

    async def get(self, client_id: str, queue_id: int) -> QueueOutput | None:
        row = await self._db.fetch_one(q("select_queue"), {"id": queue_id, "client_id": client_id})
        return None if row is None else queue_from_row(row, self._clock.now())

    async def list(self, client_id: str) -> list[QueueOutput]:
        rows = await self._db.fetch_all(q("select_queues"), {"client_id": client_id})
        now = self._clock.now()
        return [queue_from_row(row, now) for row in rows]

    async def update(
        self, client_id: str, queue_id: int, change: QueueUpdate
    ) -> QueueOutput | None:
        """Raises UnknownInterval for an interval that is not the client's."""
        row = await self._db.write(partial(_update, client_id, queue_id, change))
        return None if row is None else queue_from_row(row, self._clock.now())

    async def delete(self, client_id: str, queue_id: int) -> DeleteOutcome:
        """Delete a queue with its finished tasks and their history; refused while any
        task is unfinished, so no call in progress loses its task. Webhooks still in the
        outbox carry their own copy of the task and are delivered all the same. The ids of
        the queue and its tasks are never given again."""
        return await self._db.write(partial(_delete, client_id, queue_id))
