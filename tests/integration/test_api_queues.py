"""Queues over HTTP: create, list, read with counters, change, delete (docs/api.md)."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import Api, assert_problem, queue_path, task, tasks_path

# Each test runs on the SQLite store and on the shared PostgreSQL store.
BOTH_STORES = True


async def test_a_new_queue_is_off_with_defaults_and_empty_counters(api: Api) -> None:
    created = await api.new_queue(name="sales", comment="spring campaign")

    assert created["name"] == "sales"
    assert created["comment"] == "spring campaign"
    assert created["status"] == "off"
    assert created["concurrent_task_limit"] == 10
    assert created["task_count"] == 0
    assert created["sched_task_count"] == 0
    assert created["last_call_date"] is None
    assert isinstance(created["id"], int)
    assert len(created["create_date_utc"]) == len("2024-01-01 00:00:00")


async def test_queue_list_holds_the_clients_queues_with_total(api: Api) -> None:
    first = await api.new_queue(name="one")
    second = await api.new_queue(name="two")
    await api.new_queue(client="beta", name="theirs")

    response = await api.request("GET", "/client/acme/task_scheduler/")

    assert response.status == 200
    assert response.headers["X-Total-Count"] == "2"
    assert [q["id"] for q in await response.json()] == [first["id"], second["id"]]


async def test_queue_counters_count_all_and_unfinished_tasks(
    api: Api, queue: dict[str, Any]
) -> None:
    created = await api.add_tasks(queue["id"], [task(), task(), task()])
    await api.ok("DELETE", tasks_path(queue["id"]) + str(created[0]["id"]))

    counted = await api.ok("GET", queue_path(queue["id"]))

    assert counted["task_count"] == 3
    assert counted["sched_task_count"] == 2


async def test_queue_update_changes_only_the_named_fields(api: Api, queue: dict[str, Any]) -> None:
    updated = await api.ok(
        "PUT", queue_path(queue["id"]), json={"status": "on", "concurrent_task_limit": 3}
    )

    assert updated["status"] == "on"
    assert updated["concurrent_task_limit"] == 3
    assert updated["name"] == queue["name"]
    assert await api.ok("GET", queue_path(queue["id"])) == updated


async def test_queue_update_is_validated(api: Api, queue: dict[str, Any]) -> None:
    response = await api.request(
        "PUT", queue_path(queue["id"]), json={"status": "maybe", "concurrent_task_limit": 0}
    )

    body = await assert_problem(response, 422)
    assert {e["field"] for e in body["errors"]} == {"status", "concurrent_task_limit"}


async def test_queue_create_rejects_missing_name_and_unknown_fields(api: Api) -> None:
    response = await api.request(
        "POST", "/client/acme/task_scheduler/", json={"comment": "x", "colour": "red"}
    )

    body = await assert_problem(response, 422)
    assert {e["field"]: e["message"] for e in body["errors"]} == {
        "name": "required",
        "colour": "unknown field",
    }


async def test_queue_name_must_not_be_empty_or_too_long(api: Api) -> None:
    for name in ("", "x" * 256):
        response = await api.request("POST", "/client/acme/task_scheduler/", json={"name": name})
        body = await assert_problem(response, 422)
        assert body["errors"][0]["field"] == "name"


async def test_queue_with_unfinished_tasks_cannot_be_deleted_until_they_are_cancelled(
    api: Api, queue: dict[str, Any]
) -> None:
    [waiting] = await api.add_tasks(queue["id"], [task()])

    refused = await api.request("DELETE", queue_path(queue["id"]))
    await assert_problem(refused, 409)
    assert (await api.ok("GET", queue_path(queue["id"])))["task_count"] == 1

    await api.ok("DELETE", tasks_path(queue["id"]) + str(waiting["id"]))
    deleted = await api.request("DELETE", queue_path(queue["id"]))

    assert deleted.status == 204
    await assert_problem(await api.request("GET", queue_path(queue["id"])), 404)


async def test_unknown_queue_is_404_for_every_verb(api: Api) -> None:
    for method, path in [
        ("GET", queue_path(999)),
        ("PUT", queue_path(999)),
        ("DELETE", queue_path(999)),
        ("GET", queue_path(999) + "/tasks/"),
        ("POST", queue_path(999) + "/tasks/"),
        ("GET", queue_path(12345678901234567890)),
        ("GET", "/client/acme/task_scheduler/abc"),
    ]:
        response = await api.request(method, path, json={"tasks": [task()], "name": "x"})
        await assert_problem(response, 404)
