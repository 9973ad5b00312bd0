"""Hostile and broken request bodies get a clean problem+json, never a 500 or a traceback."""

from __future__ import annotations

import json
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


# Bulk adds that would be valid but for one defect in the JSON text itself: the fast
# parser must not take any of them (a 201 here would store what a strict parser refuses).
_TASK = b'{"a_number": "1", "b_number": "2", "url_after": "https://x.example/h"'
MALFORMED_BATCHES = {
    "duplicate task key": b'{"tasks": [' + _TASK + b', "b_number": "3"}]}',
    "duplicate key, space before the colon": b'{"tasks": [' + _TASK + b', "b_number" : "3"}]}',
    "duplicate key, escaped": b'{"tasks": [' + _TASK + b', "b_n\\u0075mber": "3"}]}',
    "duplicate key, colons in strings": b'{"tasks": ['
    + _TASK
    + b', "name": "::", "variables": {"A": ":", "A": "x"}}]}',
    "duplicate top-level key": b'{"tasks": [' + _TASK + b'}], "tasks": [' + _TASK + b"}]}",
    "duplicate callback_params key": b'{"tasks": ['
    + _TASK
    + b', "callback_params": {"caller_id_name": "a", "caller_id_name": "b"}}]}',
    "duplicate variable": b'{"tasks": [' + _TASK + b', "variables": {"A": "1", "A": "2"}}]}',
    "raw tab in a URL": b'{"tasks": [{"a_number": "1", "b_number": "2", "url_after": "https://x\tample/"}]}',
    "raw newline in a URL": b'{"tasks": [{"a_number": "1", "b_number": "2", "url_after": "https://x\n/"}]}',
    "UTF-8 BOM": b"\xef\xbb\xbf" + b'{"tasks": [' + _TASK + b"}]}",
    "NUL after the document": b'{"tasks": [' + _TASK + b"}]}\x00",
    "trailing comma": b'{"tasks": [' + _TASK + b"},]}",
    "Infinity pause": b'{"tasks": [' + _TASK + b', "try_again_pause": Infinity}]}',
    "UTF-16": ('{"tasks": [{"a_number": "1", "b_number": "2"}]}').encode("utf-16"),
}


@pytest.mark.parametrize("kind", list(MALFORMED_BATCHES))
async def test_a_bulk_add_in_malformed_json_is_a_bad_request(
    api: Api, queue: dict[str, Any], kind: str
) -> None:
    response = await api.request(
        "POST", tasks_path(queue["id"]), data=MALFORMED_BATCHES[kind], headers=JSON
    )

    body = await assert_problem(response, 400)
    assert body["detail"].startswith("malformed JSON")
    assert (await api.ok("GET", queue_path(queue["id"])))["task_count"] == 0


async def test_a_bulk_add_in_any_valid_json_layout_is_accepted(
    api: Api, queue: dict[str, Any]
) -> None:
    tasks = [
        # Escaped quotes and backslashes, colons and "},{" inside strings.
        task(name="a:b", url_after='https://x.example/?q=},{"a":1\\', variables={"V": ":"}),
        task(name="Zoë", callback_params={"caller_id_name": "☎ 24:7"}),
    ]
    layouts = [
        json.dumps({"tasks": tasks}),
        json.dumps({"tasks": tasks}, ensure_ascii=False, indent=2),
        json.dumps({"tasks": tasks}, separators=(",", ":")).replace(":", " :\t", 1),
    ]
    created = [
        await api.ok("POST", tasks_path(queue["id"]), 201, data=text.encode(), headers=JSON)
        for text in layouts
    ]

    assert [[t["name"] for t in c["tasks"]] for c in created] == [["a:b", "Zoë"]] * 3
    assert created[0]["tasks"][0]["url_after"] == created[2]["tasks"][0]["url_after"]


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
