"""The API served for real: aiohttp on 127.0.0.1 over a SQLite file in tmp_path."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from config import Settings
from daemon.clock import SystemClock
from daemon.services import Services, open_services
from daemon.store.pg.backend import PgDatabase
from tests.stored_events import INSERT_EVENT_BATCH, event_batch

TOKENS = {"acme-secret-token": "acme", "beta-secret-token": "beta", "admin-secret-token": "*"}
TOKEN_OF = {client: token for token, client in TOKENS.items()}
PROBLEM = "application/problem+json"


def auth(client: str | None) -> dict[str, str]:
    """The Authorization header of a client ('*' = the admin token, None = none)."""
    return {} if client is None else {"Authorization": f"Bearer {TOKEN_OF[client]}"}


def task(**fields: Any) -> dict[str, Any]:
    """A valid task body; keyword arguments replace or add fields."""
    return {"a_number": "+74951230001", "b_number": "101", **fields}


@dataclass
class Api:
    """A running API and the services behind it."""

    http: TestClient[Any, Any]
    services: Services

    async def request(
        self,
        method: str,
        path: str,
        *,
        client: str | None = "acme",
        json: Any = None,
        data: str | bytes | None = None,
        headers: dict[str, str] | None = None,
        params: Any = None,
    ) -> ClientResponse:
        all_headers = {**auth(client), **(headers or {})}
        return await self.http.request(
            method, path, json=json, data=data, headers=all_headers, params=params
        )

    async def ok(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        """The parsed JSON of a request that must answer `status`."""
        response = await self.request(method, path, **kw)
        text = await response.text()
        assert response.status == status, text
        return await response.json() if text else None

    async def new_queue(self, client: str = "acme", **fields: Any) -> dict[str, Any]:
        body = {"name": "sales", **fields}
        created: dict[str, Any] = await self.ok(
            "POST", f"/client/{client}/task_scheduler/", 201, client=client, json=body
        )
        return created

    async def add_tasks(
        self, queue_id: int, tasks: list[dict[str, Any]], client: str = "acme"
    ) -> list[dict[str, Any]]:
        body = await self.ok(
            "POST", tasks_path(queue_id, client), 201, client=client, json={"tasks": tasks}
        )
        created: list[dict[str, Any]] = body["tasks"]
        return created


def queue_path(queue_id: int, client: str = "acme") -> str:
    return f"/client/{client}/task_scheduler/{queue_id}"


def tasks_path(queue_id: int, client: str = "acme") -> str:
    return f"/client/{client}/task_scheduler/{queue_id}/tasks/"


async def assert_problem(response: ClientResponse, status: int) -> dict[str, Any]:
    """An RFC 9457 answer with that status, and never a traceback."""
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == PROBLEM
    assert "Traceback" not in text
    body: dict[str, Any] = await response.json(content_type=PROBLEM)
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    return body


def settings_for(tmp_path: Path, **sections: Any) -> Settings:
    base: dict[str, Any] = {
        "api": {"tokens": TOKENS},
        "store": {"path": tmp_path / "callbackd.db"},
        "extensions": {101: {"caller_id_number": "4951234567"}},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return Settings(**base)


ApiFactory = Callable[..., Awaitable[Api]]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # A module with BOTH_STORES = True runs each of its API tests on the SQLite store and
    # again on the shared PostgreSQL store (tools/testpg).
    if "api_factory" in metafunc.fixturenames and getattr(metafunc.module, "BOTH_STORES", False):
        metafunc.parametrize("store_kind", ["sqlite", "postgres"])


@pytest.fixture
def store_kind() -> str:
    return "sqlite"


async def _services(request: pytest.FixtureRequest, kind: str, settings: Settings) -> Services:
    if kind == "sqlite":
        return await open_services(settings)
    db: Any = await PgDatabase.open(request.getfixturevalue("pg_url"))
    return Services.over(settings, db, SystemClock())


@pytest.fixture
async def api_factory(
    request: pytest.FixtureRequest, tmp_path: Path, store_kind: str
) -> AsyncIterator[ApiFactory]:
    """Start an API with extra settings, e.g. `await api_factory(api={"max_body_bytes": 2048})`."""
    started: list[tuple[TestClient[Any, Any], Services]] = []

    async def start(**sections: Any) -> Api:
        services = await _services(request, store_kind, settings_for(tmp_path, **sections))
        http: TestClient[Any, Any] = TestClient(TestServer(create_app(services), host="127.0.0.1"))
        await http.start_server()
        started.append((http, services))
        return Api(http, services)

    yield start
    for http, services in reversed(started):
        await http.close()
        await services.db.close()


@pytest.fixture
async def api(api_factory: ApiFactory) -> Api:
    return await api_factory()


@pytest.fixture
async def queue(api: Api) -> dict[str, Any]:
    """A queue of client acme."""
    return await api.new_queue()


async def insert_call(
    api: Api,
    task_row: dict[str, Any],
    call_uuid: str,
    events: list[dict[str, str]],
    attempt_no: int = 1,
    received: list[str] | None = None,
) -> None:
    """Write an ended attempt and its AMI events as the call engine would, received at
    the times `received` (default: all at the attempt's start)."""
    times = received or ["2024-03-01 10:00:00"] * len(events)
    plan = {
        "a_numbers": [task_row["a_number"]],
        "b_number": task_row["b_number"],
        "a_caller_id_number": "4951234567",
        "a_caller_id_name": "Sales",
        "b_caller_id_number": task_row["a_number"],
    }

    def write(tx: sqlite3.Connection) -> None:
        tx.execute(
            "INSERT INTO attempts (call_uuid, task_id, attempt_no, scheduler_id, state, plan,"
            " start_time, a_answer_time, bridged_time, end_time, answered_a_number,"
            " a_dial_status, b_dial_status, a_hangup_cause, b_hangup_cause, result,"
            " result_comment)"
            " VALUES (?, ?, ?, ?, 'ended', ?, '2024-03-01 10:00:00', '2024-03-01 10:00:07',"
            " '2024-03-01 10:00:12', '2024-03-01 10:01:12', ?, 'ANSWER', 'ANSWER', 16, 16,"
            " 'success', 'A and B talked')",
            (
                call_uuid,
                task_row["id"],
                attempt_no,
                task_row["scheduler_id"],
                json.dumps(plan),
                task_row["a_number"],
            ),
        )
        tx.execute(
            INSERT_EVENT_BATCH,
            event_batch(call_uuid, len(events), list(zip(times, events, strict=True))),
        )
        tx.execute("UPDATE tasks SET cdr = ? WHERE id = ?", (call_uuid, task_row["id"]))

    await api.services.db.write(write)
