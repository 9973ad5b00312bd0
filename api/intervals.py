"""Time interval endpoints: /client/{client_id}/interval/ (a queue's calling hours)."""

from __future__ import annotations

from aiohttp import web

from api.auth import path_client
from api.body import int_path, read_model
from api.errors import Problem
from api.respond import list_response, model_response
from api.routing import Route, services
from api.tokens import tokens
from daemon.models import IntervalInput, IntervalOutput, IntervalUpdate
from daemon.store.intervals import DeleteOutcome

TAG = "Intervals"
BASE = "/client/{client_id}/interval/"
ONE = BASE + "{interval_id}"
NOT_FOUND = "no such interval"


async def create_interval(request: web.Request) -> web.Response:
    client = path_client(request, tokens(request))
    body = await read_model(request, IntervalInput)
    svc = services(request)
    interval = await svc.intervals.create(client, body, svc.clock.now())
    return model_response(interval, status=201)


async def list_intervals(request: web.Request) -> web.Response:
    client = path_client(request, tokens(request))
    svc = services(request)
    intervals = await svc.intervals.list(client, svc.clock.now())
    return list_response(intervals, len(intervals), IntervalOutput)


async def get_interval(request: web.Request) -> web.Response:
    client = path_client(request, tokens(request))
    svc = services(request)
    interval = await svc.intervals.get(client, int_path(request, "interval_id"), svc.clock.now())
    if interval is None:
        raise Problem(404, NOT_FOUND)
    return model_response(interval)


async def update_interval(request: web.Request) -> web.Response:
    client = path_client(request, tokens(request))
    interval_id = int_path(request, "interval_id")
    svc = services(request)
    if not await svc.intervals.owns(client, interval_id):
        raise Problem(404, NOT_FOUND)
    change = await read_model(request, IntervalUpdate)
    updated = await svc.intervals.update(client, interval_id, change, svc.clock.now())
    if updated is None:
        raise Problem(404, NOT_FOUND)
    # The queues on it are looked at again now: tasks held for it may start at once.
    svc.scheduler.wake()
    return model_response(updated)


async def delete_interval(request: web.Request) -> web.Response:
    client = path_client(request, tokens(request))
    outcome = await services(request).intervals.delete(client, int_path(request, "interval_id"))
    if outcome is DeleteOutcome.NOT_FOUND:
        raise Problem(404, NOT_FOUND)
    if outcome is DeleteOutcome.IN_USE:
        raise Problem(409, "a queue uses this interval; set its interval_id to another or null")
    return web.Response(status=204)


ROUTES = [
    Route(
        "POST",
        BASE,
        create_interval,
        "Create a time interval",
        201,
        IntervalInput,
        IntervalOutput,
        operation_id="createInterval",
        tag=TAG,
    ),
    Route(
        "GET",
        BASE,
        list_intervals,
        "List the client's time intervals",
        response=IntervalOutput,
        response_is_list=True,
        operation_id="listIntervals",
        tag=TAG,
    ),
    Route(
        "GET",
        ONE,
        get_interval,
        "One time interval",
        response=IntervalOutput,
        operation_id="getInterval",
        tag=TAG,
    ),
    Route(
        "PUT",
        ONE,
        update_interval,
        "Change the fields named in the body",
        body=IntervalUpdate,
        response=IntervalOutput,
        operation_id="updateInterval",
        tag=TAG,
    ),
    Route(
        "DELETE",
        ONE,
        delete_interval,
        "Delete a time interval that no queue uses",
        204,
        errors=(409,),
        operation_id="deleteInterval",
        tag=TAG,
    ),
]
