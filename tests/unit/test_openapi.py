"""The OpenAPI document as a client generator and a reader need it: named and grouped
operations, every field described, open endpoints marked open, formats that say what
the server accepts, the webhooks, and a document that validates as OpenAPI 3.1."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from openapi_spec_validator import validate
from pydantic import ValidationError

from api.app import ALL_ROUTES
from api.openapi import build_openapi
from daemon.models import (
    ISO_WITH_OFFSET_PATTERN,
    UTC_TEXT_PATTERN,
    UTC_TIME_PATTERN,
    TaskInput,
    format_time,
)

DOCUMENT = build_openapi(ALL_ROUTES)
OPEN_PATHS = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/ui/"}


def _operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in DOCUMENT["paths"].items():
        for method, op in item.items():
            yield path, method, op


def _properties(schema: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property of a schema, nested objects and alternatives included."""
    if isinstance(schema, dict):
        for name, prop in schema.get("properties", {}).items():
            yield f"{where}.{name}", prop
            yield from _properties(prop, f"{where}.{name}")
        for key in ("anyOf", "oneOf", "allOf"):
            for alt in schema.get(key, []):
                yield from _properties(alt, where)
        if "items" in schema:
            yield from _properties(schema["items"], where + "[]")


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(DOCUMENT)

    assert DOCUMENT["openapi"] == "3.1.0"


def test_every_operation_has_a_unique_operation_id_and_a_described_tag() -> None:
    ids = [op["operationId"] for _, _, op in _operations()]
    described = {tag["name"] for tag in DOCUMENT["tags"] if tag.get("description")}

    assert len(ids) == len(set(ids)) == len(ALL_ROUTES)
    assert all(re.fullmatch(r"[a-z][A-Za-z]+", op_id) for op_id in ids)
    for path, method, op in _operations():
        assert op["tags"] and set(op["tags"]) <= described, (path, method)


def test_every_property_of_every_schema_has_a_description() -> None:
    undescribed = [
        where
        for name, schema in DOCUMENT["components"]["schemas"].items()
        for where, prop in _properties(schema, name)
        if not prop.get("description")
    ]

    assert undescribed == []
    assert len(list(_properties(DOCUMENT["components"]["schemas"]["TaskOutput"], "t"))) >= 26


def test_every_parameter_has_a_description() -> None:
    undescribed = [
        (path, method, param["name"])
        for path, method, op in _operations()
        for param in op.get("parameters", [])
        if not param.get("description")
    ]

    assert undescribed == []


def test_the_open_endpoints_need_no_token_and_every_other_a_bearer_token() -> None:
    for path, method, op in _operations():
        expected = (
            [] if path in OPEN_PATHS or path.startswith(("/docs/", "/ui/")) else [{"bearer": []}]
        )
        assert op["security"] == expected, (path, method)
    assert DOCUMENT["security"] == [{"bearer": []}]
    assert DOCUMENT["paths"].keys() >= OPEN_PATHS


def test_every_401_declares_its_www_authenticate_challenge() -> None:
    answers = [op["responses"].get("401") for _, _, op in _operations() if op["security"]]
    assert answers
    for answer in answers:
        assert answer is not None
        assert "Bearer" in answer["headers"]["WWW-Authenticate"]["description"]


def test_the_document_names_a_server_and_its_default_address() -> None:
    [server] = DOCUMENT["servers"]

    assert server["url"] == "http://{listen}"
    assert server["variables"]["listen"]["default"] == "127.0.0.1:8080"


def test_the_webhooks_section_describes_the_four_events_their_headers_and_body() -> None:
    webhooks = DOCUMENT["webhooks"]

    assert set(webhooks) == {"before", "before_again", "success", "after"}
    for hook in webhooks.values():
        post = hook["post"]
        assert post["security"] == []  # signed (webhook-signature), not a token
        assert re.fullmatch(r"webhook[A-Z][A-Za-z]+", post["operationId"])
        body = post["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/WebhookBody"}
        headers = {p["name"]: p["required"] for p in post["parameters"]}
        assert headers == {
            "webhook-id": True,
            "webhook-timestamp": True,
            "webhook-signature": False,
        }
    body_schema = DOCUMENT["components"]["schemas"]["WebhookBody"]
    assert set(body_schema["properties"]) == {"event", "task", "attempt"}


def _start_time_schema() -> dict[str, Any]:
    schema: dict[str, Any] = DOCUMENT["components"]["schemas"]["TaskInput"]["properties"][
        "start_time_utc"
    ]
    return schema


def test_start_time_is_not_declared_as_a_date_time_the_server_would_refuse() -> None:
    schema = _start_time_schema()

    assert "format" not in str(schema)
    assert [alt.get("pattern") for alt in schema["anyOf"]] == [
        UTC_TEXT_PATTERN,
        ISO_WITH_OFFSET_PATTERN,
        None,
    ]


@pytest.mark.parametrize(
    ("text", "documented", "accepted"),
    [
        ("2026-05-01 09:00", True, True),
        ("2026-05-01 09:00:30", True, True),
        ("2026-05-01T09:00:00+03:00", True, True),
        ("2026-05-01T09:00:00Z", True, True),
        ("2026-05-01 09:00+03:00", True, True),
        ("2026-05-01T09:00:00.250-05:00", True, True),
        # ISO 8601 without an offset is refused: it would be a guess at the zone.
        ("2026-05-01T09:00:00", False, False),
        ("01.05.2026 09:00", False, False),
        ("2026-05-01", False, False),
    ],
)
def test_the_start_time_patterns_say_what_the_server_accepts(
    text: str, documented: bool, accepted: bool
) -> None:
    patterns = (UTC_TEXT_PATTERN, ISO_WITH_OFFSET_PATTERN)
    try:
        TaskInput(a_number="1", b_number="2", start_time_utc=text)  # type: ignore[arg-type]
    except ValidationError:
        took = False
    else:
        took = True

    assert any(re.fullmatch(p, text) for p in patterns) is documented
    assert took is accepted


def test_times_in_responses_match_the_documented_pattern() -> None:
    moment = TaskInput(a_number="1", b_number="2", start_time_utc="2026-05-01T09:00:00.5+03:00")  # type: ignore[arg-type]
    assert moment.start_time_utc is not None

    assert re.fullmatch(UTC_TIME_PATTERN, format_time(moment.start_time_utc))
