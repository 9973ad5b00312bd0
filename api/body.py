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


async def read_body(request: web.Request) -> bytes:
    """The raw body of a JSON request: 415 unless it is declared JSON; 413 past the size
    limit (aiohttp enforces it while reading)."""
    ctype = request.content_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise Problem(415, "the body must be JSON, sent as 'Content-Type: application/json'")
    return await request.read()


def parse_json(raw: bytes) -> Any:
    """Strict JSON: 400 for anything malformed, including NaN/Infinity, duplicate keys,
    absurd nesting, and any encoding but UTF-8."""
    try:
        # Strictly UTF-8 (RFC 8259 §8.1): json.loads on bytes would also take UTF-16/32
        # and a BOM, which other parsers refuse.
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(400, f"malformed JSON: not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
    except RecursionError:
        raise Problem(400, "malformed JSON: nested too deeply") from None
    except ValueError as exc:
        raise Problem(400, f"malformed JSON: {exc}") from None


async def read_json(request: web.Request) -> tuple[bytes, Any]:
    """The raw body and its parsed JSON (see `read_body` and `parse_json`)."""
    raw = await read_body(request)
    return raw, parse_json(raw)


# Every byte but the two that tell a JSON text's structure apart from its strings.
_NOT_QUOTE_OR_COLON = bytes(range(256)).translate(None, b'":')


def count_members(valid_json: bytes) -> int:
    """How many name/value pairs the objects of a *valid* JSON text hold, duplicates
    included, i.e. how many colons stand outside its strings. Compared with the members
    a parser kept, it tells whether any object repeated a name, in a few C-speed passes
    instead of a Python call per object."""
    text = valid_json
    if b"\\" in text:
        # Escapes pair up from the left, so dropping `\\` and then `\"` leaves only
        # the quotes that open or close a string.
        text = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Dropping two adjacent quotes keeps every colon on the same side of a string
    # boundary; what is left splits into few pieces.
    marks = text.translate(None, _NOT_QUOTE_OR_COLON).replace(b'""', b"")
    return b"".join(marks.split(b'"')[0::2]).count(b":")


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
