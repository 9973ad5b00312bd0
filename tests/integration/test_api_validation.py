"""Every task rule of docs/api.md through HTTP: a bad field is a 422 naming the task's index
and the field, and anything that could break out of an AMI header or a channel string is
rejected, never cleaned."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.conftest import Api, assert_problem, task, tasks_path

BREAKOUTS = ["\r", "\n", "&", "/", "@", ",", ";", "|"]


async def _rejected(api: Api, queue_id: int, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = await api.request("POST", tasks_path(queue_id), json={"tasks": tasks})
    body = await assert_problem(response, 422)
    listed = await api.request("GET", tasks_path(queue_id))
    assert listed.headers["X-Total-Count"] == "0", "a rejected batch stored something"
    errors: list[dict[str, Any]] = body["errors"]
    return errors


async def _accepted(api: Api, queue_id: int, **fields: Any) -> dict[str, Any]:
    [created] = await api.add_tasks(queue_id, [task(**fields)])
    return created


INJECTIONS: dict[str, tuple[Callable[[str], dict[str, Any]], str]] = {
    "a_number": (lambda s: task(a_number=f"100{s}200"), "a_number"),
    "b_number": (lambda s: task(b_number=f"100{s}200"), "b_number"),
    "extended_a_numbers": (
        lambda s: task(callback_params={"extended_a_numbers": ["555", f"7{s}7"]}),
        "callback_params.extended_a_numbers.1",
    ),
    "caller_id_number": (
        lambda s: task(callback_params={"caller_id_number": f"495{s}1"}),
        "callback_params.caller_id_number",
    ),
    "caller_id_name": (
        lambda s: task(callback_params={"caller_id_name": f"Sales{s}Action: Originate"}),
        "callback_params.caller_id_name",
    ),
    "variable value": (lambda s: task(variables={"order": f"42{s}x"}), "variables"),
    "variable name": (lambda s: task(variables={f"or{s}der": "42"}), "variables"),
    "attempts_src_ani_numbers": (
        lambda s: task(attempts_src_ani_numbers=["1", f"2{s}"]),
        "attempts_src_ani_numbers.1",
    ),
    "attempts_dst_ani_numbers": (
        lambda s: task(attempts_dst_ani_numbers=[f"{s}3"]),
        "attempts_dst_ani_numbers.0",
    ),
}


@pytest.mark.parametrize("target", list(INJECTIONS))
async def test_breakout_characters_are_rejected_in_every_text_field(
    api: Api, queue: dict[str, Any], target: str
) -> None:
    build, field = INJECTIONS[target]
    # One good task first, then one bad task per character: every bad index is named.
    batch = [task()] + [build(ch) for ch in BREAKOUTS]

    errors = await _rejected(api, queue["id"], batch)

    assert sorted((e["index"], e["field"]) for e in errors) == [
        (i, field) for i in range(1, len(BREAKOUTS) + 1)
    ]


NAME_WITH_PUNCTUATION = 'Smith & Sons / EU, order #12; a@b | "VIP" <x> $5 \\ 100%'


async def test_task_and_queue_names_take_any_printable_text(
    api: Api, queue: dict[str, Any]
) -> None:
    # Names never reach Asterisk, so the characters refused in numbers, caller IDs and
    # variables are ordinary text here.
    created = await _accepted(api, queue["id"], name=NAME_WITH_PUNCTUATION)
    assert created["name"] == NAME_WITH_PUNCTUATION
    listed = await api.request(
        "GET", tasks_path(queue["id"]), params={"name": NAME_WITH_PUNCTUATION}
    )
    assert [t["id"] for t in await listed.json()] == [created["id"]]
    response = await api.request(
        "POST", "/client/acme/task_scheduler/", json={"name": NAME_WITH_PUNCTUATION}
    )
    assert response.status == 201
    assert (await response.json())["name"] == NAME_WITH_PUNCTUATION


@pytest.mark.parametrize("control", ["\r", "\n", "\x00", "\x07", "\x85"])
async def test_names_refuse_control_characters(
    api: Api, queue: dict[str, Any], control: str
) -> None:
    errors = await _rejected(api, queue["id"], [task(name=f"task{control}1")])
    assert [(e["index"], e["field"]) for e in errors] == [(0, "name")]
    response = await api.request(
        "POST", "/client/acme/task_scheduler/", json={"name": f"queue{control}1"}
    )
    body = await assert_problem(response, 422)
    assert body["errors"][0]["field"] == "name"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"a_number": ""}, "a_number"),
        ({"a_number": "+"}, "a_number"),
        ({"a_number": "1" * 33}, "a_number"),
        ({"a_number": "12 34"}, "a_number"),
        ({"a_number": "١٢٣"}, "a_number"),
        ({"a_number": 12345}, "a_number"),
        ({"b_number": None}, "b_number"),
        ({"try_count": 0}, "try_count"),
        ({"try_count": 51}, "try_count"),
        ({"try_count": "3"}, "try_count"),
        ({"try_count": True}, "try_count"),
        ({"try_again_pause": 864_001}, "try_again_pause"),
        ({"try_again_pause": -1}, "try_again_pause"),
        ({"try_again_pause": True}, "try_again_pause"),
        ({"try_again_pause": "soon"}, "try_again_pause"),
        ({"try_again_pause": 1.5}, "try_again_pause"),
        ({"try_again_pause": "9" * 5000}, "try_again_pause"),
        ({"try_count_caller": 51}, "try_count_caller"),
        ({"try_again_pause_caller": 864_001}, "try_again_pause_caller"),
        ({"extension_id": "101"}, "extension_id"),
        ({"url_before": "ftp://example.com/x"}, "url_before"),
        ({"url_success": "not a url"}, "url_success"),
        ({"name": "n" * 256}, "name"),
        ({"callback_params": {"extended_a_numbers": [str(i) for i in range(11)]}}, None),
        ({"callback_params": {"caller_id_name": "x" * 81}}, "callback_params.caller_id_name"),
        ({"callback_params": {"caller_id_name": "bell\x07"}}, "callback_params.caller_id_name"),
        ({"callback_params": {"colour": "red"}}, "callback_params.colour"),
        ({"variables": {f"v{i}": "x" for i in range(51)}}, "variables"),
        ({"variables": {"v": "x" * 201}}, "variables"),
        ({"variables": {"v" * 65: "x"}}, "variables"),
        ({"variables": {"1st": "x"}}, "variables"),
        ({"variables": {"v": 5}}, "variables.v"),
        ({"attempts_src_ani_numbers": ["1"] * 51}, "attempts_src_ani_numbers"),
        ({"start_time_utc": "tomorrow"}, "start_time_utc"),
        ({"start_time_utc": "2030-01-02T03:04:05"}, "start_time_utc"),
        ({"start_time_utc": 1893456000}, "start_time_utc"),
        ({"a_number": "555", "callback_params": {"extended_a_numbers": ["555"]}}, None),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
async def test_invalid_field_is_named_by_index_and_field(
    api: Api, queue: dict[str, Any], fields: dict[str, Any], field: str | None
) -> None:
    errors = await _rejected(api, queue["id"], [task(), task(), task(**fields)])

    assert [e["index"] for e in errors] == [2]
    if field is not None:
        assert errors[0]["field"] == field
    assert errors[0]["loc"].startswith("tasks[2]")
    assert errors[0]["message"]


async def test_limits_are_inclusive(api: Api, queue: dict[str, Any]) -> None:
    created = await _accepted(
        api,
        queue["id"],
        a_number="+" + "1" * 31,
        b_number="*#0",
        name="n" * 255,
        try_count=50,
        try_again_pause=864_000,
        try_count_caller=50,
        try_again_pause_caller=0,
        callback_params={
            "caller_id_name": "Zoë's Pizza (Main St.)" + "x" * 58,
            "caller_id_number": "4951234567",
            "extended_a_numbers": [str(200 + i) for i in range(10)],
        },
        variables={f"v_{i}": "x" * 200 for i in range(49)} | {"V" * 64: ""},
        attempts_src_ani_numbers=["1"] * 50,
        attempts_dst_ani_numbers=["+2"],
        url_before="https://panel.example.com/hook?id=1&x=2",
    )

    assert created["try_count"] == 50
    assert len(created["callback_params"]["caller_id_name"]) == 80
    assert len(created["callback_params"]["extended_a_numbers"]) == 10
    assert len(created["variables"]) == 50
    assert created["url_before"] == "https://panel.example.com/hook?id=1&x=2"


async def test_try_again_pause_accepts_a_numeric_string(api: Api, queue: dict[str, Any]) -> None:
    created = await _accepted(api, queue["id"], try_again_pause="120")

    assert created["try_again_pause"] == 120


async def test_unknown_extension_is_rejected_and_a_configured_one_accepted(
    api: Api, queue: dict[str, Any]
) -> None:
    errors = await _rejected(api, queue["id"], [task(extension_id=101), task(extension_id=7)])

    assert [(e["index"], e["field"]) for e in errors] == [(1, "extension_id")]
    assert "7" in errors[0]["message"]
    assert (await _accepted(api, queue["id"], extension_id=101))["extension_id"] == 101


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("2099-01-02 03:04", "2099-01-02 03:04:00"),
        ("2099-01-02 03:04:05", "2099-01-02 03:04:05"),
        ("2099-01-02T03:04:05+03:00", "2099-01-02 00:04:05"),
        ("2099-01-02T03:04:05-05:30", "2099-01-02 08:34:05"),
        ("2099-01-02T03:04:05Z", "2099-01-02 03:04:05"),
    ],
)
async def test_start_time_is_stored_in_utc(
    api: Api, queue: dict[str, Any], sent: str, stored: str
) -> None:
    created = await _accepted(api, queue["id"], start_time_utc=sent)

    assert created["start_time_utc"] == stored
    assert created["next_attempt_utc"] == stored


async def test_start_time_in_the_past_is_due_at_once_and_ahead_of_later_ones(
    api: Api, queue: dict[str, Any]
) -> None:
    created = await _accepted(api, queue["id"], start_time_utc="2001-01-01 00:00")

    assert created["start_time_utc"] == "2001-01-01 00:00:00"
    # Already due (not later than now), and ordered by the time it came due.
    assert created["next_attempt_utc"] == "2001-01-01 00:00:00"
    assert created["next_attempt_utc"] <= created["create_date_utc"]
