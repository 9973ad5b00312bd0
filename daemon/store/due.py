"""The scheduler's reads and writes of due tasks: the SQL whose IN lists depend on
which queues and extension profiles are full, so it cannot be a named query."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from datetime import datetime
from functools import partial
from typing import NamedTuple

from daemon.lifecycle import Held, HoldReason
from daemon.models import WAITING_STATUSES, format_time
from daemon.store.db import Database
from daemon.store.tasks import hold_where

DueKey = tuple[str, int]  # (next_attempt, id): where a pass over the due rows stopped

# A task's extension profile, read by SQLite out of its stored params.
_EXTENSION_OF_TASK = "params ->> '$.extension_id'"


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
        full_extensions: Collection[int | str],
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
        """Hold as `delayed_concurrent_task` the tasks of `task_ids`, and every due task
        of `open_queues` that a full queue or extension profile holds back."""
        if not task_ids and not full.queues and not (full.extensions and open_queues):
            return
        due = format_time(now)
        await self._db.write(partial(_hold, task_ids, full, open_queues, due))

    # --- calling hours and the answer-rate guard ----------------------------------------

    async def hold_queues(self, holds: Collection[tuple[int, Held]], now: datetime) -> None:
        """Hold every due task of each queue (id, hold): its interval just closed."""
        due = format_time(now)
        where = "scheduler_id = ? AND next_attempt <= ?"
        await self._write_holds([(where, [qid, due], held) for qid, held in holds])

    async def hold_tasks(self, holds: Collection[tuple[int, Held]]) -> None:
        """Hold each task (id, hold) the hold applies to."""
        await self._write_holds([("id = ?", [task_id], held) for task_id, held in holds])

    async def free_queues(self, queue_ids: Collection[int], now: datetime) -> None:
        """The tasks held for these queues' calling hours are due again now, to be looked
        at under the interval as it is now (changed, or read for the first time)."""
        if queue_ids:
            where = f"status = 'delayed_interval' AND scheduler_id IN ({_marks(queue_ids)})"
            await self._write_holds([(where, [*queue_ids], Held(HoldReason.INTERVAL, now))])

    async def hold_profiles(
        self, holds: Collection[tuple[int | str, Held]], queue_ids: Collection[int], now: datetime
    ) -> None:
        """Hold the due tasks of `queue_ids` whose profile (extension id, '' = the
        default) its answer-rate guard holds."""
        if not queue_ids:
            return
        # The unary + keeps SQLite on the due-time index: only due rows are read.
        where = (
            f"ifnull({_EXTENSION_OF_TASK}, '') = ? AND +scheduler_id IN ({_marks(queue_ids)}) "
            "AND next_attempt <= ?"
        )
        due = format_time(now)
        await self._write_holds([(where, [key, *queue_ids, due], held) for key, held in holds])

    async def free_profiles(self, held: Collection[int | str], now: datetime) -> None:
        """The tasks held by the guard of every profile but those `held` are due now."""
        where = "status = 'delayed_asr'"
        if held:
            where += f" AND ifnull({_EXTENSION_OF_TASK}, '') NOT IN ({_marks(held)})"
        await self._write_holds([(where, [*held], Held(HoldReason.ASR, now))])

    async def probe(self, profile: int | str, queue_ids: Collection[int]) -> sqlite3.Row | None:
        """The longest-held task of a held profile in `queue_ids`, to try the network."""
        if not queue_ids:
            return None
        sql = (
            "SELECT * FROM tasks WHERE status = 'delayed_asr' "  # noqa: S608
            f"AND ifnull({_EXTENSION_OF_TASK}, '') = ? "
            f"AND +scheduler_id IN ({_marks(queue_ids)}) ORDER BY id LIMIT 1"
        )
        return await self._db.fetch_one(sql, [profile, *queue_ids])

    async def _write_holds(self, holds: list[tuple[str, list[object], Held]]) -> None:
        if holds:
            await self._db.write(partial(_hold_each, holds))


def _hold(
    task_ids: Collection[int],
    full: Full,
    open_queues: Collection[int],
    due: str,
    conn: sqlite3.Connection,
) -> None:
    held = HoldReason.CONCURRENCY
    if task_ids:
        hold_where(conn, f"id IN ({_marks(task_ids)})", [*task_ids], held)
    if full.queues:
        condition = f"scheduler_id IN ({_marks(full.queues)}) AND next_attempt <= ?"
        hold_where(conn, condition, [*full.queues, due], held)
    if full.extensions and open_queues:
        condition = (
            f"scheduler_id IN ({_marks(open_queues)}) "
            f"AND {_EXTENSION_OF_TASK} IN ({_marks(full.extensions)}) AND next_attempt <= ?"
        )
        hold_where(conn, condition, [*open_queues, *full.extensions, due], held)


def _hold_each(holds: list[tuple[str, list[object], Held]], conn: sqlite3.Connection) -> None:
    for where, params, held in holds:
        hold_where(conn, where, params, held.reason, held.until, held.comment)
