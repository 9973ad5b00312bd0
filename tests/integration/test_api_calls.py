"""Call history (docs/api.md): one attempt's call, its AMI events, and the paged list."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import Api, assert_problem, insert_call, task, tasks_path
from tests.store_sql import execute

# Each test runs on the SQLite store and on the shared PostgreSQL store.
BOTH_STORES = True

EVENTS = [
    {"Event": "OriginateResponse", "Response": "Success"},
    {"Event": "DialEnd", "DialStatus": "ANSWER"},
    {"Event": "BridgeEnter", "BridgeUniqueid": "b-1"},
    {"Event": "Hangup", "Cause": "16", "Cause-txt": "Normal Clearing"},
]


async def test_call_history_is_empty_before_any_call(api: Api, queue: dict[str, Any]) -> None:
    await api.add_tasks(queue["id"], [task()])

    response = await api.request("GET", "/client/acme/call_history/")

    assert response.status == 200
    assert await response.json() == []
    assert response.headers["X-Total-Count"] == "0"


async def test_a_call_renders_numbers_times_durations_and_result(
    api: Api, queue: dict[str, Any]
) -> None:
    [made] = await api.add_tasks(queue["id"], [task()])
    await insert_call(api, made, "call-1", EVENTS)

    call = await api.ok("GET", "/client/acme/call_history/call-1")

    assert call["call_uuid"] == "call-1"
    assert call["task_id"] == made["id"]
    assert call["scheduler_id"] == queue["id"]
    assert call["attempt"] == 1
    assert call["a_numbers"] == [made["a_number"]]
    assert call["b_number"] == made["b_number"]
    assert call["answered_a_number"] == made["a_number"]
    assert call["a_caller_id_number"] == "4951234567"
    assert call["start_time_gmt"] == "2024-03-01 10:00:00"
    assert call["a_answer_time_gmt"] == "2024-03-01 10:00:07"
    assert call["bridged_time_gmt"] == "2024-03-01 10:00:12"
    assert call["end_time_gmt"] == "2024-03-01 10:01:12"
    assert call["duration"] == 72
    assert call["bridged_duration"] == 60
    assert (call["a_dial_status"], call["b_dial_status"]) == ("ANSWER", "ANSWER")
    assert (call["a_hangup_cause"], call["b_hangup_cause"]) == (16, 16)
    assert call["result"] == "success"
    assert call["events"] is None


async def test_events_come_in_arrival_order_on_request(api: Api, queue: dict[str, Any]) -> None:
    [made] = await api.add_tasks(queue["id"], [task()])
    await insert_call(api, made, "call-2", EVENTS)

    for flag in ("1", "true"):
        call = await api.ok("GET", "/client/acme/call_history/call-2", params={"events": flag})
        assert call["events"] == EVENTS
    without = await api.ok("GET", "/client/acme/call_history/call-2", params={"events": "0"})
    assert without["events"] is None
    assert without["events_received_at"] is None
    bad = await api.request("GET", "/client/acme/call_history/call-2", params={"events": "yes"})
    await assert_problem(bad, 422)


async def test_each_event_comes_with_the_time_it_was_received(
    api: Api, queue: dict[str, Any]
) -> None:
    [made] = await api.add_tasks(queue["id"], [task()])
    # The first as stored before milliseconds were kept.
    received = [
        "2024-03-01 10:00:00",
        "2024-03-01 10:00:07.125",
        "2024-03-01 10:00:12.004",
        "2024-03-01 10:01:12.990",
    ]
    await insert_call(api, made, "call-t", EVENTS, received=received)

    call = await api.ok("GET", "/client/acme/call_history/call-t", params={"events": "1"})

    assert call["events"] == EVENTS  # the header form clients read is unchanged
    assert call["events_received_at"] == received


async def test_task_attempts_and_cdr_show_its_calls(api: Api, queue: dict[str, Any]) -> None:
    [made] = await api.add_tasks(queue["id"], [task()])
    await insert_call(api, made, "call-3a", EVENTS[:1], attempt_no=1)
    await insert_call(api, made, "call-3b", EVENTS, attempt_no=2)

    response = await api.request("GET", tasks_path(queue["id"]) + f"{made['id']}/attempts")
    reread = await api.ok("GET", tasks_path(queue["id"]) + str(made["id"]))

    assert response.headers["X-Total-Count"] == "2"
    assert [(a["attempt"], a["call_uuid"]) for a in await response.json()] == [
        (1, "call-3a"),
        (2, "call-3b"),
    ]
    assert reread["cdr"] == "call-3b"


async def test_call_list_filters_by_task_and_time_and_pages(
    api: Api, queue: dict[str, Any]
) -> None:
    first, second = await api.add_tasks(queue["id"], [task(), task()])
    await insert_call(api, first, "c-1", EVENTS)
    await insert_call(api, second, "c-2", EVENTS)
    await execute(
        api.services.db,
        "UPDATE attempts SET start_time = '2024-03-02 09:00:00' WHERE call_uuid = 'c-2'",
    )

    async def listed(**params: str) -> tuple[list[str], str]:
        response = await api.request("GET", "/client/acme/call_history/", params=params)
        assert response.status == 200, await response.text()
        return [c["call_uuid"] for c in await response.json()], response.headers["X-Total-Count"]

    assert await listed() == (["c-1", "c-2"], "2")
    assert await listed(task_id=str(second["id"])) == (["c-2"], "1")
    assert await listed(since="2024-03-02") == (["c-2"], "1")
    assert await listed(until="2024-03-02 00:00") == (["c-1"], "1")
    assert await listed(per_page="1", page="2") == (["c-2"], "2")
    for params in ({"since": "yesterday"}, {"task_id": "x"}, {"per_page": "1001"}):
        bad = await api.request("GET", "/client/acme/call_history/", params=params)
        await assert_problem(bad, 422)


async def test_call_list_time_filters_take_iso_8601_with_an_offset_or_z(
    api: Api, queue: dict[str, Any]
) -> None:
    [made] = await api.add_tasks(queue["id"], [task()])
    await insert_call(api, made, "c-iso", EVENTS)
    await execute(
        api.services.db,
        "UPDATE attempts SET start_time = '2024-03-02 09:00:00' WHERE call_uuid = 'c-iso'",
    )

    async def listed(query: str) -> list[str]:
        # Written into the URL as a user would type it: the '+' unescaped.
        response = await api.request("GET", "/client/acme/call_history/?" + query)
        assert response.status == 200, await response.text()
        return [c["call_uuid"] for c in await response.json()]

    assert await listed("since=2024-03-02T09:00:00Z") == ["c-iso"]
    assert await listed("since=2024-03-02T12:00:00%2B03:00") == ["c-iso"]
    assert await listed("since=2024-03-02T12:00:01+03:00") == []
    assert await listed("until=2024-03-02T04:00:01-05:00") == ["c-iso"]
    assert await listed("since=2024-03-02 09:00&until=2024-03-02T09:00:01Z") == ["c-iso"]

    bad = await api.request("GET", "/client/acme/call_history/?since=2024-03-02T09:00:00")
    problem = await assert_problem(bad, 422)
    [issue] = problem["errors"]
    assert issue["field"] == "since"
    assert "offset" in issue["message"]


async def test_unknown_call_is_not_found(api: Api) -> None:
    for call_uuid in ("nope", "x" * 65):
        response = await api.request("GET", f"/client/acme/call_history/{call_uuid}")
        await assert_problem(response, 404)
