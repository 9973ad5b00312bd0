"""Callback tasks in the store: bulk add (all or nothing, idempotent), list, change, cancel."""

from __future__ import annotations

import asyncio
import gc
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from functools import partial
from typing import Any

import aiosqlite
from pydantic_core import to_json

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
    # Store time text: a key first used before it is forgotten (api.idempotency_hours).
    since: str


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


# Stored params hold the fields the client gave (TaskFields); defaults fill in the rest.
_INPUT_DEFAULTS = TaskInput(a_number="0", b_number="0").model_dump(
    mode="json", exclude={"a_number", "b_number", "start_time_utc", "callback_params"}
)
_CALLBACK_DEFAULTS = CallbackParams().model_dump(mode="json")
_CALLBACK_FIELDS = set(CallbackParams.model_fields)
_OUTPUT_FIELDS = set(TaskOutput.model_fields)
_URL_FIELDS = tuple(name for name in TaskInput.model_fields if name.startswith("url_"))


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


_gc_pauses = 0
_gc_was_enabled = True
_gc_pauses_lock = threading.Lock()


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a bulk add builds its objects: 10,000 tasks
    are hundreds of thousands of dicts and lists, each allocation counting towards a
    collection that walks them all again (a third of the validation time). Nothing they
    hold is cyclic; reference counting frees them. Only around code that does not wait
    on others, so collection is never held off for long."""
    global _gc_pauses, _gc_was_enabled
    with _gc_pauses_lock:
        _gc_pauses += 1
        if _gc_pauses == 1:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
    try:
        yield
    finally:
        with _gc_pauses_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


@dataclass
class NewTasks:
    """A batch of validated TaskFields ready for `insert_tasks`: the stored params and
    start times as JSON arrays, prepared before the write lock is taken."""

    scheduler_id: int
    now: str
    batch: list[dict[str, Any]]
    starts: list[str | None]
    params_json: str
    starts_json: str

    def answers(self, first_id: int) -> list[dict[str, Any]]:
        """The tasks as the API shows them (TaskOutput fields, JSON-ready), built the
        way a read builds them."""
        waiting = {
            **_INPUT_DEFAULTS,
            "callback_params": _CALLBACK_DEFAULTS,
            "scheduler_id": self.scheduler_id,
            "start_time_utc": None,
            "status": str(TaskStatus.SCHEDULED),
            "finish_result": None,
            "finish_comment": "",
            "cdr": "",
            "attempts_made": 0,
            "next_attempt_utc": self.now,
            "create_date_utc": self.now,
        }
        answers = []
        for task_id, fields in enumerate(self.batch, first_id):
            answer = waiting | fields
            answer["id"] = task_id
            if "callback_params" in fields:
                answer["callback_params"] = _CALLBACK_DEFAULTS | fields["callback_params"]
            for url_field in _URL_FIELDS:  # pydantic-core Url objects in the fields
                if url_field in fields and fields[url_field] is not None:
                    answer[url_field] = str(fields[url_field])
            answers.append(answer)
        for i, start in enumerate(self.starts):
            if start is not None:
                answers[i]["start_time_utc"] = answers[i]["next_attempt_utc"] = start
        return answers


def new_tasks(scheduler_id: int, batch: list[dict[str, Any]], now: str) -> NewTasks:
    """Prepare validated TaskFields (taken over: they become the stored params)."""
    starts: list[str | None] = []
    for i, fields in enumerate(batch):
        if "start_time_utc" in fields:
            start = fields.pop("start_time_utc")
            if start is not None:
                starts.extend([None] * (i - len(starts)))
                starts.append(format_time(start))
    # Text, not bytes: SQLite's JSON functions take no BLOB.
    return NewTasks(
        scheduler_id, now, batch, starts, to_json(batch).decode(), to_json(starts).decode()
    )


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


def page_sql(condition: str, order: str = "") -> str:
    """One page of tasks by id. The page's ids are found in an index alone (the skipped
    rows of a deep page cost an index entry each, not a table row), then read; `order`
    DESC counts the offset from the last task."""
    return (
        "SELECT * FROM tasks WHERE id IN"  # noqa: S608
        f" (SELECT id FROM tasks WHERE {condition} ORDER BY id {order} LIMIT ? OFFSET ?)"
        " ORDER BY id"
    )


def _page(
    conn: sqlite3.Connection,
    condition: str,
    params: list[object],
    count_sql: str,
    limit: int,
    offset: int,
) -> tuple[list[sqlite3.Row], int]:
    """A page and the total, read in one snapshot. A page past the middle is counted
    from the end: every skipped task costs an index entry, and the last page of a
    queue of 250,000 skipped 249,900 of them (30 ms here) instead of none."""
    total = int(conn.execute(count_sql, params).fetchone()[0])
    if total // 2 < offset < total:
        from_end = total - offset - limit
        rows = conn.execute(
            page_sql(condition, "DESC"),
            [*params, limit + min(from_end, 0), max(from_end, 0)],
        ).fetchall()
    else:
        rows = conn.execute(page_sql(condition), [*params, limit, offset]).fetchall()
    return rows, total


def _finish(
    task_id: int, result: FinishResult, comment: str, now: str, conn: sqlite3.Connection
) -> bool:
    # Imported here: the webhooks module renders tasks with this one's task_from_row.
    from daemon.store.webhooks import WebhookEvent, enqueue_webhook_now

    cursor = conn.execute(
        q("finish_task"), {"id": task_id, "result": str(result), "comment": comment}
    )
    if cursor.rowcount != 1:
        return False
    row = conn.execute(q("select_task_by_id"), {"id": task_id}).fetchone()
    last_call = row["cdr"] if row is not None and row["cdr"] else None
    enqueue_webhook_now(conn, WebhookEvent.AFTER, task_id, last_call, now)
    return True


async def _insert(
    tx: aiosqlite.Connection, new: NewTasks, render: Callable[[list[dict[str, Any]]], str]
) -> str:
    """Insert a batch inside the caller's transaction; returns the rendered answer."""
    cursor = await tx.execute(q("next_task_id"))
    row = await cursor.fetchone()
    assert row is not None
    first_id = int(row[0])
    # SQLite inserts the whole batch in one statement, off the GIL, while a worker thread
    # renders the answer. The answer still goes out only after the commit.
    insert = asyncio.ensure_future(
        tx.execute(
            q("insert_tasks"),
            {
                "first_id": first_id,
                "scheduler_id": new.scheduler_id,
                "params": new.params_json,
                "starts": new.starts_json,
                "now": new.now,
            },
        )
    )

    def answer() -> str:
        with gc_paused():
            return render(new.answers(first_id))

    try:
        return await asyncio.get_running_loop().run_in_executor(None, answer)
    finally:
        # Whatever happened to the answer, the insert is over before the transaction
        # commits or rolls back.
        await insert


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
        """`add_fields` for tasks that are models already."""
        batch = [task.model_dump(exclude_unset=True) for task in tasks]
        return await self.add_fields(client_id, scheduler_id, batch, now, render, idempotent)

    async def add_fields(
        self,
        client_id: str,
        scheduler_id: int,
        batch: list[dict[str, Any]],
        now: str,
        render: Callable[[list[dict[str, Any]]], str],
        idempotent: IdempotentRequest | None = None,
    ) -> StoredResponse:
        """Insert all tasks (validated TaskFields, taken over) in one transaction; `render`
        turns their answers (TaskOutput fields as JSON-ready dicts) into the response
        body. With an Idempotency-Key, a repeated key returns the response stored the
        first time and inserts nothing."""
        # Prepared before the write lock is taken, so other writers wait less.
        with gc_paused():
            new = new_tasks(scheduler_id, batch, now)
        async with self._db.transaction() as tx:
            if idempotent is not None:
                cursor = await tx.execute(
                    q("select_idempotency"),
                    {"client_id": client_id, "key": idempotent.key, "since": idempotent.since},
                )
                earlier = await cursor.fetchone()
                if earlier is not None:
                    return StoredResponse(
                        status=earlier["status"],
                        body=earlier["body"],
                        replayed=True,
                        same_request=earlier["request_hash"] == idempotent.request_hash,
                    )
            body = await _insert(tx, new, render)
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
        if where.name is None:
            # Status and result filters are answered from the trigger-kept counts.
            count_sql = f"SELECT coalesce(sum(n), 0) FROM task_counts WHERE {condition}"  # noqa: S608
        else:
            count_sql = f"SELECT count(*) FROM tasks WHERE {condition}"  # noqa: S608
        rows, total = await self._db.read(
            lambda conn: _page(conn, condition, params, count_sql, limit, offset)
        )
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
        return await self._db.write(partial(_finish, task_id, result, comment, now))
