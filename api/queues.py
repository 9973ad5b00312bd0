"""Queue endpoints: /client/{client_id}/task_scheduler/."""

from __future__ import annotations

from aiohttp import web

from api.auth import path_client
from api.body import int_path, read_model
from api.errors import Problem
from api.respond import list_response, model_response
from api.routing import Route, services
from api.tokens import tokens
from daemon.clock import now_text
from daemon.models import QueueInput, QueueOutput, QueueUpdate
from daemon.store.queues import DeleteOutcome, UnknownInterval

TAG = "Queues"
BASE = "/client/{client_id}/task_scheduler/"
ONE = BASE + "{scheduler_id}"


async def owned_queue(request: web.Request) -> tuple[str, QueueOutput]:
    """The client and the queue named in the path; 404 unless that client owns it."""
    client = path_client(request, tokens(request))
    queue = await services(request).queues.get(client, int_path(request, "scheduler_id"))
    if queue is None:
        raise Problem(404, "no such queue")
    return client, queue


def _unknown_interval() -> Problem:
    error = {"loc": "interval_id", "field": "interval_id", "message": "no such interval"}
    return Problem(422, "1 invalid field", errors=[error])


async def create_queue(request: web.Request) -> web.Response:
    client = path_client(request, tokens(request))
    body = await read_model(request, QueueInput)
    svc = services(request)
    try:
        queue = await svc.queues.create(client, body, now_text(svc.clock))
    except UnknownInterval:
        raise _unknown_interval() from None
    svc.scheduler.wake()
    return model_response(queue, status=201)


async def list_queues(request: web.Request) -> web.Response:
    client = path_client(request, tokens(request))
    queues = await services(request).queues.list(client)
    return list_response(queues, len(queues), QueueOutput)


async def get_queue(request: web.Request) -> web.Response:
    _, queue = await owned_queue(request)
    return model_response(queue)


async def update_queue(request: web.Request) -> web.Response:
    client, queue = await owned_queue(request)
    change = await read_model(request, QueueUpdate)
    svc = services(request)
    try:
        updated = await svc.queues.update(client, queue.id, change)
    except UnknownInterval:
        raise _unknown_interval() from None
    if updated is None:
        raise Problem(404, "no such queue")
    svc.scheduler.wake()
    return model_response(updated)


async def delete_queue(request: web.Request) -> web.Response:
    client, queue = await owned_queue(request)
    outcome = await services(request).queues.delete(client, queue.id)
    if outcome is DeleteOutcome.NOT_FOUND:
        raise Problem(404, "no such queue")
    if outcome is DeleteOutcome.HAS_UNFINISHED_TASKS:
        raise Problem(409, "the queue still holds unfinished tasks; cancel them first")
    return web.Response(status=204)


ROUTES = [
    Route(
        "POST",
        BASE,
        create_queue,
        "Create a queue",
        201,
        QueueInput,
        QueueOutput,
        errors=(400, 413, 415, 422),
        operation_id="createQueue",
        tag=TAG,
    ),
    Route(
        "GET",
        BASE,
        list_queues,
        "List the client's queues",
        operation_id="listQueues",
        tag=TAG,
        response=QueueOutput,
        response_is_list=True,
    ),
    Route(
        "GET",
        ONE,
        get_queue,
        "One queue with its counters",
        response=QueueOutput,
        errors=(404,),
        operation_id="getQueue",
        tag=TAG,
    ),
    Route(
        "PUT",
        ONE,
        update_queue,
        "Change the fields named in the body",
        operation_id="updateQueue",
        tag=TAG,
        body=QueueUpdate,
        response=QueueOutput,
        errors=(400, 404, 413, 415, 422),
    ),
    Route(
        "DELETE",
        ONE,
        delete_queue,
        "Delete a queue that holds no unfinished task",
        204,
        errors=(404, 409),
        operation_id="deleteQueue",
        tag=TAG,
    ),
]
