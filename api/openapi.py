"""The OpenAPI 3.1 document, generated from the route table and the pydantic models the
handlers validate with."""

from __future__ import annotations

import re
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from api.routing import Route
from api.schemas import ProblemDetails
from api.tasks import MAX_IDEMPOTENCY_KEY
from config.settings import ApiSettings
from daemon.models import WebhookBody, WebhookEventName

OPENAPI = web.AppKey("openapi", dict[str, Any])
DESCRIPTION = """\
Callback tasks on Asterisk: call A; when A answers, call B and connect them.

Every request but the operations ones carries `Authorization: Bearer <token>`; a token
belongs to one client (or to all: admin). Times are UTC text `YYYY-MM-DD HH:MM:SS`.
Every error is `application/problem+json` (RFC 9457). Lists answer a JSON array with
the total in `X-Total-Count`. The daemon serves this document at `/openapi.json` and
renders it at `/docs`; the repository's docs/ folder tells the whole contract
(api.md, lifecycle.md, webhooks.md, configuration.md)."""
REF_TEMPLATE = "#/components/schemas/{model}"
_PARAM_RE = re.compile(r"{(\w+)}")
_PATH_PARAMS = {
    "client_id": ({"type": "string"}, "A client id, or @me for the client of the token."),
    "scheduler_id": ({"type": "integer"}, "The queue's id."),
    "task_id": ({"type": "integer"}, "The task's id."),
    "interval_id": ({"type": "integer"}, "The time interval's id."),
    "call_uuid": ({"type": "string"}, "The attempt's call uuid (a task's `cdr`)."),
}
TAGS = {
    "Queues": "Queues (task schedulers) of a client: on/off, concurrency limit, counters.",
    "Tasks": "Callback tasks of a queue: add (all or nothing, idempotent), list, change, "
    "cancel, attempts.",
    "Intervals": "Time intervals of a client: the calling hours a queue may start calls in.",
    "Call history": "One record per attempt's call, with the AMI events that decided it.",
    "Operations": "Health, readiness, metrics and this document; no token needed.",
    "Console": "The operator console at /ui/ and its assets; no token needed to load it "
    "(the page asks for one and reads the API with it).",
}
# Standard Webhooks headers of every webhook POST (docs/webhooks.md).
_WEBHOOK_HEADERS = {
    "webhook-id": "The webhook's id, the same on every retry: de-duplicate by it.",
    "webhook-timestamp": "Seconds since the Unix epoch when this try was sent.",
    "webhook-signature": "v1,<base64 HMAC-SHA256 of id.timestamp.body>, when "
    "webhooks.secret is set; absent otherwise.",
}
_WEBHOOK_SUMMARIES: dict[WebhookEventName, str] = {
    "before": "Before the first attempt of a task (its url_before)",
    "before_again": "Before each later attempt (url_before_again)",
    "success": "A and B are connected (url_success)",
    "after": "The task finished, with its result (url_after)",
}
# What the document promises is accepted; the server takes any printable key.
_HEADER_SCHEMAS = {
    "Idempotency-Key": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_IDEMPOTENCY_KEY,
        "pattern": "^[\\x20-\\x7e]+$",
    },
}


def _models(routes: Iterable[Route]) -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {
        "ProblemDetails": ProblemDetails,
        "WebhookBody": WebhookBody,
    }
    for route in routes:
        for model in (route.body, route.response):
            if model is not None:
                found[model.__name__] = model
    return list(found.values())


def _mode(model: type[BaseModel], routes: list[Route]) -> JsonSchemaMode:
    """Bodies are described as they are validated, responses as they are written."""
    return "validation" if any(r.body is model for r in routes) else "serialization"


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF_TEMPLATE)
    params = []
    for name, prop in schema.get("properties", {}).items():
        described = dict(prop)
        text = described.pop("description")
        params.append(
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": text,
                "schema": described,
            }
        )
    return params


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def _body_ref(route: Route) -> dict[str, str]:
    assert route.body is not None
    name = route.body.__name__ + ("Change" if route.partial_body else "")
    return {"$ref": REF_TEMPLATE.format(model=name)}


def _partial_bodies(routes: list[Route], schemas: dict[str, Any]) -> dict[str, Any]:
    """A partial update's body: the model's fields, none of them required."""
    out = {}
    for route in routes:
        if route.partial_body and route.body is not None:
            name = route.body.__name__
            whole = {key: value for key, value in schemas[name].items() if key != "required"}
            out[name + "Change"] = {**whole, "title": name + "Change"}
    return out


# What a 401 answers besides its problem (RFC 6750 §3).
_CHALLENGE = {
    "WWW-Authenticate": {
        "description": 'Bearer realm="callbackd", with error="invalid_token" when the '
        "token sent is not valid.",
        "schema": {"type": "string"},
    }
}


def _problem_statuses(route: Route) -> set[int]:
    """Every problem a route can answer. Besides the ones its entry names, the shape of the
    route brings its own: a token (401), a client in the path (400 for `@me` with an admin
    token, 404 for another client's id), an id in the path (404), a body (400, 413, 415,
    422), a query string (422)."""
    codes = set(route.errors)
    params = set(_PARAM_RE.findall(route.path))
    if route.auth:
        codes.add(401)
    if "client_id" in params:
        codes |= {400, 404}
    if params - {"client_id"}:
        codes.add(404)
    if route.body is not None:
        codes |= {400, 413, 415, 422}
    if route.query is not None:
        codes.add(422)
    return codes - set(route.same_body_statuses)


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.operation_id,
        "tags": [route.tag],
        "summary": route.summary,
        "responses": {},
    }
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": _PATH_PARAMS[name][1],
            "schema": _PATH_PARAMS[name][0],
        }
        for name in _PARAM_RE.findall(route.path)
    ]
    if route.query is not None:
        params.extend(_query_parameters(route.query))
    params.extend(
        {
            "name": name,
            "in": "header",
            "required": False,
            "description": text,
            "schema": _HEADER_SCHEMAS.get(name, {"type": "string"}),
        }
        for name, text in route.headers.items()
    )
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _body_ref(route)}},
        }
    if route.response is not None:
        schema: dict[str, Any] = _ref(route.response)
        if route.response_is_list:
            schema = {"type": "array", "items": schema}
        ok: dict[str, Any] = {
            "description": "OK",
            "content": {route.content_type: {"schema": schema}},
        }
        if route.response_is_list:
            ok["headers"] = {"X-Total-Count": {"schema": {"type": "integer"}}}
        op["responses"][str(route.status)] = ok
        for code in route.same_body_statuses:
            op["responses"][str(code)] = {**ok, "description": HTTPStatus(code).phrase}
    else:
        text = "No content" if route.status == 204 else "OK"
        op["responses"][str(route.status)] = {"description": text}
        if route.status != 204:
            op["responses"][str(route.status)]["content"] = {route.content_type: {"schema": {}}}
    problem = {"application/problem+json": {"schema": _ref(ProblemDetails)}}
    for code in sorted(_problem_statuses(route)):
        op["responses"][str(code)] = {"description": HTTPStatus(code).phrase, "content": problem}
    if "401" in op["responses"]:
        op["responses"]["401"]["headers"] = _CHALLENGE
    op["security"] = [{"bearer": []}] if route.auth else []
    return op


def _webhooks() -> dict[str, Any]:
    """The four webhook events (OpenAPI 3.1 `webhooks`): what callbackd POSTs to a
    task's URLs, and how it reads the answer."""
    headers = [
        {
            "name": name,
            "in": "header",
            "required": name != "webhook-signature",
            "description": text,
            "schema": {"type": "string"},
        }
        for name, text in _WEBHOOK_HEADERS.items()
    ]
    return {
        event: {
            "post": {
                "operationId": "webhook" + event.title().replace("_", ""),
                "tags": ["Webhooks"],
                "summary": summary,
                "parameters": headers,
                # Not a token: the receiver checks webhook-signature (docs/webhooks.md).
                "security": [],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(WebhookBody)}},
                },
                "responses": {
                    "2XX": {"description": "Delivered: not sent again."},
                    "default": {
                        "description": "Anything else, or no answer within webhooks.timeout: "
                        "tried again later, up to webhooks.max_attempts tries."
                    },
                },
            }
        }
        for event, summary in _WEBHOOK_SUMMARIES.items()
    }


def _tags(routes: list[Route]) -> list[dict[str, str]]:
    names = dict.fromkeys([*(route.tag for route in routes), "Webhooks"])
    described = {**TAGS, "Webhooks": "What callbackd POSTs to a task's webhook URLs."}
    return [
        {"name": name, **({"description": described[name]} if name in described else {})}
        for name in names
    ]


def build_openapi(routes: Iterable[Route]) -> dict[str, Any]:
    routes = list(routes)
    _, defs = models_json_schema(
        [(model, _mode(model, routes)) for model in _models(routes)], ref_template=REF_TEMPLATE
    )
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    schemas = defs.get("$defs", {})
    schemas.update(_partial_bodies(routes, schemas))
    return {
        "openapi": "3.1.0",
        "info": {"title": "callbackd", "version": "1", "description": DESCRIPTION},
        "servers": [
            {
                "url": "http://{listen}",
                "description": "A callbackd daemon; its api.listen address",
                "variables": {"listen": {"default": ApiSettings().listen}},
            }
        ],
        "security": [{"bearer": []}],
        "tags": _tags(routes),
        "paths": paths,
        "webhooks": _webhooks(),
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
