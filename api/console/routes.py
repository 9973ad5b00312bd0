"""The console's page and assets, and the read-only endpoints it shows: why a task
waits, a task's webhook deliveries, the ladder of a call."""

from __future__ import annotations

from importlib import resources

from aiohttp import web
from pydantic import BaseModel, Field

from api.auth import path_client
from api.calls import MAX_UUID
from api.calls import ONE as CALL_PATH
from api.errors import Problem
from api.respond import list_response, model_response
from api.routing import Route, services
from api.static import asset_routes
from api.tasks import ONE as TASK_PATH
from api.tasks import owned_task
from api.tokens import tokens
from daemon.ladder import Ladder, ladder
from daemon.models import TaskStatus
from daemon.plan import profile_for
from daemon.store.console_reads import ConsoleReads, Delivery
from daemon.waiting import Load, QueueState, Reason, TaskState, why_waiting

STATIC = resources.files(__package__).joinpath("static")
TAG = "Console"
ASSETS = {
    "/ui/": ("index.html", "text/html", "getConsole", "The operator console"),
    "/ui/console.js": ("console.js", "text/javascript", "getConsoleScript", "Its script"),
    "/ui/console.css": ("console.css", "text/css", "getConsoleStyle", "Its style sheet"),
}


class WhyReason(BaseModel):
    """One thing that keeps the task from starting now."""

    reason: Reason = Field(description="The reason as a code (docs/console.md lists them).")
    text: str = Field(description="The reason in plain words, with its numbers and times.")
    until: str | None = Field(
        description="When it goes away by itself (UTC), for the reasons that do; else null."
    )


class WhyNotRunning(BaseModel):
    """Why the task is not in a call now; the first reason is the one to act on."""

    task_id: int = Field(description="The task's id.")
    status: TaskStatus = Field(description="The task's status now.")
    reasons: list[WhyReason] = Field(
        description="Every reason, the first the one to act on; never empty."
    )


async def task_why(request: web.Request) -> web.Response:
    queue, task = await owned_task(request)
    svc = services(request)
    in_queue, everywhere, in_extension = await ConsoleReads(svc.db).running(
        queue.id, task.extension_id
    )
    settings = svc.settings
    reasons = why_waiting(
        TaskState(
            status=str(task.status),
            attempts_made=task.attempts_made,
            next_attempt_utc=task.next_attempt_utc,
            finish_result=task.finish_result,
            finish_comment=task.finish_comment,
            extension_id=task.extension_id,
        ),
        QueueState(
            status=queue.status,
            concurrent_task_limit=queue.concurrent_task_limit,
            # Calling hours, on a queue that has them.
            interval_open=queue.interval_open if queue.interval_id is not None else None,
            next_open_utc=queue.next_open_utc,
        ),
        Load(
            queue_running=in_queue,
            pbx_running=everywhere,
            pbx_limit=settings.calls.max_concurrent,
            extension_running=in_extension,
            extension_limit=profile_for(settings, task.extension_id).max_concurrent
            if task.extension_id is not None
            else None,
        ),
        svc.ami_status.ready,
        svc.clock.now(),
        svc.asr.states().get(task.extension_id),
    )
    answer = WhyNotRunning(
        task_id=task.id,
        status=task.status,
        reasons=[WhyReason(reason=r.reason, text=r.text, until=r.until) for r in reasons],
    )
    return model_response(answer)


async def task_webhooks(request: web.Request) -> web.Response:
    _, task = await owned_task(request)
    deliveries = await ConsoleReads(services(request).db).deliveries(task.id)
    return list_response(deliveries, len(deliveries), Delivery)


async def call_ladder(request: web.Request) -> web.Response:
    client = path_client(request, tokens(request))
    call_uuid = request.match_info["call_uuid"]
    svc = services(request)
    record = await svc.calls.get(client, call_uuid, False) if len(call_uuid) <= MAX_UUID else None
    if record is None:
        raise Problem(404, "no such call")
    events = await svc.calls.events(call_uuid)
    return model_response(ladder(call_uuid, record.b_number, events))


ROUTES = [
    *asset_routes(STATIC, ASSETS, TAG),
    Route(
        "GET",
        TASK_PATH + "/why",
        task_why,
        "Why the task is not in a call now",
        operation_id="getTaskWhy",
        tag="Tasks",
        response=WhyNotRunning,
        errors=(404,),
    ),
    Route(
        "GET",
        TASK_PATH + "/webhooks",
        task_webhooks,
        "The task's webhooks and how each delivery went",
        operation_id="listTaskWebhooks",
        tag="Tasks",
        response=Delivery,
        response_is_list=True,
        errors=(404,),
    ),
    Route(
        "GET",
        CALL_PATH + "/ladder",
        call_ladder,
        "The A and B legs of a call, step by step, from its AMI events",
        operation_id="getCallLadder",
        tag="Call history",
        response=Ladder,
        errors=(404,),
    ),
]
