"""A load test: 32 clients at once for 10 s against the real API on 127.0.0.1, over a real
SQLite file and again over the shared PostgreSQL store (tools/testpg), mixing every verb
on queues, tasks and call history, with and without Idempotency-Key. Each client keeps a
model of what its accepted requests made; every answer is checked against it (a write's
answer must show that write), no answer may be a 5xx, and at the end the store must hold
exactly what the models say: nothing lost, nothing twice. Its figures are printed for quoting."""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import ClientResponse

from tests.integration.conftest import Api, insert_call, queue_path, task, tasks_path
from tests.store_sql import execute

CLIENTS = 32
SECONDS = 10.0  # per store
FAR = "2099-01-01 00:00:00"  # no task of the run comes due
CALLS = 6
BOTH_STORES = True  # the api fixture runs on SQLite, then on PostgreSQL
EVENTS = [{"Event": "Hangup", "Cause": "16", "Cause-txt": "Normal Clearing"}]


@dataclass
class Figures:
    requests: int = 0
    by_verb: dict[str, int] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)


@dataclass
class QueueModel:
    fields: dict[str, Any]
    tasks: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> expected fields


class Client:
    """One panel user: its own queues and tasks, and what each must look like."""

    def __init__(self, api: Api, n: int, figures: Figures, calls: dict[str, int]) -> None:
        self.api = api
        self.n = n
        self.rng = random.Random(n)
        self.figures = figures
        self.queues: dict[int, QueueModel] = {}
        self.keys: dict[str, tuple[int, bytes, str]] = {}  # key -> queue, body, answer
        self.calls = calls  # call_uuid -> task_id, seeded before the run

    async def send(self, verb: str, method: str, path: str, **kw: Any) -> tuple[int, Any, str]:
        response: ClientResponse = await self.api.request(method, path, **kw)
        text = await response.text()
        self.figures.requests += 1
        self.figures.by_verb[verb] = self.figures.by_verb.get(verb, 0) + 1
        if response.status >= 500:
            self.figures.server_errors.append(f"{method} {path} {response.status}: {text}")
        body = json.loads(text) if text and response.content_type.endswith("json") else None
        return response.status, body, response.headers.get("Idempotent-Replayed", "")

    def expect(self, ok: bool, what: str) -> None:
        if not ok:
            self.figures.stale.append(f"client {self.n}: {what}")

    def shows(self, answer: dict[str, Any], expected: dict[str, Any]) -> bool:
        return all(answer.get(k) == v for k, v in expected.items())

    # --- the verbs ------------------------------------------------------------------

    async def post_queue(self) -> None:
        fields = {"name": f"c{self.n}-{self.rng.randrange(10**6)}", "comment": "new"}
        status, body, _ = await self.send(
            "POST queue", "POST", "/client/acme/task_scheduler/", json=fields
        )
        self.expect(status == 201 and self.shows(body, fields), f"POST queue {status} {body}")
        if status == 201:
            self.queues[body["id"]] = QueueModel({**fields, "status": "off"})

    async def put_queue(self, queue_id: int) -> None:
        change = {"comment": f"put {self.rng.randrange(10**6)}"}
        if self.rng.random() < 0.3:
            change["concurrent_task_limit"] = self.rng.randint(1, 50)
        status, body, _ = await self.send("PUT queue", "PUT", queue_path(queue_id), json=change)
        model = self.queues[queue_id]
        model.fields.update(change)
        self.expect(status == 200 and self.shows(body, model.fields), f"PUT queue {body}")

    async def get_queue(self, queue_id: int) -> None:
        status, body, _ = await self.send("GET queue", "GET", queue_path(queue_id))
        model = self.queues[queue_id]
        unfinished = sum(t["status"] != "finished" for t in model.tasks.values())
        expected = {**model.fields, "task_count": len(model.tasks), "sched_task_count": unfinished}
        self.expect(status == 200 and self.shows(body, expected), f"GET queue {body} {expected}")

    async def list_queues(self) -> None:
        status, body, _ = await self.send("GET queues", "GET", "/client/acme/task_scheduler/")
        listed = {q["id"]: q for q in body or []}
        for queue_id, model in self.queues.items():
            shown = listed.get(queue_id)
            self.expect(
                status == 200 and shown is not None and self.shows(shown, model.fields),
                f"queue {queue_id} listed as {shown}",
            )

    async def delete_queue(self, queue_id: int) -> None:
        model = self.queues[queue_id]
        status, _, _ = await self.send("DELETE queue", "DELETE", queue_path(queue_id))
        done = all(t["status"] == "finished" for t in model.tasks.values())
        self.expect(status == (204 if done else 409), f"DELETE queue {status}, done={done}")
        if status == 204:
            del self.queues[queue_id]

    async def post_tasks(self, queue_id: int) -> None:
        sent = [
            task(name=f"t{self.rng.randrange(10**6)}", try_count=self.rng.randint(1, 5))
            for _ in range(self.rng.choice((1, 1, 3, 20)))
        ]
        for one in sent:
            one["start_time_utc"] = FAR
        raw = json.dumps({"tasks": sent}).encode()
        headers = {"Content-Type": "application/json"}
        key = f"c{self.n}-{self.rng.randrange(10**9)}" if self.rng.random() < 0.5 else None
        if key is not None:
            headers["Idempotency-Key"] = key
        status, body, replayed = await self.send(
            "POST tasks", "POST", tasks_path(queue_id), data=raw, headers=headers
        )
        made = body["tasks"] if status == 201 else []
        self.expect(
            status == 201
            and not replayed
            and [t["name"] for t in made] == [t["name"] for t in sent]
            and all(t["status"] == "scheduled" and t["scheduler_id"] == queue_id for t in made),
            f"POST tasks {status} {str(body)[:200]}",
        )
        for answer in made:
            self.queues[queue_id].tasks[answer["id"]] = {
                "name": answer["name"],
                "try_count": answer["try_count"],
                "status": "scheduled",
            }
        if key is not None and status == 201:
            self.keys[key] = (queue_id, raw, json.dumps(body, sort_keys=True))

    async def repeat_key(self) -> None:
        """A panel retrying after a timeout: the first answer again, nothing new; the same
        key with another body is refused."""
        key = self.rng.choice(sorted(self.keys))
        queue_id, raw, answer = self.keys[key]
        if queue_id not in self.queues:
            return
        other = self.rng.random() < 0.2
        data = raw.replace(b'"name": "t', b'"name": "u', 1) if other else raw
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        status, body, replayed = await self.send(
            "POST tasks again", "POST", tasks_path(queue_id), data=data, headers=headers
        )
        if other:
            self.expect(status == 422, f"same key, other body answered {status}")
        else:
            self.expect(
                status == 201 and replayed == "true" and json.dumps(body, sort_keys=True) == answer,
                f"replay of {key} answered {status} {replayed!r}",
            )

    async def get_task(self, queue_id: int, task_id: int) -> None:
        status, body, _ = await self.send("GET task", "GET", f"{tasks_path(queue_id)}{task_id}")
        expected = self.queues[queue_id].tasks[task_id]
        self.expect(status == 200 and self.shows(body, expected), f"GET task {body} {expected}")

    async def list_tasks(self, queue_id: int) -> None:
        model = self.queues[queue_id].tasks
        by_status = self.rng.choice(("scheduled", "finished"))
        status, body, _ = await self.send(
            "GET tasks",
            "GET",
            tasks_path(queue_id),
            params={"status": by_status, "per_page": "1000"},
        )
        expected = sorted(i for i, t in model.items() if t["status"] == by_status)
        shown = sorted(t["id"] for t in body or [])
        self.expect(status == 200 and shown == expected, f"list {by_status}: {shown} {expected}")

    async def put_task(self, queue_id: int, task_id: int) -> None:
        expected = self.queues[queue_id].tasks[task_id]
        change = {"name": f"p{self.rng.randrange(10**6)}", "try_count": self.rng.randint(1, 9)}
        path = f"{tasks_path(queue_id)}{task_id}"
        status, body, _ = await self.send("PUT task", "PUT", path, json=change)
        if expected["status"] == "finished":
            self.expect(status == 409, f"PUT of a finished task answered {status}")
            return
        expected.update(change)
        self.expect(status == 200 and self.shows(body, expected), f"PUT task {body} {expected}")

    async def delete_task(self, queue_id: int, task_id: int) -> None:
        expected = self.queues[queue_id].tasks[task_id]
        path = f"{tasks_path(queue_id)}{task_id}"
        status, body, _ = await self.send("DELETE task", "DELETE", path)
        if expected["status"] == "finished":
            self.expect(status == 409, f"DELETE of a finished task answered {status}")
            return
        expected["status"] = "finished"
        self.expect(
            status == 200 and self.shows(body, {**expected, "finish_comment": "cancelled"}),
            f"DELETE task {body}",
        )

    async def task_attempts(self, queue_id: int, task_id: int) -> None:
        path = f"{tasks_path(queue_id)}{task_id}/attempts"
        status, body, _ = await self.send("GET attempts", "GET", path)
        self.expect(status == 200 and body == [], f"attempts of a task never called: {body}")

    async def call_history(self) -> None:
        call_uuid = self.rng.choice(sorted(self.calls))
        if self.rng.random() < 0.5:
            status, body, _ = await self.send(
                "GET call", "GET", f"/client/acme/call_history/{call_uuid}"
            )
            ok = status == 200 and body["task_id"] == self.calls[call_uuid]
        else:
            status, body, _ = await self.send(
                "GET calls",
                "GET",
                "/client/acme/call_history/",
                params={"task_id": str(self.calls[call_uuid])},
            )
            ok = status == 200 and [c["call_uuid"] for c in body] == [call_uuid]
        self.expect(ok, f"call history of {call_uuid}: {status} {body}")

    # --- the mix --------------------------------------------------------------------

    async def step(self) -> None:
        rng = self.rng
        if not self.queues or rng.random() < 0.04:
            await self.post_queue()
            return
        queue_id = rng.choice(sorted(self.queues))
        tasks = self.queues[queue_id].tasks
        roll = rng.random()
        if roll < 0.15 or not tasks:
            await self.post_tasks(queue_id)
        elif roll < 0.20 and self.keys:
            await self.repeat_key()
        elif roll < 0.25:
            await self.put_queue(queue_id)
        elif roll < 0.30:
            await self.get_queue(queue_id)
        elif roll < 0.33:
            await self.list_queues()
        elif roll < 0.34 and len(self.queues) > 1:
            await self.delete_queue(queue_id)
        elif roll < 0.45:
            await self.list_tasks(queue_id)
        elif roll < 0.55:
            await self.call_history()
        else:
            task_id = rng.choice(sorted(tasks))
            verb = rng.choice((self.get_task, self.put_task, self.put_task, self.delete_task))
            if rng.random() < 0.1:
                verb = self.task_attempts
            await verb(queue_id, task_id)

    async def run(self, until: float) -> None:
        while time.monotonic() < until:
            await self.step()


async def _seed_calls(api: Api) -> dict[str, int]:
    """Finished tasks with one call each, for the call history verbs."""
    history = await api.new_queue(name="history")
    rows = await api.add_tasks(history["id"], [task() for _ in range(CALLS)])
    calls = {}
    for row in rows:
        call_uuid = f"call-{row['id']}"
        await insert_call(api, row, call_uuid, EVENTS)
        await execute(
            api.services.db, "UPDATE tasks SET status = 'finished' WHERE id = ?", (row["id"],)
        )
        calls[call_uuid] = row["id"]
    return calls


@pytest.mark.timeout(120)
async def test_32_clients_for_10_seconds_see_their_own_writes_and_lose_nothing(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = await _seed_calls(api)
    figures = Figures()
    clients = [Client(api, n, figures, calls) for n in range(CLIENTS)]
    started = time.monotonic()

    await asyncio.gather(*(c.run(started + SECONDS) for c in clients))

    seconds = time.monotonic() - started
    with capsys.disabled():
        print(
            f"\nload test: {figures.requests} requests from {CLIENTS} clients in"
            f" {seconds:.1f} s ({figures.requests / seconds:.0f}/s);"
            f" 5xx: {len(figures.server_errors)}; stale answers: {len(figures.stale)}\n"
            f"  by verb: {dict(sorted(figures.by_verb.items()))}"
        )
    assert figures.server_errors == []
    assert figures.stale == []
    assert seconds >= SECONDS and len(figures.by_verb) == 14  # every verb was used

    # The store holds what the accepted requests made: nothing lost, nothing twice.
    queues = {q["id"]: q for q in await api.ok("GET", "/client/acme/task_scheduler/")}
    modelled = {qid: m for c in clients for qid, m in c.queues.items()}
    assert queues.keys() - modelled.keys() == {min(queues)}  # the seeded history queue
    for queue_id, model in modelled.items():
        assert {k: queues[queue_id][k] for k in model.fields} == model.fields
        rows = await api.services.db.fetch_all(
            "SELECT id, name, status, params ->> '$.try_count' AS try_count"
            " FROM tasks WHERE scheduler_id = ?",
            (queue_id,),
        )
        stored = {
            r["id"]: {
                "name": r["name"],
                "try_count": int(r["try_count"] or 1),  # text on PostgreSQL
                "status": r["status"],
            }
            for r in rows
        }
        assert stored == model.tasks, queue_id
