"""Reading request bodies and query strings: strict JSON, clean errors."""

from __future__ import annotations

import json
from typing import Any, NoReturn, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from api.errors import Problem, unprocessable

M = TypeVar("M", bound=BaseModel)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate key {dup!r}")
    return obj


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


async def read_json(request: web.Request) -> tuple[bytes, Any]:
    """The raw body and its parsed JSON. 415 unless the body is declared JSON; 413 past
    the size limit (aiohttp enforces it while reading); 400 for anything malformed,
    including NaN/Infinity, duplicate keys, absurd nesting, and any encoding but UTF-8."""
    ctype = request.content_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise Problem(415, "the body must be JSON, sent as 'Content-Type: application/json'")
    raw = await request.read()
    try:
        # Strictly UTF-8 (RFC 8259 §8.1): json.loads on bytes would also take UTF-16/32
        # and a BOM, which other parsers refuse.
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(400, f"malformed JSON: not UTF-8 (byte {exc.start})") from None
    try:
        return raw, json.loads(
            text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants
        )
    except RecursionError:
        raise Problem(400, "malformed JSON: nested too deeply") from None
    except ValueError as exc:
        raise Problem(400, f"malformed JSON: {exc}") from None


async def read_model(request: web.Request, model: type[M]) -> M:
    _, data = await read_json(request)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise unprocessable(exc) from None


def parse_query(
    request: web.Request, model: type[M], repeatable: frozenset[str] = frozenset()
) -> M:
    """Validate a query string; `repeatable` parameters arrive as lists."""
    data: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        data[key] = values if key in repeatable else values[-1]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise unprocessable(exc) from None


def int_path(request: web.Request, name: str) -> int:
    """A numeric id from the path; anything else names no resource."""
    text = request.match_info[name]
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise Problem(404, "no such resource")
    return int(text)
