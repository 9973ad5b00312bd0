"""A hand-written corpus of hostile requests against the endpoints that write (POST and
PUT on queues, POST tasks, PUT on a task), plus hostile paths, query strings and headers.
Every answer is a clean 4xx problem+json, and after the whole corpus the queue and tasks
that were there before are exactly as they were."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from typing import Any

from aiohttp import ClientResponse

from tests.integration.conftest import (
    PROBLEM,
    TOKEN_OF,
    Api,
    ApiFactory,
    queue_path,
    task,
    tasks_path,
)

JSON = {"Content-Type": "application/json"}
FIVE_MB = "x" * (5 * 1024 * 1024)
HUGE_INT = int("9" * 4000)  # below Python's 4300-digit limit: a real int reaches the model

# Bytes no endpoint may parse: parsers disagree on them, so each is a 400.
MALFORMED: dict[str, bytes] = {
    "100k open arrays": b"[" * 100_000,
    "100k closed arrays": b"[" * 100_000 + b"]" * 100_000,
    "100k nested objects": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "deep array in a field": b'{"name": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    "NaN": b'{"name": NaN}',
    "Infinity": b'{"concurrent_task_limit": Infinity, "try_count": Infinity}',
    "-Infinity": b'{"tasks": [{"try_count": -Infinity}]}',
    "duplicate keys": b'{"name": "a", "name": "b"}',
    "duplicate keys, one escaped": b'{"name": "a", "n\\u0061me": "b"}',
    "duplicate nested keys": b'{"callback_params": {"caller_id_name": "a", "caller_id_name": "b"}}',
    "invalid UTF-8": b'{"name": "\xff\xfe"}',
    "overlong UTF-8 slash (2 bytes)": b'{"name": "\xc0\xaf"}',
    "overlong UTF-8 slash (3 bytes)": b'{"name": "\xe0\x80\xaf"}',
    "surrogate encoded in UTF-8": b'{"name": "\xed\xa0\x80"}',
    "truncated UTF-8": b'{"name": "\xe2\x82"}',
    "UTF-16 body": '{"name": "utf16"}'.encode("utf-16"),
    "UTF-8 BOM": b'\xef\xbb\xbf{"name": "bom"}',
    "5000-digit integer": b'{"concurrent_task_limit": ' + b"9" * 5000 + b"}",
    "negative 5000-digit integer": b'{"try_count": -' + b"9" * 5000 + b"}",
    "raw control character in a string": b'{"name": "a\x01b"}',
    "NUL after the document": b'{"name": "x"}\x00',
    "trailing garbage": b'{"name": "q"} {"name": "r"}',
    "trailing comma": b'{"name": "x",}',
    "comment": b'{"name": "x" /* hi */}',
    "single quotes": b"{'name': 'x'}",
    "unquoted key": b"{name: 1}",
    "truncated": b'{"tasks": [',
    "empty": b"",
    "whitespace only": b" \n\t ",
}

# JSON values of the wrong shape at the top.
WRONG_TOP = [[], [{"name": "x"}], "text", None, 42, 1.5, True]

# Queue bodies refused by both POST and PUT: each holds one bad field.
BAD_QUEUE_FIELDS: list[dict[str, Any]] = [
    {"name": ["x"]},
    {"name": {"text": "x"}},
    {"name": 5},
    {"name": True},
    {"name": ""},
    {"name": "n" * 256},
    {"name": FIVE_MB},
    {"name": "evil\u202egnp.exe"},
    {"name": "zero\u200dwidth"},
    {"name": "nul\u0000"},
    {"name": "\ud800"},
    {"name": "\udc00lone low"},
    {"name": "\ufeffbom"},
    {"name": "line\u2028separator"},
    {"comment": ["x"]},
    {"comment": "c" * 1001},
    {"status": "ON"},
    {"status": True},
    {"status": ["on"]},
    {"concurrent_task_limit": "5"},
    {"concurrent_task_limit": True},
    {"concurrent_task_limit": 5.0},
    {"concurrent_task_limit": 0},
    {"concurrent_task_limit": -1},
    {"concurrent_task_limit": HUGE_INT},
    {"concurrent_task_limit": None, "status": "maybe"},
    {"id": 7},
    {"task_count": 0},
    {"__proto__": {"admin": True}},
]

# Task fields refused by POST (inside one valid task) and by PUT on a task.
BAD_TASK_FIELDS: list[dict[str, Any]] = [
    *(
        {field: value}
        for field in ("a_number", "b_number")
        for value in (
            None,
            123,
            True,
            ["123"],
            {"n": "123"},
            "",
            "\u202e123",
            "12\u200d3",
            "123\u0000",
            "\ud800",
            "\ufeff123",
            "\u0661\u0662\u0663",  # Arabic-Indic digits
            "\uff11\uff12\uff13",  # fullwidth digits
            "1" * 33,
            "12 3",
            FIVE_MB,
        )
    ),
    {"name": FIVE_MB},
    {"name": "Sales\u202eevil"},
    {"name": None},
    {"callback_params": []},
    {"callback_params": "caller"},
    {"callback_params": {"caller_id_name": "Sales\u202eevil"}},
    {"callback_params": {"caller_id_name": "a\u200db"}},
    {"callback_params": {"caller_id_name": "\ud800"}},
    {"callback_params": {"caller_id_name": "nul\u0000"}},
    {"callback_params": {"caller_id_name": "\ufeffSales"}},
    {"callback_params": {"caller_id_number": "\u202e495"}},
    {"callback_params": {"caller_id_number": 495}},
    {"callback_params": {"extended_a_numbers": "555"}},
    {"callback_params": {"extended_a_numbers": [555]}},
    {"callback_params": {"extended_a_numbers": [None]}},
    {"callback_params": {"extended_a_numbers": {"0": "555"}}},
    *({"try_count": v} for v in ("3", True, 3.0, -1, 0, HUGE_INT, None, [1])),
    # An integral 60.0 (or "60.0") is taken as 60, as an int would be.
    *(
        {"try_again_pause": v}
        for v in (
            60.5,
            True,
            "6O",
            " ",
            "-5",
            "\u0661\u0662\u0660",
            "\u00b2",
            "9" * 5000,
            HUGE_INT,
            [60],
        )
    ),
    {"try_count_caller": "1"},
    {"try_again_pause_caller": False},
    *({"extension_id": v} for v in ("101", True, 101.0, HUGE_INT, -1, [101])),
    *(
        {"start_time_utc": v}
        for v in (
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+23:59",
            "2030-02-30 00:00",
            "2030-01-01 00:00\ud800",
            "\u202e2030-01-01 00:00",
            [],
            True,
        )
    ),
    {"url_after": "javascript:alert(1)"},
    {"url_after": "http://a/\ud800"},
    {"url_after": ["http://a"]},
    {"url_before": "http://" + "a" * 3_000_000 + ".example"},
    {"variables": []},
    {"variables": {"a": 1}},
    {"variables": {"a": None}},
    {"variables": {"a\u202e": "x"}},
    {"variables": {"a": "\u202ex"}},
    {"variables": {"": "x"}},
    {"variables": {"a": "\ud800"}},
    {"attempts_src_ani_numbers": "123"},
    {"attempts_src_ani_numbers": [["1"]]},
    {"attempts_dst_ani_numbers": [None]},
    {"id": 1},
    {"status": "finished"},
    {"finish_result": "success"},
]

# Numbers too large for a float parse as infinity (json.dumps cannot write them).
OUT_OF_RANGE_NUMBERS = ["1e999", "-1e999", "1E400"]

# POST tasks bodies whose envelope is wrong.
BAD_TASK_LISTS: list[Any] = [
    {},
    {"tasks": {}},
    {"tasks": "x"},
    {"tasks": []},
    {"tasks": None},
    {"tasks": [None]},
    {"tasks": [[]]},
    {"tasks": [1]},
    {"tasks": [task()], "extra": 1},
    {"task": [task()]},
    {"tasks": [task()] * 10_001},
]


def _dump(value: Any) -> bytes:
    # ensure_ascii keeps lone surrogates as \ud800 escapes, exactly as a client would send.
    return json.dumps(value).encode()


async def _problem(response: ClientResponse, statuses: set[int]) -> str | None:
    """What is wrong with the answer, or None if it is a clean problem+json."""
    text = await response.text(errors="replace")
    if response.status not in statuses:
        return f"status {response.status}, wanted {sorted(statuses)}: {text[:300]}"
    if response.content_type != PROBLEM:
        return f"content type {response.content_type}: {text[:300]}"
    if "Traceback" in text or 'File "' in text:
        return f"a traceback: {text[:300]}"
    body = json.loads(text)
    if not {"type", "title", "status", "detail"} <= body.keys() or body["status"] != (
        response.status
    ):
        return f"not a problem body: {text[:300]}"
    return None


async def _snapshot(api: Api, queue_id: int) -> dict[str, Any]:
    """Everything a client can read about acme's queues and one queue's tasks."""
    listed = await api.request("GET", tasks_path(queue_id), params={"per_page": "1000"})
    return {
        "queues": await api.ok("GET", "/client/acme/task_scheduler/"),
        "beta": await api.ok("GET", "/client/beta/task_scheduler/", client="beta"),
        "queue": await api.ok("GET", queue_path(queue_id)),
        "tasks": await listed.json(),
        "total": listed.headers["X-Total-Count"],
    }


Send = Callable[[bytes], Any]


async def test_the_whole_corpus_is_refused_cleanly_and_the_store_is_unchanged(api: Api) -> None:
    queue = await api.new_queue(comment="before the corpus", concurrent_task_limit=3)
    made = await api.add_tasks(
        queue["id"],
        [
            task(name="first", callback_params={"caller_id_name": "Zoë"}),
            task(b_number="*#0", variables={"order": "42"}, try_count=3),
        ],
    )
    await api.new_queue(client="beta", name="other client")
    before = await _snapshot(api, queue["id"])
    assert before["total"] == "2"
    one_task = tasks_path(queue["id"]) + str(made[0]["id"])

    def send(method: str, path: str) -> Send:
        # A stream, not bytes: aiohttp warns when it sends megabytes of bytes in one go.
        return lambda body: api.request(method, path, data=io.BytesIO(body), headers=JSON)

    targets = {
        "POST queue": send("POST", "/client/acme/task_scheduler/"),
        "PUT queue": send("PUT", queue_path(queue["id"])),
        "POST tasks": send("POST", tasks_path(queue["id"])),
        "PUT task": send("PUT", one_task),
    }
    cases: list[tuple[str, str, bytes, set[int]]] = []
    for target in targets:
        cases += [(target, name, raw, {400}) for name, raw in MALFORMED.items()]
        cases += [(target, f"top {v!r}", _dump(v), {422}) for v in WRONG_TOP]
    for body in BAD_QUEUE_FIELDS:
        for target in ("POST queue", "PUT queue"):
            cases.append((target, repr(body)[:80], _dump(body), {422}))
    cases.append(("POST queue", "null name", _dump({"name": None}), {422}))
    for fields in BAD_TASK_FIELDS:
        bad = repr(fields)[:80]
        cases.append(("POST tasks", bad, _dump({"tasks": [task(), task(**fields)]}), {422}))
        cases.append(("PUT task", bad, _dump(fields), {422}))
    for number in OUT_OF_RANGE_NUMBERS:
        for target in ("POST queue", "PUT queue"):
            raw = f'{{"name": "q", "concurrent_task_limit": {number}}}'.encode()
            cases.append((target, number, raw, {422}))
        for field in ("try_count", "try_again_pause", "extension_id", "start_time_utc"):
            fields = f'"a_number": "1", "b_number": "2", "{field}": {number}'
            post = f'{{"tasks": [{{{fields}}}]}}'.encode()
            cases.append(("POST tasks", f"{field} {number}", post, {422}))
            cases.append(("PUT task", f"{field} {number}", f"{{{fields}}}".encode(), {422}))
    for body in BAD_TASK_LISTS:
        cases.append(("POST tasks", repr(body)[:80], _dump(body), {422}))

    failures = []
    for target, name, raw, statuses in cases:
        wrong = await _problem(await targets[target](raw), statuses)
        if wrong is not None:
            failures.append(f"{target} {name}: {wrong}")

    assert not failures, "\n".join(failures)
    assert await _snapshot(api, queue["id"]) == before


async def test_a_5_mb_name_over_the_configured_limit_is_too_large(
    api_factory: ApiFactory,
) -> None:
    api = await api_factory(api={"max_body_bytes": 1024 * 1024})
    queue = await api.new_queue()
    [made] = await api.add_tasks(queue["id"], [task()])
    before = await _snapshot(api, queue["id"])
    huge = {"name": FIVE_MB}
    sends = [
        ("POST", "/client/acme/task_scheduler/", huge),
        ("PUT", queue_path(queue["id"]), huge),
        ("POST", tasks_path(queue["id"]), {"tasks": [task(**huge)]}),
        ("PUT", tasks_path(queue["id"]) + str(made["id"]), huge),
    ]

    for method, path, body in sends:
        response = await api.request(method, path, data=io.BytesIO(_dump(body)), headers=JSON)
        assert await _problem(response, {413}) is None, (method, path)

    assert await _snapshot(api, queue["id"]) == before


async def test_hostile_ids_in_paths_name_no_resource(api: Api) -> None:
    queue = await api.new_queue()
    [made] = await api.add_tasks(queue["id"], [task()])
    before = await _snapshot(api, queue["id"])
    bad_ids = [
        "-1",
        "0",
        "-0",
        "+1",
        "1e3",
        "0x10",
        "1.0",
        "9" * 18,
        "9" * 19,
        "9" * 5000,
        "%D9%A1",  # Arabic-Indic digit one
        "%EF%BC%91",  # fullwidth digit one
        "%00",
        "1%00",
        "%20" + str(queue["id"]),
        "%ED%A0%80",
        "%FF",
    ]
    failures = []
    for bad in bad_ids:
        paths = [
            ("GET", queue_path(bad)),
            ("PUT", queue_path(bad)),
            ("DELETE", queue_path(bad)),
            ("GET", tasks_path(bad)),
            ("POST", tasks_path(bad)),
            ("GET", tasks_path(queue["id"]) + bad),
            ("PUT", tasks_path(queue["id"]) + bad),
            ("DELETE", tasks_path(queue["id"]) + bad),
            ("GET", f"{tasks_path(queue['id'])}{bad}/attempts"),
            ("GET", f"/client/acme/call_history/{bad}"),
            ("GET", f"/client/{bad}/task_scheduler/"),
        ]
        for method, path in paths:
            body = _dump({"tasks": [task()]} if method == "POST" else {"name": "renamed"})
            response = await api.request(method, path, data=body, headers=JSON)
            wrong = await _problem(response, {404})
            if wrong is not None:
                failures.append(f"{method} {path[:80]}: {wrong}")

    assert not failures, "\n".join(failures)
    assert made["id"] != 0
    assert await _snapshot(api, queue["id"]) == before


async def test_hostile_query_strings_are_refused_or_ignored_never_a_500(api: Api) -> None:
    queue = await api.new_queue()
    await api.add_tasks(queue["id"], [task(name="plain")])
    listing = tasks_path(queue["id"])
    refused = [
        "page=0",
        "page=-1",
        "page=1e3",
        "page=" + "9" * 5000,
        "per_page=1001",
        "per_page=0",
        "per_page=%D9%A1",
        "status=SCHEDULED",
        "status=scheduled&status=nonsense",
        "status=" + "&status=".join(["scheduled"] * 300) + "&status=x",
        "finish_result=null",
        "name=" + "n" * 7000,
        "unknown=1",
        "page=1&page=x",
    ]
    calls = [
        "task_id=0",
        "task_id=-1",
        "task_id=" + "9" * 5000,
        "since=tomorrow",
        "since=%D9%A2%D9%A0%D9%A2%D9%A4-01-01",
        "until=2024-01-01%0A00:00",
    ]
    failures = []
    for query in refused:
        wrong = await _problem(await api.request("GET", f"{listing}?{query}"), {422})
        if wrong is not None:
            failures.append(f"tasks ?{query[:60]}: {wrong}")
    for query in calls:
        response = await api.request("GET", f"/client/acme/call_history/?{query}")
        wrong = await _problem(response, {422})
        if wrong is not None:
            failures.append(f"calls ?{query[:60]}: {wrong}")
    one_call = await api.request("GET", "/client/acme/call_history/abc?events=%FF&events=1")
    if (wrong := await _problem(one_call, {404, 422})) is not None:
        failures.append(f"one call: {wrong}")
    assert not failures, "\n".join(failures)

    # Unicode and broken UTF-8 in a filter match nothing; they are not errors.
    for name in ("%ED%A0%80", "%FF", "%00", "%E2%80%AE", "plain%00"):
        response = await api.request("GET", f"{listing}?name={name}")
        assert response.status == 200, await response.text()
        assert await response.json() == []
    repeated = "&".join(["per_page=1000"] * 200)
    response = await api.request("GET", f"{listing}?{repeated}&name=plain")
    assert [t["name"] for t in await response.json()] == ["plain"]


async def _raw_post(api: Api, path: str, key: bytes, body: bytes) -> tuple[int, str, str]:
    """POST with header bytes no HTTP client library would send; returns the status, the
    content type and the body."""
    server = api.http.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        b"POST " + path.encode() + b" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
        b"Authorization: Bearer " + TOKEN_OF["acme"].encode() + b"\r\n"
        b"Content-Type: application/json\r\nIdempotency-Key: " + key + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, text = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers.get("Content-Type", ""), text.decode(errors="replace")


async def test_hostile_idempotency_keys_are_bad_requests_and_store_nothing(api: Api) -> None:
    queue = await api.new_queue()
    before = await _snapshot(api, queue["id"])
    body = _dump({"tasks": [task()]})
    failures = []
    for key in [b"", b"k" * 256, b"k" * 8000, b"tab\tkey", b"\xc2\x85nel", b"\xff\xfe"]:
        status, ctype, text = await _raw_post(api, tasks_path(queue["id"]), key, body)
        if status != 400 or not ctype.startswith(PROBLEM) or "Traceback" in text:
            failures.append(f"{key[:20]!r}: {status} {ctype} {text[:200]}")
    # Control characters stop aiohttp's HTTP parser before any handler or middleware
    # runs: its own plain-text 400, which names the header and shows no traceback.
    for key in [b"a\x7fb", b"nul\x00", b"k" * 9000]:
        status, ctype, text = await _raw_post(api, tasks_path(queue["id"]), key, body)
        if status not in (400, 431) or "Traceback" in text:
            failures.append(f"{key[:20]!r}: {status} {ctype} {text[:200]}")

    assert not failures, "\n".join(failures)
    assert await _snapshot(api, queue["id"]) == before


async def test_a_non_ascii_idempotency_key_is_a_key_like_any_other(api: Api) -> None:
    queue = await api.new_queue()
    headers = {"Idempotency-Key": "заказ-42"}
    body = {"tasks": [task()]}

    first = await api.request("POST", tasks_path(queue["id"]), json=body, headers=headers)
    again = await api.request("POST", tasks_path(queue["id"]), json=body, headers=headers)

    assert (first.status, again.status) == (201, 201), await again.text()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == await first.json()
    assert (await api.ok("GET", queue_path(queue["id"])))["task_count"] == 1
