"""Prometheus metrics, one registry per running daemon (so tests never share counters)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from daemon.models import TaskStatus

if TYPE_CHECKING:
    from daemon.services import Services


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.tasks = Gauge("callbackd_tasks", "Tasks by status", ["status"], registry=r)
        self.attempts = Counter(
            "callbackd_attempts", "Finished attempts by outcome", ["outcome"], registry=r
        )
        self.calls_in_progress = Gauge(
            "callbackd_calls_in_progress", "Attempts with a call on the PBX", registry=r
        )
        self.ami_connected = Gauge("callbackd_ami_connected", "1 while logged in", registry=r)
        self.ami_reconnects = Gauge(
            "callbackd_ami_reconnects", "AMI reconnections since start", registry=r
        )
        self.ami_events = Gauge(
            "callbackd_ami_events_received", "AMI events received since start", registry=r
        )
        self.webhooks = Counter(
            "callbackd_webhook_deliveries",
            "Webhook delivery tries by result",
            ["result"],
            registry=r,
        )
        self.dispatch_latency = Histogram(
            "callbackd_dispatch_latency_seconds",
            "From a task's due time to its Originate being sent",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )

    async def render(self, services: Services) -> tuple[bytes, str]:
        """Refresh the gauges that are read from state, then expose everything."""
        rows = await services.db.fetch_all(
            "SELECT status, coalesce(sum(n), 0) AS n FROM task_counts GROUP BY status"
        )
        counts = {row["status"]: row["n"] for row in rows}
        for status in TaskStatus:
            self.tasks.labels(status=str(status)).set(counts.get(str(status), 0))
        self.ami_connected.set(1 if services.ami.logged_in else 0)
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
