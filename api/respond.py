"""JSON responses built straight from pydantic models."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter
from pydantic_core import to_json


def model_response(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=model.model_dump_json(), content_type="application/json"
    )


def list_response(items: Sequence[BaseModel], total: int, model: type[BaseModel]) -> web.Response:
    """A JSON array with the total in X-Total-Count, as every list endpoint answers."""
    return _list(dump_list(items, model), total)


def fields_list_response(items: Sequence[dict[str, Any]], total: int) -> web.Response:
    """The same for items already made JSON-ready (a page of tasks), rendered by
    pydantic-core: several times faster than json.dumps for a page of 1,000 tasks."""
    return _list(to_json(items), total)


def _list(body: bytes, total: int) -> web.Response:
    return web.Response(
        body=body, content_type="application/json", headers={"X-Total-Count": str(total)}
    )


@cache
def _list_adapter(model: type[BaseModel]) -> TypeAdapter[Any]:
    # Built once per model: building one costs far more than dumping a page with it.
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def dump_list(items: Sequence[BaseModel], model: type[BaseModel]) -> bytes:
    return _list_adapter(model).dump_json(list(items))
