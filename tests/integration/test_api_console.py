"""The console's page and its read-only endpoints over real HTTP: why a task waits, its
webhook deliveries, a call's ladder, live calls, and searching by number. Each reads
only what the token's client may see."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from daemon.asr import GuardState
from daemon.models import CallPlan
from daemon.store.attempts import AttemptRepository, Claim
from tests.integration.conftest import (
    Api,
    ApiFactory,
    assert_problem,
    insert_call,
    task,
    tasks_path,
)
from tests.store_sql import execute

BOTH_STORES = True

LEG_EVENTS = [
    {"Event": "DialBegin", "Uniqueid": "c-1-a", "DestUniqueid": "p.1", "DialString": "1105@x",
     "DestChannel": "Local/1105@x-1;1", "CallerIDNum": "4951234567"},
    {"Event": "DialEnd", "Uniqueid": "c-1-a", "DestUniqueid": "p.1", "DialStatus": "ANSWER"},
    {"Event": "DialBegin", "Uniqueid": "c-1", "DestUniqueid": "p.2", "DialString": "1102@x",
     "DestChannel": "Local/1102@x-2;1", "CallerIDNum": "1105"},
    {"Event": "DialEnd", "Uniqueid": "c-1", "DestUniqueid": "p.2", "DialStatus": "ANSWER"},
    {"Event": "BridgeEnter", "Uniqueid": "c-1", "BridgeUniqueid": "b"},
    {"Event": "Hangup", "Uniqueid": "p.2", "Cause": "16", "Cause-txt": "Normal Clearing"},
    {"Event": "Hangup", "Uniqueid": "p.1", "Cause": "16", "Cause-txt": "Normal Clearing"},
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/ui/", "text/html"), ("/ui/console.js", "text/javascript"), ("/ui/console.css", "text/css")],
)
async def test_the_page_and_its_assets_are_served_without_a_token(
    api: Api, path: str, content_type: str
) -> None:
    response = await api.request("GET", path, client=None)
    assert response.status == 200
    assert response.content_type == content_type
    # Only its own assets, and only this daemon to talk to.
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "connect-src 'self'" in response.headers["Content-Security-Policy"]
    assert "http" not in (await response.text()).replace("http-equiv", "")


async def test_a_task_of_a_queue_that_is_off_says_so(api: Api, queue: dict[str, Any]) -> None:
    [made] = await api.add_tasks(queue["id"], [task()])

    why = await api.ok("GET", tasks_path(queue["id"]) + f"{made['id']}/why")

    assert why["task_id"] == made["id"]
    assert why["status"] == "scheduled"
    reasons = [r["reason"] for r in why["reasons"]]
    # No call engine runs in this test: AMI is not ready either.
    assert reasons == ["queue_off", "ami_down"]
    assert why["reasons"][0]["text"] == "its queue is switched off"


async def test_a_task_waiting_for_its_start_time_says_until_when(api: Api) -> None:
    queue = await api.new_queue(status="on")
    [made] = await api.add_tasks(queue["id"], [task(start_time_utc="2099-01-01 08:00")])

    why = await api.ok("GET", tasks_path(queue["id"]) + f"{made['id']}/why")

    assert why["reasons"][-1] == {
        "reason": "start_time",
        "text": "waits for its start time, 2099-01-01 08:00:00 UTC",
        "until": "2099-01-01 08:00:00",
    }


async def test_a_task_of_a_queue_outside_its_calling_hours_says_until_when(api: Api) -> None:
    # Open for one hour, ten days from now.
    start = (datetime.now(UTC) + timedelta(days=10)).replace(minute=0, second=0, microsecond=0)
    condition = {
        "start_datetime": start.strftime("%Y-%m-%d %H:%M:%S"),
        "end_datetime": (start + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S"),
    }
    interval = await api.ok(
        "POST", "/client/acme/interval/", 201,
        json={"name": "later", "timezone": "UTC", "conditions": [condition]},
    )  # fmt: skip
    queue = await api.new_queue(status="on", interval_id=interval["id"])
    [made] = await api.add_tasks(queue["id"], [task()])

    why = await api.ok("GET", tasks_path(queue["id"]) + f"{made['id']}/why")

    opening = start.strftime("%Y-%m-%d %H:%M:%S")
    assert {"reason": "interval_closed", "text": f"calling hours closed until {opening} UTC",
            "until": opening} in why["reasons"]  # fmt: skip


async def test_deliveries_show_state_tries_and_the_receivers_status(
    api: Api, queue: dict[str, Any]
) -> None:
    [made] = await api.add_tasks(queue["id"], [task()])
    rows = [
        (made["id"], "before", 1, "2024-03-01 10:00:01", 0, ""),
        (made["id"], "after", 3, None, 0, "HTTP 503"),
        (made["id"], "success", 6, None, 1, "no answer within 5 s"),
    ]
    await api.services.db.write(
        lambda conn: conn.executemany(
            "INSERT INTO outbox (task_id, event, url, body, created, next_try, tries,"
            " delivered_at, given_up, last_error) VALUES (?, ?, 'http://h/x', '{}',"
            " '2024-03-01 10:00:00', '2024-03-01 10:00:30', ?, ?, ?, ?)",
            rows,
        )
    )

    response = await api.request("GET", tasks_path(queue["id"]) + f"{made['id']}/webhooks")
    rows = await response.json()

    assert response.headers["X-Total-Count"] == "3"
    assert [(r["event"], r["state"], r["tries"], r["last_status"]) for r in rows] == [
        ("before", "delivered", 1, None),
        ("after", "pending", 3, 503),
        ("success", "given_up", 6, None),
    ]
    assert rows[0]["delivered_utc"] == "2024-03-01 10:00:01"
    assert rows[1]["next_try_utc"] == "2024-03-01 10:00:30"
    assert rows[2]["last_error"] == "no answer within 5 s"


async def test_the_ladder_of_a_call_has_both_legs_and_who_hung_up(
    api: Api, queue: dict[str, Any]
) -> None:
    [made] = await api.add_tasks(queue["id"], [task(a_number="1105", b_number="1102")])
    await insert_call(api, made, "c-1", LEG_EVENTS)

    drawing = await api.ok("GET", "/client/acme/call_history/c-1/ladder")

    a, b = drawing["legs"]
    assert (a["side"], a["number"], b["side"], b["number"]) == ("A", "1105", "B", "1102")
    assert [s["kind"] for s in a["steps"]] == ["dialled", "answered", "bridged", "hung_up"]
    assert b["caller_id_number"] == "1105"
    assert drawing["hung_up_first"] == "B"
    assert drawing["event_count"] == len(LEG_EVENTS)


async def test_live_calls_and_number_search_of_the_call_history(
    api: Api, queue: dict[str, Any]
) -> None:
    made = await api.add_tasks(
        queue["id"], [task(a_number="1105", b_number="1102"), task(a_number="3000")]
    )
    await insert_call(api, made[0], "ended-1", LEG_EVENTS)
    await insert_call(api, made[1], "live-1", [])
    await execute(
        api.services.db, "UPDATE attempts SET state = 'in_call' WHERE call_uuid = 'live-1'"
    )

    async def uuids(**params: str) -> list[str]:
        calls = await api.ok("GET", "/client/acme/call_history/", params=params)
        return [c["call_uuid"] for c in calls]

    assert await uuids(state="live") == ["live-1"]
    assert await uuids(state="ended") == ["ended-1"]
    assert await uuids(number="110") == ["ended-1"]  # a part of A 1105 and of B 1102
    assert await uuids(number="300") == ["live-1"]
    assert await uuids(number="999") == []
    response = await api.request("GET", "/client/acme/call_history/", params={"number": "1;"})
    await assert_problem(response, 422)


async def test_tasks_are_found_by_a_part_of_any_of_their_numbers(
    api: Api, queue: dict[str, Any]
) -> None:
    await api.add_tasks(
        queue["id"],
        [
            task(a_number="1105", b_number="1102"),
            task(a_number="3000", b_number="4000", callback_params={"extended_a_numbers": ["777"]}),
        ],
    )

    async def found(number: str) -> tuple[list[str], str]:
        response = await api.request("GET", tasks_path(queue["id"]), params={"number": number})
        rows = await response.json()
        return [r["a_number"] for r in rows], response.headers["X-Total-Count"]

    assert await found("110") == (["1105"], "1")
    assert await found("400") == (["3000"], "1")
    assert await found("77") == (["3000"], "1")
    assert await found("5") == (["1105"], "1")


async def test_another_clients_task_and_call_are_not_found(api: Api, queue: dict[str, Any]) -> None:
    [made] = await api.add_tasks(queue["id"], [task()])
    await insert_call(api, made, "c-1", LEG_EVENTS)
    beta_path = f"/client/beta/task_scheduler/{queue['id']}/tasks/{made['id']}"
    for path in (
        beta_path + "/why",
        beta_path + "/webhooks",
        "/client/beta/call_history/c-1/ladder",
    ):
        await assert_problem(await api.request("GET", path, client="beta"), 404)
    acme_path = tasks_path(queue["id"]) + f"{made['id']}"
    for path in (
        acme_path + "/why",
        acme_path + "/webhooks",
        "/client/acme/call_history/c-1/ladder",
    ):
        await assert_problem(await api.request("GET", path, client="beta"), 404)
    assert await api.ok("GET", "/client/beta/call_history/", client="beta") == []


class TrippedDefaultProfile:
    def states(self) -> dict[int | None, GuardState]:
        return {
            None: GuardState(tripped=True, attempts=40, answered=4, min_ratio=0.3, min_attempts=30)
        }


async def test_a_task_of_a_profile_whose_asr_guard_tripped_says_so(api: Api) -> None:
    queue = await api.new_queue(status="on")
    [made] = await api.add_tasks(queue["id"], [task()])
    api.services.asr = TrippedDefaultProfile()

    why = await api.ok("GET", tasks_path(queue["id"]) + f"{made['id']}/why")

    [guard] = [r for r in why["reasons"] if r["reason"] == "asr_guard"]
    assert "4 of the last 40 attempts answered, 10%; it needs 30%" in guard["text"]


async def claim_calls(api: Api, tasks: list[dict[str, Any]]) -> None:
    """Put the tasks in a call as the scheduler does: claimed, with their attempt rows."""
    plan = CallPlan(a_numbers=["1001"], b_number="1002")
    claims = [Claim(t["id"], t["scheduler_id"], str(uuid.uuid4()), 1, plan) for t in tasks]
    held = await AttemptRepository(api.services.db).claim(claims, datetime.now(UTC))
    assert len(held) == len(tasks)


async def test_a_full_queue_and_a_full_extension_profile_are_named_with_their_counts(
    api_factory: ApiFactory,
) -> None:
    api = await api_factory(extensions={101: {"max_concurrent": 1}})
    queue = await api.new_queue(status="on", concurrent_task_limit=2)
    other = await api.new_queue(name="other", status="on")
    in_call = await api.add_tasks(queue["id"], [task(), task(extension_id=101)])
    [waiting] = await api.add_tasks(queue["id"], [task(extension_id=101)])
    [elsewhere] = await api.add_tasks(other["id"], [task(extension_id=101)])
    await claim_calls(api, in_call)

    async def reasons(made: dict[str, Any]) -> list[str]:
        why = await api.ok("GET", tasks_path(made["scheduler_id"]) + f"{made['id']}/why")
        return [r["text"] for r in why["reasons"] if r["reason"].endswith("_limit")]

    assert await reasons(waiting) == [
        "its queue is at its concurrency limit: 2 of 2 calls",
        "extension profile 101 is at its concurrency limit: 1 of 1 calls",
    ]
    # The profile's limit holds across queues; the other queue has room.
    assert await reasons(elsewhere) == [
        "extension profile 101 is at its concurrency limit: 1 of 1 calls"
    ]
