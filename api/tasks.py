"""Task endpoints: /client/{client_id}/task_scheduler/{scheduler_id}/tasks/."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from functools import partial
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from pydantic_core import to_json

from api.body import count_members, int_path, parse_json, parse_query, read_body, read_json
from api.errors import Problem, unprocessable
from api.queues import ONE as QUEUE_PATH
from api.queues import owned_queue
from api.respond import fields_list_response, list_response, model_response
from api.routing import Route, services
from api.schemas import TaskListQuery, TasksCreate, TasksCreated
from config import Settings
from daemon.clock import now_text
from daemon.models import (
    TASK_BATCH,
    CallRecord,
    QueueOutput,
    TaskInput,
    TaskOutput,
    a_numbers_differ,
    format_time,
)
from daemon.services import Services
from daemon.store.tasks import ChangeOutcome, IdempotentRequest, TaskFilter, gc_paused, off_loop
from daemon.task_service import cancel_task

TAG = "Tasks"
BASE = QUEUE_PATH + "/tasks/"
ONE = BASE + "{task_id}"
MAX_IDEMPOTENCY_KEY = 255
MAX_REPORTED_ERRORS = 1000


def _unknown_extensions(tasks: list[Any], settings: Settings) -> list[dict[str, Any]]:
    """An error for each task naming an extension profile the config does not have.
    `tasks` may be the raw, unvalidated list: only int ids are looked at."""
    return [
        {
            "loc": f"tasks[{i}].extension_id",
            "index": i,
            "field": "extension_id",
            "message": f"no extension profile {task['extension_id']} in the config",
        }
        for i, task in enumerate(tasks)
        if isinstance(task, dict)
        and type(task.get("extension_id")) is int
        and task["extension_id"] not in settings.extensions
    ]


def _invalid(errors: list[dict[str, Any]]) -> Problem:
    count = len(errors)
    errors.sort(key=lambda e: e.get("index", -1))  # stable: each task's own order kept
    detail = f"{count} invalid field{'s' if count != 1 else ''}"
    return Problem(422, detail, errors=errors[:MAX_REPORTED_ERRORS])


def _members(task: dict[str, Any]) -> int:
    return len(task) + len(task.get("callback_params", ())) + len(task.get("variables", ()))


def _fast_batch(raw: bytes) -> list[dict[str, Any]] | None:
    """The tasks of a bulk add validated in one pass of pydantic-core, straight from the
    bytes; None when anything is wrong with them, to be found and named by
    `_checked_batch`. The parser keeps the last of repeated keys: counting the members
    of the raw JSON catches them."""
    try:
        tasks = TASK_BATCH.validate_json(raw)["tasks"]
    except ValidationError:
        return None
    if count_members(raw) != 1 + sum(map(_members, tasks)):
        return None
    for task in tasks:
        extended = task.get("callback_params", {}).get("extended_a_numbers")
        if extended and not a_numbers_differ(task["a_number"], extended):
            return None
    return tasks


def _checked_batch(raw: bytes, settings: Settings) -> list[dict[str, Any]]:
    """The tasks of a bulk add through the strict JSON parser and TaskInput: 400 or 422
    naming every problem, by index and field, unknown extension profiles included."""
    data = parse_json(raw)
    raw_tasks = data.get("tasks") if isinstance(data, dict) else None
    unknown = _unknown_extensions(raw_tasks if isinstance(raw_tasks, list) else [], settings)
    try:
        body = TasksCreate.model_validate(data)
    except ValidationError as exc:
        raise _invalid((unprocessable(exc).errors or []) + unknown) from None
    if unknown:
        raise _invalid(unknown)
    return [task.model_dump(exclude_unset=True) for task in body.tasks]


def _validated_batch(raw: bytes, settings: Settings) -> list[dict[str, Any]]:
    with gc_paused():
        tasks = _fast_batch(raw)
        if tasks is None or _unknown_extensions(tasks, settings):
            tasks = _checked_batch(raw, settings)
    return tasks


def _idempotency(
    request: web.Request, svc: Services, queue_id: int, raw: bytes
) -> IdempotentRequest | None:
    """The key and what it stands for: this body sent to this queue. The same key sent
    to another queue is another request, not a repeat of the first. A key is kept for
    `api.idempotency_hours`, far longer than any client retries."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise Problem(400, f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable characters")
    digest = hashlib.sha256(f"{queue_id}\n".encode() + raw).hexdigest()
    since = svc.clock.now() - timedelta(hours=svc.settings.api.idempotency_hours)
    return IdempotentRequest(key=key, request_hash=digest, since=format_time(since))


async def add_tasks(request: web.Request) -> web.Response:
    """All or nothing: one invalid task rejects the request and stores nothing."""
    client, queue = await owned_queue(request)
    raw = await read_body(request)
    svc = services(request)
    idempotent = _idempotency(request, svc, queue.id, raw)
    tasks = await off_loop(partial(_validated_batch, raw, svc.settings), large=len(raw) > 65_536)
    stored = await svc.tasks.add_fields(
        client,
        queue.id,
        tasks,
        now_text(svc.clock),
        render=lambda created: to_json({"tasks": created}).decode(),
        idempotent=idempotent,
    )
    if stored.replayed and not stored.same_request:
        raise Problem(422, "this Idempotency-Key was used before with a different request")
    if not stored.replayed:
        svc.scheduler.wake()
    headers = {"Idempotent-Replayed": "true"} if stored.replayed else {}
    return web.Response(
        status=stored.status, text=stored.body, content_type="application/json", headers=headers
    )


async def list_tasks(request: web.Request) -> web.Response:
    _, queue = await owned_queue(request)
    query = parse_query(request, TaskListQuery, repeatable=frozenset({"status"}))
    where = TaskFilter(
        statuses=tuple(query.status),
        finish_result=query.finish_result,
        name=query.name,
        number=query.number,
    )
    tasks, total = await services(request).tasks.list(queue.id, where, query.per_page, query.offset)
    return fields_list_response(tasks, total)


async def owned_task(request: web.Request) -> tuple[QueueOutput, TaskOutput]:
    """The queue and the task named in the path; 404 unless the client owns them."""
    _, queue = await owned_queue(request)
    task = await services(request).tasks.get(queue.id, int_path(request, "task_id"))
    if task is None:
        raise Problem(404, "no such task")
    return queue, task


async def _owned_task(request: web.Request) -> TaskOutput:
    return (await owned_task(request))[1]


async def get_task(request: web.Request) -> web.Response:
    return model_response(await _owned_task(request))


def _merged_input(task: TaskOutput, change: dict[str, Any]) -> TaskInput:
    """PUT changes the fields it names; the result is validated as a whole task."""
    current = task.model_dump(include=set(TaskInput.model_fields), exclude_none=True)
    try:
        return TaskInput.model_validate(current | change)
    except ValidationError as exc:
        raise unprocessable(exc) from None


async def update_task(request: web.Request) -> web.Response:
    task = await _owned_task(request)
    _, change = await read_json(request)
    if not isinstance(change, dict):
        raise Problem(422, "the body must be a JSON object with the fields to change")
    merged = _merged_input(task, change)
    svc = services(request)
    unknown = _unknown_extensions([merged.model_dump(include={"extension_id"})], svc.settings)
    if unknown:
        raise _invalid(unknown)
    changed = await svc.tasks.update(task.scheduler_id, task.id, merged, now_text(svc.clock))
    if changed.outcome is ChangeOutcome.WRONG_STATE:
        raise Problem(409, "only a task that has not started or waits for a retry can change")
    if changed.task is None:
        raise Problem(404, "no such task")
    svc.scheduler.wake()
    return model_response(changed.task)


async def delete_task(request: web.Request) -> web.Response:
    task = await _owned_task(request)
    svc = services(request)
    changed = await cancel_task(svc, task.scheduler_id, task.id)
    if changed.outcome is ChangeOutcome.WRONG_STATE:
        raise Problem(409, "the task is already finished")
    if changed.task is None:
        raise Problem(404, "no such task")
    return model_response(changed.task)


async def task_attempts(request: web.Request) -> web.Response:
    task = await _owned_task(request)
    attempts = await services(request).calls.of_task(task.id)
    return list_response(attempts, len(attempts), CallRecord)


ROUTES = [
    Route(
        "POST",
        BASE,
        add_tasks,
        "Add 1-10,000 tasks, all or nothing",
        201,
        TasksCreate,
        TasksCreated,
        errors=(400, 404, 413, 415, 422),
        headers={"Idempotency-Key": "repeat a key to get the first answer again"},
        operation_id="addTasks",
        tag=TAG,
    ),
    Route(
        "GET",
        BASE,
        list_tasks,
        "List tasks, filtered and paged",
        operation_id="listTasks",
        tag=TAG,
        response=TaskOutput,
        response_is_list=True,
        query=TaskListQuery,
        errors=(404, 422),
    ),
    Route(
        "GET",
        ONE,
        get_task,
        "One task",
        response=TaskOutput,
        errors=(404,),
        operation_id="getTask",
        tag=TAG,
    ),
    Route(
        "PUT",
        ONE,
        update_task,
        "Change a task that has not started or waits for a retry",
        operation_id="updateTask",
        tag=TAG,
        body=TaskInput,
        partial_body=True,
        response=TaskOutput,
        errors=(400, 404, 409, 413, 415, 422),
    ),
    Route(
        "DELETE",
        ONE,
        delete_task,
        "Cancel a task (hangs up its call if in one)",
        operation_id="cancelTask",
        tag=TAG,
        response=TaskOutput,
        errors=(404, 409),
    ),
    Route(
        "GET",
        ONE + "/attempts",
        task_attempts,
        "Every attempt of a task with its call",
        operation_id="listTaskAttempts",
        tag=TAG,
        response=CallRecord,
        response_is_list=True,
        errors=(404,),
    ),
]
