"""The aiohttp application: middlewares, routes, and the shared state it serves from."""

from __future__ import annotations

from aiohttp import web

from api import calls, docs_page, intervals, ops, queues, tasks
from api.auth import TokenTable
from api.console import routes as console
from api.cors import cors_middleware
from api.errors import problem_middleware
from api.openapi import OPENAPI, build_openapi
from api.routing import METRICS, SERVICES, Route
from api.tokens import TOKENS
from daemon.metrics import Metrics
from daemon.services import Services

ALL_ROUTES: list[Route] = [
    *queues.ROUTES,
    *tasks.ROUTES,
    *intervals.ROUTES,
    *calls.ROUTES,
    *ops.ROUTES,
    *docs_page.ROUTES,
    *console.ROUTES,
]


def create_app(services: Services, metrics: Metrics | None = None) -> web.Application:
    settings = services.settings.api
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[cors_middleware(settings.cors_origins), problem_middleware],
    )
    app[SERVICES] = services
    app[TOKENS] = TokenTable(settings.tokens)
    app[METRICS] = metrics or Metrics()
    app[OPENAPI] = build_openapi(ALL_ROUTES)
    for route in ALL_ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    return app
