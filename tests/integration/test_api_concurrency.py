"""Many clients at once against the real API over a real SQLite file: every answer to a
write shows what that write made, no request that was carried out answers a 5xx, and no
read shows a state older than a write that was answered before it."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.integration.conftest import Api, queue_path, task, tasks_path

CLIENTS = 12
ROUNDS = 15


async def _queue_client(api: Api, n: int, other_queue: int) -> list[str]:
    """POST a queue, list another queue's tasks and the queues, PUT its own queue, read
    it back; the problems seen, as text."""
    problems: list[str] = []
    for i in range(ROUNDS):
        name = f"c{n}-r{i}"
        response = await api.request("POST", "/client/acme/task_scheduler/", json={"name": name})
        if response.status != 201:
            problems.append(f"POST queue {response.status}: {await response.text()}")
            continue
        created = await response.json()
        if created["name"] != name:
            problems.append(f"POST answered {created['name']!r} for {name!r}")
        for path in (tasks_path(other_queue), "/client/acme/task_scheduler/"):
            listed = await api.request("GET", path)
            if listed.status != 200:
                problems.append(f"GET {path} {listed.status}")
        comment = f"put {i}"
        response = await api.request(
            "PUT", queue_path(created["id"]), json={"comment": comment, "status": "on"}
        )
        body = await response.json()
        if response.status != 200 or body["comment"] != comment or body["status"] != "on":
            problems.append(f"PUT answered {response.status} {body}")
        again = await api.ok("GET", queue_path(created["id"]))
        if again["comment"] != comment:
            problems.append(f"GET after PUT shows {again['comment']!r}, not {comment!r}")
    return problems


async def test_concurrent_clients_see_their_own_queue_writes(api: Api) -> None:
    other = await api.new_queue(name="shared")
    await api.add_tasks(other["id"], [task() for _ in range(50)])

    results = await asyncio.gather(*(_queue_client(api, n, other["id"]) for n in range(CLIENTS)))

    assert [p for problems in results for p in problems] == []
    queues = await api.ok("GET", "/client/acme/task_scheduler/")
    assert len(queues) == 1 + CLIENTS * ROUNDS  # each POST stored once


async def _task_client(api: Api, queue_id: int, task_row: dict[str, Any]) -> list[str]:
    """PUT one's own task again and again, each answer and the next read showing it;
    then cancel it, the answer showing the cancel."""
    problems: list[str] = []
    path = f"{tasks_path(queue_id)}{task_row['id']}"
    for i in range(ROUNDS):
        name = f"task {task_row['id']} put {i}"
        response = await api.request("PUT", path, json={"name": name, "try_count": 1 + i % 5})
        body = await response.json()
        if response.status != 200 or body["name"] != name or body["try_count"] != 1 + i % 5:
            problems.append(f"PUT answered {response.status} {body}")
        listed = await api.ok("GET", tasks_path(queue_id), params={"name": name})
        if [t["id"] for t in listed] != [task_row["id"]]:
            problems.append(f"list by name {name!r} shows {[t['id'] for t in listed]}")
    response = await api.request("DELETE", path)
    body = await response.json()
    if response.status != 200 or body["status"] != "finished":
        problems.append(f"DELETE answered {response.status} {body}")
    return problems


async def test_concurrent_task_changes_answer_with_their_own_change(
    api: Api, queue: dict[str, Any]
) -> None:
    rows = await api.add_tasks(
        queue["id"], [task(start_time_utc="2099-01-01 00:00") for _ in range(CLIENTS)]
    )

    results = await asyncio.gather(*(_task_client(api, queue["id"], row) for row in rows))

    assert [p for problems in results for p in problems] == []
    finished = await api.ok("GET", tasks_path(queue["id"]), params={"status": "finished"})
    assert sorted(t["id"] for t in finished) == sorted(r["id"] for r in rows)
    assert {t["finish_comment"] for t in finished} == {"cancelled"}
