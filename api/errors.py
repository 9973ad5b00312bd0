"""RFC 9457 problem+json for every error; never a traceback in a response."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import structlog
from aiohttp import web
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from daemon.models import MAX_VARIABLE_TEXT, PATTERN_MESSAGES, unsafe_text_problem
from daemon.store.db import StoreUnavailable

PROBLEM_TYPE = "application/problem+json"
log = structlog.get_logger("callbackd.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Problem(Exception):
    """An error answer; raise it anywhere in a handler, the middleware renders it."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: Sequence[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return web.Response(
            status=self.status,
            text=json.dumps(problem_body(self.status, self.detail, self.errors)),
            content_type=PROBLEM_TYPE,
            headers=self.headers,
        )


def problem_body(
    status: int, detail: str, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    phrase = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": f"https://callbackd.dev/problems/{phrase.lower().replace(' ', '-')}",
        "title": phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return body


_FRIENDLY = {
    "string_pattern_mismatch": "contains characters that are not allowed",
    "extra_forbidden": "unknown field",
    "missing": "required",
}


def _pointer(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(err: ErrorDetails) -> str:
    if err["type"] == "string_pattern_mismatch":
        pattern = (err.get("ctx") or {}).get("pattern", "")
        return PATTERN_MESSAGES.get(pattern, _FRIENDLY["string_pattern_mismatch"])
    return _FRIENDLY.get(err["type"], err["msg"].removeprefix("Value error, "))


_VARIABLE_TEXT_ERRORS = frozenset({"string_pattern_mismatch", "string_too_long"})


def _variable_error(loc: list[int | str], err: ErrorDetails) -> tuple[list[int | str], str] | None:
    """A bad name or text of a task variable is reported at `variables`, naming the
    variable, as the API always has (the rules run on each name and value, in Rust)."""
    if "variables" not in loc or err["type"] not in _VARIABLE_TEXT_ERRORS:
        return None
    at = loc.index("variables")
    if len(loc) < at + 2:
        return None
    name = loc[at + 1]
    if len(loc) == at + 3 and loc[-1] == "[key]":
        message = f"variable name {name!r} {_message(err)}"
    elif err["type"] == "string_too_long":
        message = f"variable {name!r} is longer than {MAX_VARIABLE_TEXT} characters"
    else:
        message = unsafe_text_problem(str(err.get("input", "")))
    return loc[: at + 1], message


def validation_errors(
    exc: ValidationError, prefix: Sequence[int | str] = ()
) -> list[dict[str, Any]]:
    """Each error names where it is (`tasks[3].a_number`), by index and field too."""
    errors = []
    for err in exc.errors(include_url=False):
        loc = [*prefix, *err["loc"]]
        message = _message(err)
        if (variable := _variable_error(loc, err)) is not None:
            loc, message = variable
        entry: dict[str, Any] = {"loc": _pointer(loc), "message": message}
        if len(loc) >= 2 and loc[0] == "tasks" and isinstance(loc[1], int):
            entry["index"] = loc[1]
            entry["field"] = ".".join(str(p) for p in loc[2:]) or None
        else:
            entry["field"] = ".".join(str(p) for p in loc) or None
        errors.append(entry)
    return errors


def unprocessable(exc: ValidationError, prefix: Sequence[int | str] = ()) -> Problem:
    errors = validation_errors(exc, prefix)
    count = len(errors)
    return Problem(422, f"{count} invalid field{'s' if count != 1 else ''}", errors=errors)


_HTTP_DETAILS = {
    404: "no such resource",
    405: "this method is not allowed here",
    413: "request body too large",
}


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into problem+json; unexpected ones are logged, not shown."""
    try:
        return await handler(request)
    except Problem as problem:
        return problem.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        detail = _HTTP_DETAILS.get(exc.status, exc.reason)
        response = Problem(exc.status, detail).response()
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except StoreUnavailable as exc:
        log.error("request not stored", method=request.method, path=request.path, error=str(exc))
        response = Problem(503, "the store cannot take writes right now; try again").response()
        response.headers["Retry-After"] = "5"
        return response
    except Exception:
        log.exception("request failed", method=request.method, path=request.path)
        return Problem(500, "internal error; the details are in the daemon's log").response()
