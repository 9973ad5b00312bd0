"""Call history endpoints: /client/{client_id}/call_history/."""

from __future__ import annotations

from aiohttp import web

from api.auth import path_client
from api.body import parse_query
from api.errors import Problem
from api.respond import list_response, model_response
from api.routing import Route, services
from api.schemas import CallListQuery, CallQuery
from api.tokens import tokens
from daemon.models import CallRecord
from daemon.store.calls import CallFilter

TAG = "Call history"
BASE = "/client/{client_id}/call_history/"
ONE = BASE + "{call_uuid}"
MAX_UUID = 64


async def get_call(request: web.Request) -> web.Response:
    client = path_client(request, tokens(request))
    query = parse_query(request, CallQuery)
    call_uuid = request.match_info["call_uuid"]
    if len(call_uuid) > MAX_UUID:
        raise Problem(404, "no such call")
    record = await services(request).calls.get(client, call_uuid, query.with_events)
    if record is None:
        raise Problem(404, "no such call")
    return model_response(record)


async def list_calls(request: web.Request) -> web.Response:
    client = path_client(request, tokens(request))
    query = parse_query(request, CallListQuery)
    live = None if query.state is None else query.state == "live"
    where = CallFilter(
        task_id=query.task_id,
        since=query.since,
        until=query.until,
        live=live,
        number=query.number,
    )
    calls, total = await services(request).calls.list(client, where, query.per_page, query.offset)
    return list_response(calls, total, CallRecord)


ROUTES = [
    Route(
        "GET",
        ONE,
        get_call,
        "One attempt's call; ?events=1 adds its AMI events",
        operation_id="getCall",
        tag=TAG,
        response=CallRecord,
        query=CallQuery,
        errors=(404,),
    ),
    Route(
        "GET",
        BASE,
        list_calls,
        "Calls by time range, task, number and state (live: in progress), paged",
        operation_id="listCalls",
        tag=TAG,
        response=CallRecord,
        response_is_list=True,
        query=CallListQuery,
        errors=(422,),
    ),
]
