"""Tasks over HTTP: bulk add, idempotency, list/filter/page, read, change, cancel (docs/api.md)."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import Api, assert_problem, queue_path, task, tasks_path
from tests.store_sql import execute

# Each test runs on the SQLite store and on the shared PostgreSQL store.
BOTH_STORES = True


async def _count(api: Api, queue_id: int, client: str = "acme") -> int:
    response = await api.request("GET", tasks_path(queue_id, client), client=client)
    assert response.status == 200
    return int(response.headers["X-Total-Count"])


async def _set_state(api: Api, task_id: int, status: str, result: str | None = None) -> None:
    await execute(
        api.services.db,
        "UPDATE tasks SET status = ?, finish_result = ?, next_attempt = NULL WHERE id = ?",
        (status, result, task_id),
    )


# --- bulk add ------------------------------------------------------------------------


async def test_bulk_add_returns_every_task_in_request_order(
    api: Api, queue: dict[str, Any]
) -> None:
    sent = [task(name=f"t{i}", b_number=str(100 + i)) for i in range(5)]

    created = await api.add_tasks(queue["id"], sent)

    assert [t["name"] for t in created] == [f"t{i}" for i in range(5)]
    assert [t["b_number"] for t in created] == [str(100 + i) for i in range(5)]
    first = created[0]
    assert first["scheduler_id"] == queue["id"]
    assert first["status"] == "scheduled"
    assert first["finish_result"] is None
    assert first["cdr"] == ""
    assert first["attempts_made"] == 0
    assert first["try_count"] == 1
    assert first["try_again_pause"] == 60
    assert first["next_attempt_utc"] == first["create_date_utc"]
    for made in created:
        assert await api.ok("GET", tasks_path(queue["id"]) + str(made["id"])) == made


async def test_bad_task_rejects_the_whole_batch(api: Api, queue: dict[str, Any]) -> None:
    await api.add_tasks(queue["id"], [task()])
    batch = [task() for _ in range(50)]
    batch[17] = task(b_number="12;34")

    response = await api.request("POST", tasks_path(queue["id"]), json={"tasks": batch})

    body = await assert_problem(response, 422)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(17, "b_number")]
    assert body["errors"][0]["loc"] == "tasks[17].b_number"
    assert await _count(api, queue["id"]) == 1
    assert (await api.ok("GET", queue_path(queue["id"])))["task_count"] == 1


async def test_every_bad_task_is_named_by_index_and_field(api: Api, queue: dict[str, Any]) -> None:
    batch = [task(), task(a_number="x"), task(), task(try_count=0, extension_id=7)]

    response = await api.request("POST", tasks_path(queue["id"]), json={"tasks": batch})

    body = await assert_problem(response, 422)
    # In task order, the unknown extension profile too: one answer names everything.
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (1, "a_number"),
        (3, "try_count"),
        (3, "extension_id"),
    ]
    assert body["detail"] == "3 invalid fields"


async def test_ten_thousand_tasks_fit_in_one_request_and_one_more_does_not(
    api: Api, queue: dict[str, Any]
) -> None:
    too_many = await api.request("POST", tasks_path(queue["id"]), json={"tasks": [task()] * 10_001})
    body = await assert_problem(too_many, 422)
    assert body["errors"][0]["field"] == "tasks"
    assert await _count(api, queue["id"]) == 0

    created = await api.add_tasks(queue["id"], [task()] * 10_000)

    assert len(created) == 10_000
    assert len({t["id"] for t in created}) == 10_000
    assert await _count(api, queue["id"]) == 10_000


async def test_an_empty_batch_is_rejected(api: Api, queue: dict[str, Any]) -> None:
    for body in ({"tasks": []}, {}, {"tasks": [task()], "extra": 1}, [task()]):
        response = await api.request("POST", tasks_path(queue["id"]), json=body)
        await assert_problem(response, 422)


# --- idempotency ----------------------------------------------------------------------


async def test_repeated_idempotency_key_returns_the_first_answer_and_stores_nothing(
    api: Api, queue: dict[str, Any]
) -> None:
    body = {"tasks": [task(name="once"), task(name="twice")]}
    key = {"Idempotency-Key": "order-42"}

    first = await api.request("POST", tasks_path(queue["id"]), json=body, headers=key)
    again = await api.request("POST", tasks_path(queue["id"]), json=body, headers=key)

    assert (first.status, again.status) == (201, 201)
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == await first.json()
    assert await _count(api, queue["id"]) == 2


async def test_idempotency_key_reused_with_another_body_is_rejected(
    api: Api, queue: dict[str, Any]
) -> None:
    key = {"Idempotency-Key": "order-43"}
    await api.ok("POST", tasks_path(queue["id"]), 201, json={"tasks": [task()]}, headers=key)

    response = await api.request(
        "POST", tasks_path(queue["id"]), json={"tasks": [task(b_number="999")]}, headers=key
    )

    body = await assert_problem(response, 422)
    assert "Idempotency-Key" in body["detail"]
    assert await _count(api, queue["id"]) == 1


async def test_idempotency_key_reused_for_another_queue_is_rejected(api: Api) -> None:
    first_queue = await api.new_queue(name="one")
    second_queue = await api.new_queue(name="two")
    body = {"tasks": [task()]}
    key = {"Idempotency-Key": "order-44"}
    await api.ok("POST", tasks_path(first_queue["id"]), 201, json=body, headers=key)

    response = await api.request("POST", tasks_path(second_queue["id"]), json=body, headers=key)

    await assert_problem(response, 422)
    assert await _count(api, second_queue["id"]) == 0


async def test_different_clients_use_the_same_idempotency_key_independently(api: Api) -> None:
    ours = await api.new_queue()
    theirs = await api.new_queue(client="beta")
    body = {"tasks": [task()]}
    key = {"Idempotency-Key": "shared-key"}

    first = await api.request("POST", tasks_path(ours["id"]), json=body, headers=key)
    other = await api.request(
        "POST", tasks_path(theirs["id"], "beta"), client="beta", json=body, headers=key
    )

    assert (first.status, other.status) == (201, 201)
    assert "Idempotent-Replayed" not in other.headers
    assert (await other.json())["tasks"][0]["scheduler_id"] == theirs["id"]
    assert await _count(api, theirs["id"], "beta") == 1


async def test_a_rejected_request_does_not_use_up_its_idempotency_key(
    api: Api, queue: dict[str, Any]
) -> None:
    key = {"Idempotency-Key": "retry-me"}
    bad = await api.request(
        "POST", tasks_path(queue["id"]), json={"tasks": [task(a_number="")]}, headers=key
    )
    await assert_problem(bad, 422)

    good = await api.request("POST", tasks_path(queue["id"]), json={"tasks": [task()]}, headers=key)

    assert good.status == 201
    assert "Idempotent-Replayed" not in good.headers


async def test_unprintable_idempotency_key_is_a_bad_request(
    api: Api, queue: dict[str, Any]
) -> None:
    for key in ("", "k" * 256):
        response = await api.request(
            "POST",
            tasks_path(queue["id"]),
            json={"tasks": [task()]},
            headers={"Idempotency-Key": key},
        )
        await assert_problem(response, 400)
    assert await _count(api, queue["id"]) == 0


# --- list, filter, page --------------------------------------------------------------


async def test_tasks_are_paged_with_the_total_in_a_header(api: Api, queue: dict[str, Any]) -> None:
    created = await api.add_tasks(queue["id"], [task(name=f"t{i}") for i in range(7)])

    response = await api.request(
        "GET", tasks_path(queue["id"]), params={"page": "2", "per_page": "3"}
    )

    assert response.status == 200
    assert response.headers["X-Total-Count"] == "7"
    assert [t["id"] for t in await response.json()] == [t["id"] for t in created[3:6]]
    beyond = await api.request(
        "GET", tasks_path(queue["id"]), params={"page": "4", "per_page": "3"}
    )
    assert await beyond.json() == []
    assert beyond.headers["X-Total-Count"] == "7"


async def test_paging_defaults_to_the_first_hundred(api: Api, queue: dict[str, Any]) -> None:
    await api.add_tasks(queue["id"], [task()] * 150)

    listed = await api.ok("GET", tasks_path(queue["id"]))

    assert len(listed) == 100


async def test_paging_limits_are_enforced(api: Api, queue: dict[str, Any]) -> None:
    for params in ({"per_page": "1001"}, {"per_page": "0"}, {"page": "0"}, {"page": "two"}):
        response = await api.request("GET", tasks_path(queue["id"]), params=params)
        body = await assert_problem(response, 422)
        assert body["errors"][0]["field"] == next(iter(params))
    assert (await api.request("GET", tasks_path(queue["id"]), params={"per_page": "1000"})).ok


async def test_tasks_filter_by_status_finish_result_and_name(
    api: Api, queue: dict[str, Any]
) -> None:
    created = await api.add_tasks(
        queue["id"], [task(name="alpha"), task(name="beta"), task(name="alpha"), task()]
    )
    ids = [t["id"] for t in created]
    await _set_state(api, ids[0], "finished", "success")
    await _set_state(api, ids[1], "finished", "failed")
    await _set_state(api, ids[2], "delayed")

    async def listed(params: list[tuple[str, str]]) -> tuple[list[int], int]:
        response = await api.request("GET", tasks_path(queue["id"]), params=params)
        assert response.status == 200, await response.text()
        return [t["id"] for t in await response.json()], int(response.headers["X-Total-Count"])

    assert await listed([("status", "finished")]) == ([ids[0], ids[1]], 2)
    assert await listed([("status", "delayed"), ("status", "scheduled")]) == (
        [ids[2], ids[3]],
        2,
    )
    assert await listed([("finish_result", "success")]) == ([ids[0]], 1)
    assert await listed([("finish_result", "failed")]) == ([ids[1]], 1)
    assert await listed([("name", "alpha")]) == ([ids[0], ids[2]], 2)
    assert await listed([("name", "alpha"), ("status", "delayed")]) == ([ids[2]], 1)
    assert await listed([("name", "nobody")]) == ([], 0)


async def test_unknown_filter_values_are_rejected(api: Api, queue: dict[str, Any]) -> None:
    for params in ({"status": "sleeping"}, {"finish_result": "maybe"}, {"colour": "red"}):
        response = await api.request("GET", tasks_path(queue["id"]), params=params)
        await assert_problem(response, 422)


# --- change ---------------------------------------------------------------------------


async def test_waiting_task_changes_the_named_fields_and_keeps_the_rest(
    api: Api, queue: dict[str, Any]
) -> None:
    [made] = await api.add_tasks(
        queue["id"], [task(name="before", try_count=3, variables={"order": "7"})]
    )
    path = tasks_path(queue["id"]) + str(made["id"])

    changed = await api.ok("PUT", path, json={"b_number": "202", "try_again_pause": "90"})

    assert changed["b_number"] == "202"
    assert changed["try_again_pause"] == 90
    assert changed["name"] == "before"
    assert changed["try_count"] == 3
    assert changed["variables"] == {"order": "7"}
    assert await api.ok("GET", path) == changed


async def test_a_delayed_task_may_change_too(api: Api, queue: dict[str, Any]) -> None:
    [made] = await api.add_tasks(queue["id"], [task()])
    await _set_state(api, made["id"], "delayed")

    changed = await api.ok("PUT", tasks_path(queue["id"]) + str(made["id"]), json={"name": "later"})

    assert changed["name"] == "later"


async def test_task_change_is_validated_as_a_whole_task(api: Api, queue: dict[str, Any]) -> None:
    [made] = await api.add_tasks(queue["id"], [task()])
    path = tasks_path(queue["id"]) + str(made["id"])

    for change in ({"a_number": "1@evil"}, {"extension_id": 999}, {"id": 5}, {"try_count": 51}):
        await assert_problem(await api.request("PUT", path, json=change), 422)
    await assert_problem(await api.request("PUT", path, json=["not", "an", "object"]), 422)
    assert await api.ok("GET", path) == made


async def test_start_time_change_moves_the_next_attempt(api: Api, queue: dict[str, Any]) -> None:
    [made] = await api.add_tasks(queue["id"], [task()])

    changed = await api.ok(
        "PUT",
        tasks_path(queue["id"]) + str(made["id"]),
        json={"start_time_utc": "2099-05-01 08:30"},
    )

    assert changed["start_time_utc"] == "2099-05-01 08:30:00"
    assert changed["next_attempt_utc"] == "2099-05-01 08:30:00"


async def test_finished_or_running_task_cannot_change(api: Api, queue: dict[str, Any]) -> None:
    done, running = await api.add_tasks(queue["id"], [task(), task()])
    await _set_state(api, done["id"], "finished", "success")
    await _set_state(api, running["id"], "executed")

    for made in (done, running):
        path = tasks_path(queue["id"]) + str(made["id"])
        await assert_problem(await api.request("PUT", path, json={"name": "x"}), 409)
        assert (await api.ok("GET", path))["name"] == ""


# --- cancel ---------------------------------------------------------------------------


async def test_cancelling_a_waiting_task_finishes_it_failed_cancelled(
    api: Api, queue: dict[str, Any]
) -> None:
    [made] = await api.add_tasks(queue["id"], [task()])
    path = tasks_path(queue["id"]) + str(made["id"])

    cancelled = await api.ok("DELETE", path)

    assert cancelled["status"] == "finished"
    assert cancelled["finish_result"] == "failed"
    assert cancelled["finish_comment"] == "cancelled"
    assert cancelled["next_attempt_utc"] is None
    assert await api.ok("GET", path) == cancelled


async def test_cancelling_a_finished_task_is_a_conflict(api: Api, queue: dict[str, Any]) -> None:
    [made] = await api.add_tasks(queue["id"], [task()])
    path = tasks_path(queue["id"]) + str(made["id"])
    await api.ok("DELETE", path)

    again = await api.request("DELETE", path)

    await assert_problem(again, 409)
    assert (await api.ok("GET", path))["finish_comment"] == "cancelled"


async def test_unknown_task_is_404_for_every_verb(api: Api, queue: dict[str, Any]) -> None:
    other_queue = await api.new_queue(name="other")
    [elsewhere] = await api.add_tasks(other_queue["id"], [task()])
    for task_id in ("999", str(elsewhere["id"]), "abc", "-1"):
        path = tasks_path(queue["id"]) + task_id
        for method in ("GET", "PUT", "DELETE"):
            await assert_problem(await api.request(method, path, json={"name": "x"}), 404)
        await assert_problem(await api.request("GET", path + "/attempts"), 404)


async def test_attempts_of_a_task_without_calls_are_empty(api: Api, queue: dict[str, Any]) -> None:
    [made] = await api.add_tasks(queue["id"], [task()])

    response = await api.request("GET", tasks_path(queue["id"]) + f"{made['id']}/attempts")

    assert response.status == 200
    assert await response.json() == []
    assert response.headers["X-Total-Count"] == "0"
