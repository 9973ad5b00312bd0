"""Time intervals over HTTP, and queues that use them: CRUD, every rule, isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.integration.conftest import Api, assert_problem, queue_path

# Each test runs on the SQLite store and on the shared PostgreSQL store.
BOTH_STORES = True

INTERVALS = "/client/acme/interval/"
PAST = {"start_datetime": "2020-01-01 00:00:00", "end_datetime": "2020-01-02 00:00:00"}


def soon_in(tz: str, days: int = 10) -> tuple[dict[str, str], str]:
    """A condition open for one hour `days` from now in `tz`, and its opening in UTC."""
    start = (datetime.now(UTC) + timedelta(days=days)).astimezone(ZoneInfo(tz))
    start = start.replace(minute=0, second=0, microsecond=0, tzinfo=None)
    condition = {
        "start_datetime": str(start),
        "end_datetime": str(start + timedelta(hours=1)),
    }
    opening = start.replace(tzinfo=ZoneInfo(tz)).astimezone(UTC)
    return condition, opening.strftime("%Y-%m-%d %H:%M:%S")


async def new_interval(api: Api, client: str = "acme", **fields: Any) -> dict[str, Any]:
    body = {"name": "office hours", "timezone": "Europe/Berlin", **fields}
    created: dict[str, Any] = await api.ok(
        "POST", f"/client/{client}/interval/", 201, client=client, json=body
    )
    return created


async def test_an_interval_is_created_read_listed_changed_and_deleted(api: Api) -> None:
    conditions = [{"start_dow": 2, "end_dow": 6, "start_time": "09:00:00", "end_time": "18:00:00"}]
    created = await new_interval(api, conditions=conditions)
    path = INTERVALS + str(created["id"])

    assert created["timezone"] == "Europe/Berlin"
    assert created["conditions"][0]["start_time"] == "09:00:00"
    assert await api.ok("GET", path) == created
    listed = await api.request("GET", INTERVALS)
    assert listed.headers["X-Total-Count"] == "1"
    assert await listed.json() == [created]

    changed = await api.ok("PUT", path, json={"name": "late shift"})
    assert changed["name"] == "late shift"
    assert changed["conditions"] == created["conditions"]

    await api.ok("DELETE", path, 204)
    await assert_problem(await api.request("GET", path), 404)


async def test_an_interval_shows_when_it_opens_next(api: Api) -> None:
    condition, opening = soon_in("America/New_York")

    closed = await new_interval(api, timezone="America/New_York", conditions=[condition])
    always = await new_interval(api, conditions=[])
    never = await new_interval(api, conditions=[PAST])

    assert (closed["is_open"], closed["next_open_utc"]) == (False, opening)
    assert (always["is_open"], always["next_open_utc"]) == (True, None)
    assert (never["is_open"], never["next_open_utc"]) == (False, None)


# (body, field named in the 422)
INVALID = [
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"timezone": None}, "timezone"),
    ({"conditions": [{"start_dow": 2}]}, "conditions.0.end_dow"),
    ({"conditions": [{}, {"start_dow": 9, "end_dow": 1}]}, "conditions.1.start_dow"),
    ({"conditions": [{"start_time": "18:00:00", "end_time": "09:00:00"}]}, "conditions.0.end_time"),
    ({"conditions": [{}] * 101}, "conditions"),
    ({"name": ""}, "name"),
]


async def test_a_bad_interval_is_a_422_naming_the_field(api: Api) -> None:
    for change, field in INVALID:
        body = {"name": "x", "timezone": "UTC", **change}
        problem = await assert_problem(await api.request("POST", INTERVALS, json=body), 422)
        assert [e["field"] for e in problem["errors"]] == [field], change
    created = await new_interval(api)
    for change, field in INVALID:
        response = await api.request("PUT", INTERVALS + str(created["id"]), json=change)
        if change.get("timezone", "") is None:
            continue  # a null in a PUT leaves the field as it is
        problem = await assert_problem(response, 422)
        assert [e["field"] for e in problem["errors"]] == [field], change


async def test_a_queue_takes_an_interval_and_shows_it_open_or_closed(api: Api) -> None:
    condition, opening = soon_in("Asia/Tokyo")
    closed = await new_interval(api, timezone="Asia/Tokyo", conditions=[condition])
    always = await new_interval(api)

    queue = await api.new_queue(interval_id=closed["id"])
    assert (queue["interval_id"], queue["interval_open"]) == (closed["id"], False)
    assert queue["next_open_utc"] == opening

    moved = await api.ok("PUT", queue_path(queue["id"]), json={"interval_id": always["id"]})
    assert (moved["interval_open"], moved["next_open_utc"]) == (True, None)
    kept = await api.ok("PUT", queue_path(queue["id"]), json={"name": "renamed"})
    assert kept["interval_id"] == always["id"]
    freed = await api.ok("PUT", queue_path(queue["id"]), json={"interval_id": None})
    assert (freed["interval_id"], freed["interval_open"]) == (None, True)


async def test_a_queue_without_an_interval_is_always_open(api: Api) -> None:
    queue = await api.new_queue()
    assert (queue["interval_id"], queue["interval_open"], queue["next_open_utc"]) == (
        None,
        True,
        None,
    )


async def test_an_interval_in_use_cannot_be_deleted(api: Api) -> None:
    interval = await new_interval(api)
    queue = await api.new_queue(interval_id=interval["id"])

    problem = await assert_problem(
        await api.request("DELETE", INTERVALS + str(interval["id"])), 409
    )
    assert "queue" in problem["detail"]
    await api.ok("PUT", queue_path(queue["id"]), json={"interval_id": None})
    await api.ok("DELETE", INTERVALS + str(interval["id"]), 204)


async def test_another_clients_interval_is_not_found_and_cannot_be_used(api: Api) -> None:
    theirs = await new_interval(api, client="beta")
    path = INTERVALS + str(theirs["id"])

    for method, body in (("GET", None), ("PUT", {"name": "mine"}), ("DELETE", None)):
        await assert_problem(await api.request(method, path, json=body), 404)
    listed = await api.request("GET", INTERVALS)
    assert (listed.headers["X-Total-Count"], await listed.json()) == ("0", [])

    for interval_id in (theirs["id"], 999_999):
        response = await api.request(
            "POST", "/client/acme/task_scheduler/", json={"name": "q", "interval_id": interval_id}
        )
        problem = await assert_problem(response, 422)
        assert [e["field"] for e in problem["errors"]] == ["interval_id"]
        queue = await api.new_queue()
        response = await api.request(
            "PUT", queue_path(queue["id"]), json={"interval_id": interval_id}
        )
        problem = await assert_problem(response, 422)
        assert [e["field"] for e in problem["errors"]] == ["interval_id"]
    assert (await api.ok("GET", f"/client/beta/interval/{theirs['id']}", client="beta"))[
        "name"
    ] == "office hours"
