"""/metrics of a real app over a real store: every family is exposed, and the gauges
read from state say what the store holds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from config import Settings
from daemon.metrics import Metrics
from daemon.services import Services, open_services
from tests.store_sql import execute

FAMILIES = {
    "callbackd_tasks": "gauge",
    "callbackd_attempts": "counter",
    "callbackd_calls_in_progress": "gauge",
    "callbackd_ami_connected": "gauge",
    "callbackd_ami_reconnects": "counter",
    "callbackd_ami_events_received": "counter",
    "callbackd_webhook_deliveries": "counter",
    "callbackd_webhook_failures": "counter",
    "callbackd_webhooks_given_up": "counter",
    "callbackd_webhooks_pending": "gauge",
    "callbackd_dispatch_latency_seconds": "histogram",
    "callbackd_config_reloads": "counter",
    "callbackd_log_lines_dropped": "counter",
}


class Running:
    def __init__(self, http: TestClient[Any, Any], services: Services, metrics: Metrics) -> None:
        self.http = http
        self.services = services
        self.metrics = metrics

    async def scrape(self) -> dict[str, Any]:
        response = await self.http.get("/metrics")
        assert response.status == 200
        assert response.content_type == "text/plain"
        return {f.name: f for f in text_string_to_metric_families(await response.text())}


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    services = await open_services(Settings(store={"path": tmp_path / "callbackd.db"}))
    metrics = Metrics()
    http: TestClient[Any, Any] = TestClient(
        TestServer(create_app(services, metrics), host="127.0.0.1")
    )
    await http.start_server()
    yield Running(http, services, metrics)
    await http.close()
    await services.db.close()


def sample(family: Any, **labels: str) -> float:
    for s in family.samples:
        if s.name.endswith("_created"):
            continue
        if all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    raise AssertionError(f"no sample {labels} in {family.name}")


async def test_every_family_is_in_the_text_output(running: Running) -> None:
    families = await running.scrape()
    assert {name: families[name].type for name in FAMILIES if name in families} == FAMILIES


async def test_state_gauges_are_read_from_the_store(running: Running) -> None:
    db = running.services.db
    await execute(
        db,
        "INSERT INTO queues (id, client_id, name, create_date)"
        " VALUES (1, 'acme', 'q', '2024-03-01 10:00:00')",
    )
    for task_id, status in [(1, "scheduled"), (2, "scheduled"), (3, "executed")]:
        await execute(
            db,
            "INSERT INTO tasks (id, scheduler_id, params, status, create_date)"
            " VALUES (?, 1, '{}', ?, '2024-03-01 10:00:00')",
            (task_id, status),
        )
    await execute(
        db,
        "INSERT INTO attempts (call_uuid, task_id, attempt_no, scheduler_id, state, plan,"
        " start_time) VALUES ('u1', 3, 1, 1, 'in_call', '{}', '2024-03-01 10:00:00')",
    )
    await execute(
        db,
        "INSERT INTO outbox (task_id, event, url, body, created, next_try)"
        " VALUES (1, 'before', 'http://panel/', '{}', '2024-03-01 10:00:00',"
        " '2024-03-01 10:00:00')",
    )
    families = await running.scrape()
    assert sample(families["callbackd_tasks"], status="scheduled") == 2
    assert sample(families["callbackd_tasks"], status="executed") == 1
    assert sample(families["callbackd_tasks"], status="finished") == 0
    assert sample(families["callbackd_calls_in_progress"]) == 1
    assert sample(families["callbackd_webhooks_pending"]) == 1
    assert sample(families["callbackd_ami_connected"]) == 0


async def test_counters_fed_by_the_daemon_show_up(running: Running) -> None:
    m = running.metrics
    m.attempts.labels(outcome="success").inc()
    m.attempts.labels(outcome="a_busy").inc(2)
    m.ami_reconnects.inc()
    m.ami_events.inc(5)
    m.webhook_deliveries.inc()
    m.webhook_failures.inc(3)
    m.dispatch_latency.observe(0.02)
    families = await running.scrape()
    assert sample(families["callbackd_attempts"], outcome="a_busy") == 2
    assert sample(families["callbackd_ami_events_received"]) == 5
    assert sample(families["callbackd_webhook_failures"]) == 3
    latency = families["callbackd_dispatch_latency_seconds"]
    count = next(s for s in latency.samples if s.name.endswith("_count"))
    assert count.value == 1
