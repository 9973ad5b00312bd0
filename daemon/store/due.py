"""The scheduler's reads and writes of due tasks: the SQL whose IN lists depend on
which queues and extension profiles are full, so it cannot be a named query."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from datetime import datetime
from typing import NamedTuple

from daemon.models import WAITING_STATUSES, format_time
from daemon.store.db import Database

DueKey = tuple[str, int]  # (next_attempt, id): where a pass over the due rows stopped

# A task's extension profile, read by SQLite out of its stored params.
_EXTENSION_OF_TASK = "params ->> '$.extension_id'"
_HOLD = "UPDATE tasks SET status = 'delayed_concurrent_task' WHERE "
_NOT_MARKED = "status IN ('scheduled', 'delayed')"


class Full(NamedTuple):
    """Where nothing more may start now."""

    queues: frozenset[int]
    extensions: frozenset[int]


NOTHING_FULL = Full(frozenset(), frozenset())


def _marks(values: Collection[object]) -> str:
    return ", ".join("?" * len(values))


class DueTasks:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def rows(
        self,
        now: datetime,
        queue_ids: Collection[int],
        full_extensions: Collection[int],
        after: DueKey | None,
        limit: int,
    ) -> list[sqlite3.Row]:
        """Up to `limit` due tasks of `queue_ids`, oldest due first, after `after`;
        the tasks of `full_extensions` are passed over."""
        if not queue_ids or limit <= 0:
            return []
        statuses = ", ".join(f"'{s}'" for s in WAITING_STATUSES)
        # The rows of earlier pages either started (and are no longer waiting) or were
        # held back: the next page starts after the last one read.
        start = "" if after is None else "AND (next_attempt, id) > (?, ?) "
        # The tasks of a full extension profile are passed over inside SQLite: however
        # many of them are due, the tasks behind them are read (a task without a profile
        # has no extension_id, and '' is no profile's id).
        skip = (
            f"AND ifnull({_EXTENSION_OF_TASK}, '') NOT IN ({_marks(full_extensions)}) "
            if full_extensions
            else ""
        )
        sql = (
            # The unary + keeps SQLite on the due-time index (tasks_due), which returns
            # rows already in order; the queue/status index would sort every waiting task.
            "SELECT * FROM tasks WHERE next_attempt IS NOT NULL AND next_attempt <= ? "  # noqa: S608
            f"{start}AND +status IN ({statuses}) AND +scheduler_id IN ({_marks(queue_ids)}) "
            f"{skip}ORDER BY next_attempt, id LIMIT ?"
        )
        params = [format_time(now), *(after or ()), *queue_ids, *full_extensions, limit]
        return list(await self._db.fetch_all(sql, params))

    async def hold(
        self, task_ids: Collection[int], full: Full, open_queues: Collection[int], now: datetime
    ) -> None:
        """Mark `delayed_concurrent_task` the tasks of `task_ids`, and every due task of
        `open_queues` that a full queue or extension profile holds back."""
        if not task_ids and not full.queues and not (full.extensions and open_queues):
            return
        due = f"{_NOT_MARKED} AND next_attempt <= ?"
        async with self._db.transaction() as tx:
            if task_ids:
                sql = f"{_HOLD}id IN ({_marks(task_ids)}) AND {_NOT_MARKED}"
                await tx.execute(sql, [*task_ids])
            if full.queues:
                sql = f"{_HOLD}scheduler_id IN ({_marks(full.queues)}) AND {due}"
                await tx.execute(sql, [*full.queues, format_time(now)])
            if full.extensions and open_queues:
                sql = (
                    f"{_HOLD}scheduler_id IN ({_marks(open_queues)}) "
                    f"AND {_EXTENSION_OF_TASK} IN ({_marks(full.extensions)}) AND {due}"
                )
                await tx.execute(sql, [*open_queues, *full.extensions, format_time(now)])
