"""Callback tasks in the store: bulk add (all or nothing, idempotent), list, change, cancel."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import TypeAdapter

from daemon.models import (
    WAITING_STATUSES,
    CallbackParams,
    FinishResult,
    TaskInput,
    TaskOutput,
    TaskStatus,
    format_time,
)
from daemon.store.db import Database
from daemon.store.queries import q

CANCELLED_COMMENT = "cancelled"


@dataclass(frozen=True)
class TaskFilter:
    statuses: tuple[TaskStatus, ...] = ()
    finish_result: FinishResult | None = None
    name: str | None = None


@dataclass(frozen=True)
class IdempotentRequest:
    key: str
    request_hash: str


@dataclass(frozen=True)
class StoredResponse:
    """A response kept for an Idempotency-Key; `replayed` when it was stored earlier."""

    status: int
    body: str
    replayed: bool
    same_request: bool = True


class ChangeOutcome(Enum):
    CHANGED = "changed"
    NOT_FOUND = "not_found"
    WRONG_STATE = "wrong_state"


def due_time(start_time: datetime | None, now: str) -> str:
    """A task without a start time is due now; one with a start time is due then, even
    if that is past (it starts at once, and before tasks that came due later)."""
    return now if start_time is None else format_time(start_time)


# Stored params omit defaults (exclude_defaults); these fill them back in on read.
_INPUT_DEFAULTS = TaskInput(a_number="0", b_number="0").model_dump(
    mode="json", exclude={"a_number", "b_number", "start_time_utc", "callback_params"}
)


_CALLBACK_DEFAULTS = CallbackParams().model_dump(mode="json")
_CALLBACK_FIELDS = set(CallbackParams.model_fields)
_OUTPUT_FIELDS = set(TaskOutput.model_fields)


def task_fields(params: dict[str, Any], **state: Any) -> dict[str, Any]:
    """A task as the API shows it (the fields of TaskOutput, JSON-ready) from its stored
    params and its state columns. The params were validated on the way in, so they are
    trusted here: a list of a thousand tasks is not validated again on the way out."""
    fields = _INPUT_DEFAULTS | params
    fields["callback_params"] = _CALLBACK_DEFAULTS | params.get("callback_params", {})
    fields.update(state)
    return fields


def task_fields_from_row(row: sqlite3.Row) -> dict[str, Any]:
    return task_fields(
        json.loads(row["params"]),
        id=row["id"],
        scheduler_id=row["scheduler_id"],
        start_time_utc=row["start_time"],
        status=row["status"],
        finish_result=row["finish_result"],
        finish_comment=row["finish_comment"],
        cdr=row["cdr"],
        attempts_made=row["attempts_made"],
        next_attempt_utc=row["next_attempt"],
        create_date_utc=row["create_date"],
    )


def task_from_row(row: sqlite3.Row) -> TaskOutput:
    fields = task_fields_from_row(row)
    # Every field is given, so naming them all spares model_construct its default lookups.
    fields["callback_params"] = CallbackParams.model_construct(
        _CALLBACK_FIELDS, **fields["callback_params"]
    )
    fields["status"] = TaskStatus(fields["status"])
    if fields["finish_result"] is not None:
        fields["finish_result"] = FinishResult(fields["finish_result"])
    return TaskOutput.model_construct(_OUTPUT_FIELDS, **fields)


# One call into pydantic-core serialises a whole batch: per-task calls made a
# 10,000-task POST several times slower.
_BATCH = TypeAdapter(list[TaskInput])


def new_task_outputs(
    scheduler_id: int, tasks: Sequence[TaskInput], now: str
) -> tuple[list[tuple[object, ...]], list[dict[str, Any]]]:
    """The `insert_task` rows of new tasks and their answers (JSON-ready dicts with the
    fields of TaskOutput, `id` to be filled in), built the way a read builds them."""
    params = _BATCH.dump_python(
        list(tasks), mode="json", exclude_defaults=True, exclude={"__all__": {"start_time_utc"}}
    )
    rows: list[tuple[object, ...]] = []
    answers: list[dict[str, Any]] = []
    for task, stored in zip(tasks, params, strict=True):
        start_time = format_time(task.start_time_utc) if task.start_time_utc else None
        due = due_time(task.start_time_utc, now)
        params_json = json.dumps(stored, separators=(",", ":"), ensure_ascii=False)
        rows.append((scheduler_id, task.name, params_json, start_time, due, now))
        answer = task_fields(
            stored,
            id=0,
            scheduler_id=scheduler_id,
            start_time_utc=start_time,
            status=str(TaskStatus.SCHEDULED),
            finish_result=None,
            finish_comment="",
            cdr="",
            attempts_made=0,
            next_attempt_utc=due,
            create_date_utc=now,
        )
        answers.append(answer)
    return rows, answers


def _filter_sql(scheduler_id: int, where: TaskFilter) -> tuple[str, list[object]]:
    """The WHERE condition of a task filter; its columns exist in `tasks` and, except
    `name`, in `task_counts` too."""
    clauses = ["scheduler_id = ?"]
    params: list[object] = [scheduler_id]
    if where.statuses:
        clauses.append(f"status IN ({', '.join('?' * len(where.statuses))})")
        params.extend(str(s) for s in where.statuses)
    if where.finish_result is not None:
        clauses.append("finish_result = ?")
        params.append(str(where.finish_result))
    if where.name is not None:
        clauses.append("name = ?")
        params.append(where.name)
    return " AND ".join(clauses), params


def page_sql(condition: str) -> str:
    """One page of tasks by id. The page's ids are found in an index alone (the skipped
    rows of a deep page cost an index entry each, not a table row), then read."""
    return (
        "SELECT * FROM tasks WHERE id IN"  # noqa: S608
        f" (SELECT id FROM tasks WHERE {condition} ORDER BY id LIMIT ? OFFSET ?) ORDER BY id"
    )


class TaskRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self,
        client_id: str,
        scheduler_id: int,
        tasks: Sequence[TaskInput],
        now: str,
        render: Callable[[list[dict[str, Any]]], str],
        idempotent: IdempotentRequest | None = None,
    ) -> StoredResponse:
        """Insert all tasks in one transaction; `render` turns their answers (TaskOutput
        fields as JSON-ready dicts) into the response body. With an Idempotency-Key, a
        repeated key returns the response stored the first time and inserts nothing."""
        # Prepared before the write lock is taken, so other writers wait less.
        rows, created = new_task_outputs(scheduler_id, tasks, now)
        async with self._db.transaction() as tx:
            if idempotent is not None:
                cursor = await tx.execute(
                    q("select_idempotency"), {"client_id": client_id, "key": idempotent.key}
                )
                earlier = await cursor.fetchone()
                if earlier is not None:
                    return StoredResponse(
                        status=earlier["status"],
                        body=earlier["body"],
                        replayed=True,
                        same_request=earlier["request_hash"] == idempotent.request_hash,
                    )
            await tx.executemany(q("insert_task"), rows)
            cursor = await tx.execute("SELECT last_insert_rowid()")
            last = await cursor.fetchone()
            assert last is not None
            # One IMMEDIATE transaction with no other writer: the rowids are consecutive.
            first_id = int(last[0]) - len(tasks) + 1
            for i, answer in enumerate(created):
                answer["id"] = first_id + i
            body = render(created)
            if idempotent is not None:
                await tx.execute(
                    q("insert_idempotency"),
                    {
                        "client_id": client_id,
                        "key": idempotent.key,
                        "request_hash": idempotent.request_hash,
                        "status": 201,
                        "body": body,
                        "now": now,
                    },
                )
        return StoredResponse(status=201, body=body, replayed=False)

    async def get(self, scheduler_id: int, task_id: int) -> TaskOutput | None:
        row = await self._db.fetch_one(
            q("select_task"), {"id": task_id, "scheduler_id": scheduler_id}
        )
        return None if row is None else task_from_row(row)

    async def list(
        self, scheduler_id: int, where: TaskFilter, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of the queue's tasks in id order (as `task_fields`), and the total
        that match."""
        condition, params = _filter_sql(scheduler_id, where)
        rows = await self._db.fetch_all(page_sql(condition), [*params, limit, offset])
        if where.name is None:
            # Status and result filters are answered from the trigger-kept counts.
            count_sql = f"SELECT coalesce(sum(n), 0) FROM task_counts WHERE {condition}"  # noqa: S608
        else:
            count_sql = f"SELECT count(*) FROM tasks WHERE {condition}"  # noqa: S608
        total = int(await self._db.fetch_value(count_sql, params))
        return [task_fields_from_row(row) for row in rows], total

    async def update(
        self, scheduler_id: int, task_id: int, task: TaskInput, now: str
    ) -> ChangeOutcome:
        """Replace a waiting task's input; a running or finished task is refused."""
        async with self._db.transaction() as tx:
            cursor = await tx.execute(
                q("select_task"), {"id": task_id, "scheduler_id": scheduler_id}
            )
            row = await cursor.fetchone()
            if row is None:
                return ChangeOutcome.NOT_FOUND
            if row["status"] not in WAITING_STATUSES:
                return ChangeOutcome.WRONG_STATE
            next_attempt = (
                due_time(task.start_time_utc, now)
                if row["attempts_made"] == 0
                else row["next_attempt"]
            )
            await tx.execute(
                q("update_task_params"),
                {
                    "id": task_id,
                    "name": task.name,
                    "params": task.stored_params(),
                    "start_time": format_time(task.start_time_utc) if task.start_time_utc else None,
                    "next_attempt": next_attempt,
                },
            )
        return ChangeOutcome.CHANGED

    async def finish(self, task_id: int, result: FinishResult, comment: str, now: str) -> bool:
        """Finish a task that is not finished yet, queueing its `after` webhook; False
        if it already was finished."""
        from daemon.store.webhooks import WebhookEvent, enqueue_webhook

        async with self._db.transaction() as tx:
            cursor = await tx.execute(
                q("finish_task"), {"id": task_id, "result": str(result), "comment": comment}
            )
            if cursor.rowcount != 1:
                return False
            cursor = await tx.execute(q("select_task_by_id"), {"id": task_id})
            row = await cursor.fetchone()
            last_call = row["cdr"] if row is not None and row["cdr"] else None
            await enqueue_webhook(tx, WebhookEvent.AFTER, task_id, last_call, now)
            return True
