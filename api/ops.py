"""Operations endpoints: health, readiness, metrics, the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from api.openapi import OPENAPI
from api.respond import model_response
from api.routing import METRICS, Route, services
from api.schemas import AsrGuardReport, Health, Readiness


async def healthz(request: web.Request) -> web.Response:
    return model_response(Health(status="ok"))


async def readyz(request: web.Request) -> web.Response:
    """Ready when the store takes writes and AMI is logged in and able to place calls
    (reconciled after login, callbackd's dialplan loaded); the body names the part
    that is not."""
    svc = services(request)
    store_ok = await svc.db.is_writable()
    ami_ok = svc.ami_status.ready
    ready = Readiness(
        ready=store_ok and ami_ok,
        store="ok" if store_ok else "not writable",
        ami="ok" if ami_ok else (svc.ami_status.last_error or "not logged in"),
        asr_guard={
            "default" if profile is None else str(profile): AsrGuardReport(
                tripped=guard.tripped,
                attempts=guard.attempts,
                answered=guard.answered,
                ratio=guard.ratio,
                min_ratio=guard.min_ratio,
                min_attempts=guard.min_attempts,
            )
            for profile, guard in svc.asr.states().items()
        },
    )
    return model_response(ready, status=200 if ready.ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body, content_type = await request.app[METRICS].render(services(request))
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


TAG = "Operations"
ROUTES = [
    Route(
        "GET",
        "/healthz",
        healthz,
        "The process is alive",
        response=Health,
        auth=False,
        operation_id="getHealth",
        tag=TAG,
    ),
    Route(
        "GET",
        "/readyz",
        readyz,
        "Store writable, AMI logged in and able to place calls",
        response=Readiness,
        same_body_statuses=(503,),
        auth=False,
        operation_id="getReadiness",
        tag=TAG,
    ),
    Route(
        "GET",
        "/metrics",
        metrics,
        "Prometheus metrics",
        auth=False,
        content_type="text/plain",
        operation_id="getMetrics",
        tag=TAG,
    ),
    Route(
        "GET",
        "/openapi.json",
        openapi,
        "This API as OpenAPI 3.1",
        auth=False,
        operation_id="getOpenApi",
        tag=TAG,
    ),
]
