"""The route table: one list that both registers the handlers and writes the OpenAPI
document, so the document cannot miss a route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import BaseModel

from daemon.metrics import Metrics
from daemon.services import Services

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SERVICES = web.AppKey("services", Services)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    # The operation's name in the OpenAPI document (what generated clients call it,
    # e.g. createQueue) and the group it is listed under.
    operation_id: str = field(kw_only=True)
    tag: str = field(kw_only=True)
    status: int = 200
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    response_is_list: bool = False
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    # PUT that changes only the fields it names: the body is `body` with nothing required.
    partial_body: bool = False
    # Statuses answered with the `response` body rather than a problem (readiness: 503).
    same_body_statuses: tuple[int, ...] = ()
    auth: bool = True
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


METRICS = web.AppKey("metrics", Metrics)
