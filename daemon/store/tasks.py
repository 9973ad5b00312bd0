"""Callback tasks in the store: bulk add (all or nothing, idempotent), list, change,
cancel; and the one writer of a task's status (`apply`, `transition`, `hold_where`),
which writes what daemon/lifecycle.py decides."""

from __future__ import annotations

import asyncio
import gc
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from functools import cache, partial
from typing import Any, TypeVar

from pydantic_core import to_json

from daemon.lifecycle import (
    AttemptEnded,
    Cancelled,
    Change,
    Edited,
    Event,
    HoldReason,
    TaskState,
    held_from,
    hold,
    next_state,
)
from daemon.models import (
    CallbackParams,
    FinishResult,
    TaskInput,
    TaskOutput,
    TaskStatus,
    format_time,
    parse_time,
)
from daemon.retry import RetryRules
from daemon.store.db import Database
from daemon.store.queries import q

T = TypeVar("T")


@dataclass(frozen=True)
class TaskFilter:
    statuses: tuple[TaskStatus, ...] = ()
    finish_result: FinishResult | None = None
    name: str | None = None
    number: str | None = None  # a part of the A, an extended A or the B number


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


@dataclass(frozen=True)
class Changed:
    """What a change of one task did, and the task as it is after it (None if there is
    no such task)."""

    outcome: ChangeOutcome
    task: TaskOutput | None = None


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


async def off_loop(work: Callable[[], T], *, large: bool) -> T:
    """`work()` in a worker thread when it is `large` (the validation and preparation
    of a bulk add take tens of milliseconds of CPU), so that the event loop goes on
    taking in call events and handing out the engine's writes meanwhile; inline when
    small, where a thread hop would cost more than it frees."""
    if not large:
        return work()
    return await asyncio.to_thread(work)


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


def _prepared(scheduler_id: int, batch: list[dict[str, Any]], now: str) -> NewTasks:
    with gc_paused():
        return new_tasks(scheduler_id, batch, now)


def _filter_sql(scheduler_id: int, where: TaskFilter) -> tuple[str, list[object]]:
    """The WHERE condition of a task filter; its columns exist in `tasks` and, except
    `name` and `number`, in `task_counts` too."""
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
    if where.number is not None:
        # Numbers hold no LIKE wildcards (+, digits, * and # only).
        clauses.append(
            "(params ->> '$.a_number' LIKE ? OR params ->> '$.b_number' LIKE ? OR EXISTS"
            " (SELECT 1 FROM json_each(params, '$.callback_params.extended_a_numbers')"
            " WHERE value LIKE ?))"
        )
        params.extend([f"%{where.number}%"] * 3)
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


_RULE_DEFAULTS = RetryRules(
    try_count=_INPUT_DEFAULTS["try_count"],
    try_again_pause=_INPUT_DEFAULTS["try_again_pause"],
    try_count_caller=_INPUT_DEFAULTS["try_count_caller"],
    try_again_pause_caller=_INPUT_DEFAULTS["try_again_pause_caller"],
)


def task_state(row: sqlite3.Row, *, with_rules: bool = True) -> TaskState:
    """What the lifecycle needs of a stored task; its retry rules and A numbers only
    `with_rules` (an ended attempt needs them, nothing else does)."""
    invalid = row["invalid_numbers"]
    rules, a_numbers = _RULE_DEFAULTS, ()
    if with_rules:
        # Stored params hold only the fields the client gave: the rest are defaults.
        params = json.loads(row["params"])
        get = params.get
        rules = RetryRules(
            try_count=get("try_count", _RULE_DEFAULTS.try_count),
            try_again_pause=get("try_again_pause", _RULE_DEFAULTS.try_again_pause),
            try_count_caller=get("try_count_caller", _RULE_DEFAULTS.try_count_caller),
            try_again_pause_caller=get(
                "try_again_pause_caller", _RULE_DEFAULTS.try_again_pause_caller
            ),
        )
        extended = get("callback_params", {}).get("extended_a_numbers", ())
        a_numbers = (params["a_number"], *extended)
    return TaskState(
        status=TaskStatus(row["status"]),
        attempts_made=row["attempts_made"],
        caller_attempts=row["caller_attempts"],
        invalid_numbers=() if invalid == "[]" else tuple(json.loads(invalid)),
        next_attempt=row["next_attempt"],
        rules=rules,
        a_numbers=a_numbers,
    )


def read_state(
    conn: sqlite3.Connection, task_id: int, *, with_rules: bool = False
) -> TaskState | None:
    # Without the rules, the params are not read: a claim costs one narrow row.
    query = q("select_task_state_and_params") if with_rules else q("select_task_state")
    row = conn.execute(query, {"id": task_id}).fetchone()
    return None if row is None else task_state(row, with_rules=with_rules)


@cache
def _change_sql(columns: tuple[str, ...], returning: bool) -> str:
    # Guarded by the state the change was decided from: a task that moved on meanwhile
    # is left alone.
    assignments = ", ".join(f"{name} = :{name}" for name in columns)
    return (
        f"UPDATE tasks SET {assignments} WHERE id = :id"  # noqa: S608 - names from lifecycle
        " AND status = :from_status AND attempts_made = :from_attempts"
        + (" RETURNING *" if returning else "")
    )


def _guarded(task_id: int, state: TaskState, values: dict[str, object]) -> dict[str, object]:
    """The parameters of `_change_sql`: the new values and the state they replace."""
    return {
        **values,
        "id": task_id,
        "from_status": str(state.status),
        "from_attempts": state.attempts_made,
    }


def apply(
    conn: sqlite3.Connection,
    task_id: int,
    state: TaskState,
    event: Event,
    now: datetime,
    *,
    returning: bool = False,
    **more: object,
) -> tuple[Change, sqlite3.Row | None] | None:
    """Write what `event` changes of the task in `state` (read in this transaction),
    with `more` columns the change carries (a PUT's new params); returns the change and,
    if `returning`, the task as written; None if the event does not apply (or the task
    is gone). Every change of a task's status goes through here."""
    change = next_state(state, event, now)
    if change is None:
        return None
    values = change.values() | more
    cursor = conn.execute(_change_sql(tuple(values), returning), _guarded(task_id, state, values))
    if returning:
        row = cursor.fetchone()
        return None if row is None else (change, row)
    return (change, None) if cursor.rowcount == 1 else None


def apply_each(conn: sqlite3.Connection, decided: Sequence[tuple[int, TaskState, Change]]) -> None:
    """Write many changes `next_state` decided, (task id, the state it was decided from,
    the change) each, as one batch per set of columns (a claim's all share theirs): one
    pipelined round trip on PostgreSQL. The caller holds the tasks' rows (read in this
    transaction, locked on the shared store), so every guarded update holds."""
    by_columns: dict[tuple[str, ...], list[dict[str, object]]] = {}
    for task_id, state, change in decided:
        values = change.values()
        by_columns.setdefault(tuple(values), []).append(_guarded(task_id, state, values))
    written = sum(
        conn.executemany(_change_sql(columns, False), rows).rowcount
        for columns, rows in by_columns.items()
    )
    if written != len(decided):
        # Rolls this write back: a task changed under a claim that held its row.
        raise sqlite3.IntegrityError(f"{len(decided) - written} of the tasks moved on meanwhile")


def transition(
    conn: sqlite3.Connection, task_id: int, event: Event, now: datetime
) -> Change | None:
    """`apply` to the task as it is stored now; the change written, or None."""
    state = read_state(conn, task_id, with_rules=isinstance(event, AttemptEnded))
    applied = None if state is None else apply(conn, task_id, state, event, now)
    return None if applied is None else applied[0]


def hold_where(
    conn: sqlite3.Connection,
    condition: str,
    params: Sequence[object],
    reason: HoldReason,
    until: datetime | None = None,
    comment: str | None = None,
) -> int:
    """Hold every task matching `condition` that the hold applies to, in one statement
    (a full queue may hold back thousands); returns how many changed."""
    change = hold(reason, until, comment)
    values = change.values()
    assignments = ", ".join(f"{name} = ?" for name in values)
    statuses = sorted(held_from(reason, until))
    sql = (
        f"UPDATE tasks SET {assignments} WHERE {condition}"  # noqa: S608 - names from lifecycle
        f" AND status IN ({', '.join('?' * len(statuses))})"
    )
    return conn.execute(sql, [*values.values(), *params, *statuses]).rowcount


def _cancel(scheduler_id: int, task_id: int, now: datetime, conn: sqlite3.Connection) -> Changed:
    # Imported here: the webhooks module renders tasks with this one's task_from_row.
    from daemon.store.webhooks import WebhookEvent, enqueue_webhook_now

    row = conn.execute(q("select_task"), {"id": task_id, "scheduler_id": scheduler_id}).fetchone()
    if row is None:
        return Changed(ChangeOutcome.NOT_FOUND)
    applied = apply(conn, task_id, task_state(row), Cancelled(), now, returning=True)
    if applied is None or applied[1] is None:
        return Changed(ChangeOutcome.WRONG_STATE, task_from_row(row))
    written = applied[1]
    # A task in a call sends its `after` webhook once the call has ended (its end is
    # written by the call engine), so that it carries the ended attempt.
    if row["status"] != TaskStatus.EXECUTED:
        cdr = written["cdr"] or None
        enqueue_webhook_now(conn, WebhookEvent.AFTER, task_id, cdr, format_time(now))
    return Changed(ChangeOutcome.CHANGED, task_from_row(written))


def _update(
    scheduler_id: int, task_id: int, task: TaskInput, now: datetime, conn: sqlite3.Connection
) -> Changed:
    row = conn.execute(q("select_task"), {"id": task_id, "scheduler_id": scheduler_id}).fetchone()
    if row is None:
        return Changed(ChangeOutcome.NOT_FOUND)
    applied = apply(
        conn,
        task_id,
        task_state(row),
        Edited(task.start_time_utc),
        now,
        returning=True,
        name=task.name,
        params=task.stored_params(),
        start_time=format_time(task.start_time_utc) if task.start_time_utc else None,
    )
    if applied is None or applied[1] is None:
        return Changed(ChangeOutcome.WRONG_STATE, task_from_row(row))
    return Changed(ChangeOutcome.CHANGED, task_from_row(applied[1]))


# Renders a bulk add's answer beside its insert (which runs in SQLite, off the GIL).
_RENDERER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-answer")


@dataclass(frozen=True)
class _Add:
    """A bulk add as one write, on the writer's thread: the Idempotency-Key looked up,
    the batch inserted in one statement while another thread renders the answer, and
    the answer kept with the key."""

    client_id: str
    new: NewTasks
    render: Callable[[list[dict[str, Any]]], str]
    idempotent: IdempotentRequest | None

    def __call__(self, conn: sqlite3.Connection) -> StoredResponse:
        idempotent, new = self.idempotent, self.new
        if idempotent is not None:
            earlier = conn.execute(
                q("select_idempotency"),
                {"client_id": self.client_id, "key": idempotent.key, "since": idempotent.since},
            ).fetchone()
            if earlier is not None:
                return StoredResponse(
                    status=earlier["status"],
                    body=earlier["body"],
                    replayed=True,
                    same_request=earlier["request_hash"] == idempotent.request_hash,
                )
        first_id = int(conn.execute(q("next_task_id")).fetchone()[0])
        answer = _RENDERER.submit(self._answer, first_id)
        try:
            conn.execute(
                q("insert_tasks"),
                {
                    "first_id": first_id,
                    "scheduler_id": new.scheduler_id,
                    "params": new.params_json,
                    "starts": new.starts_json,
                    "now": new.now,
                },
            )
        finally:
            # Whatever happened to the insert, the answer is done with before the
            # transaction goes on.
            body = answer.result()
        if idempotent is not None:
            conn.execute(
                q("insert_idempotency"),
                {
                    "client_id": self.client_id,
                    "key": idempotent.key,
                    "request_hash": idempotent.request_hash,
                    "status": 201,
                    "body": body,
                    "now": new.now,
                },
            )
        return StoredResponse(status=201, body=body, replayed=False)

    def _answer(self, first_id: int) -> str:
        with gc_paused():
            return self.render(self.new.answers(first_id))


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
        # Prepared before the write is queued, so other writes wait less.
        new = await off_loop(partial(_prepared, scheduler_id, batch, now), large=len(batch) > 100)
        return await self._db.write(_Add(client_id, new, render, idempotent), alone=True)

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
        if where.name is None and where.number is None:
            # Status and result filters are answered from the trigger-kept counts.
            count_sql = f"SELECT coalesce(sum(n), 0) FROM task_counts WHERE {condition}"  # noqa: S608
        else:
            count_sql = f"SELECT count(*) FROM tasks WHERE {condition}"  # noqa: S608
        rows, total = await self._db.read(
            lambda conn: _page(conn, condition, params, count_sql, limit, offset)
        )
        return [task_fields_from_row(row) for row in rows], total

    async def update(self, scheduler_id: int, task_id: int, task: TaskInput, now: str) -> Changed:
        """Replace a waiting task's input; a running or finished task is refused. The
        answer holds the task as this write left it."""
        return await self._db.write(partial(_update, scheduler_id, task_id, task, parse_time(now)))

    async def cancel(self, scheduler_id: int, task_id: int, now: str) -> Changed:
        """Finish an unfinished task `failed`, "cancelled", queueing its `after`
        webhook (for a task in a call: at the call's end); a finished task is refused."""
        return await self._db.write(partial(_cancel, scheduler_id, task_id, parse_time(now)))
