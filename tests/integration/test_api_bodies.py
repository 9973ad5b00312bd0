"""Hostile and broken request bodies get a clean problem+json, never a 500 or a traceback."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import (
    Api,
    ApiFactory,
    assert_problem,
    queue_path,
    task,
    tasks_path,
)

JSON = {"Content-Type": "application/json"}

MALFORMED = {
    "truncated": b'{"tasks": [',
    "not json": b"tasks=1",
    "empty": b"",
    "NaN": b'{"tasks": [{"a_number": "1", "b_number": "2", "try_again_pause": NaN}]}',
    "Infinity": b'{"name": Infinity}',
    "-Infinity": b'{"name": -Infinity}',
    "duplicate keys": b'{"name": "a", "name": "b"}',
    "nested duplicate keys": b'{"tasks": [{"a_number": "1", "a_number": "2", "b_number": "3"}]}',
    "deep arrays": b"[" * 100_000,
    "deep objects": b'{"a":' * 100_000,
    "not utf-8": b'{"name": "\xff\xfe"}',
    "huge integer": b'{"name": "q", "concurrent_task_limit": ' + b"9" * 5000 + b"}",
    "trailing garbage": b'{"name": "q"} {"name": "r"}',
}


async def _targets(api: Api) -> list[tuple[str, str]]:
    queue = await api.new_queue()
    [made] = await api.add_tasks(queue["id"], [task()])
    return [
        ("POST", "/client/acme/task_scheduler/"),
        ("PUT", queue_path(queue["id"])),
        ("POST", tasks_path(queue["id"])),
        ("PUT", tasks_path(queue["id"]) + str(made["id"])),
    ]


@pytest.mark.parametrize("kind", list(MALFORMED))
async def test_malformed_json_is_a_bad_request(api: Api, kind: str) -> None:
    for method, path in await _targets(api):
        response = await api.request(method, path, data=MALFORMED[kind], headers=JSON)
        body = await assert_problem(response, 400)
        assert body["detail"].startswith("malformed JSON")
    listed = await api.ok("GET", "/client/acme/task_scheduler/")
    assert [(q["name"], q["task_count"]) for q in listed] == [("sales", 1)]


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_a_body_not_declared_json_is_unsupported(api: Api, content_type: str | None) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    for method, path in await _targets(api):
        response = await api.request(method, path, data=b'{"name": "x"}', headers=headers)
        body = await assert_problem(response, 415)
        assert "application/json" in body["detail"]


async def test_json_with_a_charset_or_a_json_suffix_is_accepted(api: Api) -> None:
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        response = await api.request(
            "POST",
            "/client/acme/task_scheduler/",
            data=b'{"name": "x"}',
            headers={"Content-Type": content_type},
        )
        assert response.status == 201


async def test_a_body_over_the_configured_limit_is_too_large(api_factory: ApiFactory) -> None:
    api = await api_factory(api={"max_body_bytes": 2048})
    queue = await api.new_queue()
    big: dict[str, Any] = {"tasks": [task(name=f"task {i}") for i in range(100)]}

    response = await api.request("POST", tasks_path(queue["id"]), json=big)

    await assert_problem(response, 413)
    small = await api.request("POST", tasks_path(queue["id"]), json={"tasks": [task()]})
    assert small.status == 201
    assert (await api.ok("GET", queue_path(queue["id"])))["task_count"] == 1


async def test_a_json_value_of_the_wrong_shape_is_unprocessable(api: Api) -> None:
    for method, path in await _targets(api):
        for body in (b"[]", b'"text"', b"null", b"42"):
            response = await api.request(method, path, data=body, headers=JSON)
            await assert_problem(response, 422)
