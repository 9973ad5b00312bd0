"""Queues (`task_scheduler`) in the store, always scoped to one client."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from enum import Enum
from typing import Any

import aiosqlite

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


async def _check_interval(
    tx: aiosqlite.Connection, client_id: str, interval_id: int | None
) -> None:
    if interval_id is not None:
        cursor = await tx.execute(q("select_interval"), {"id": interval_id, "client_id": client_id})
        if await cursor.fetchone() is None:
            raise UnknownInterval(interval_id)


class QueueRepository:
    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        self._db = db
        # The interval's open/closed state in an answer is read at this clock's now.
        self._clock = clock or SystemClock()

    async def create(self, client_id: str, queue: QueueInput, now: str) -> QueueOutput:
        """Raises UnknownInterval for an interval that is not the client's."""
        async with self._db.transaction() as tx:
            await _check_interval(tx, client_id, queue.interval_id)
            cursor = await tx.execute(
                q("insert_queue"), {"client_id": client_id, "now": now, **queue.model_dump()}
            )
            row = await cursor.fetchone()
        assert row is not None
        created = await self.get(client_id, int(row[0]))
        assert created is not None
        return created

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
        async with self._db.transaction() as tx:
            cursor = await tx.execute(q("select_queue"), {"id": queue_id, "client_id": client_id})
            row = await cursor.fetchone()
            if row is None:
                return None
            merged: dict[str, Any] = dict(row) | change.model_dump(exclude_none=True)
            if "interval_id" in change.model_fields_set:  # null takes the queue off it
                merged["interval_id"] = change.interval_id
                await _check_interval(tx, client_id, change.interval_id)
            await tx.execute(q("update_queue"), {**merged, "client_id": client_id})
        return await self.get(client_id, queue_id)

    async def delete(self, client_id: str, queue_id: int) -> DeleteOutcome:
        """Delete a queue with its finished tasks and their history; refused while any
        task is unfinished, so no call in progress loses its task. Webhooks still in the
        outbox carry their own copy of the task and are delivered all the same. The ids of
        the queue and its tasks are never given again."""
        ids = {"id": queue_id, "client_id": client_id}
        async with self._db.transaction() as tx:
            cursor = await tx.execute(q("select_queue"), ids)
            if await cursor.fetchone() is None:
                return DeleteOutcome.NOT_FOUND
            cursor = await tx.execute(q("count_unfinished_in_queue"), ids)
            unfinished = await cursor.fetchone()
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
                await tx.execute(q(name), ids)
        return DeleteOutcome.DELETED
