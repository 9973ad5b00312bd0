"""Prometheus metrics, one registry per running daemon (so tests never share counters).

Gauges that describe state (tasks by status, calls in progress, pending webhooks, the
AMI login) are read from the store and the AMI status when /metrics is scraped, so they
cannot drift. Counters and the latency histogram count things as they happen: the call
engine, the AMI client and the webhook outbox increment them (`app[METRICS]` in their
cleanup context).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, Metric

from daemon.logsetup import dropped_log_lines
from daemon.models import TaskStatus

if TYPE_CHECKING:
    from daemon.services import Services

_TASK_COUNTS = "SELECT status, coalesce(sum(n), 0) AS n FROM task_counts GROUP BY status"
_CALLS_IN_PROGRESS = "SELECT count(*) FROM attempts WHERE state != 'ended'"
_WEBHOOKS_PENDING = "SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND given_up = 0"


class _DroppedLogLines:
    """The log writer's count, read when scraped: it belongs to the process's logging,
    not to one daemon's registry."""

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "callbackd_log_lines_dropped",
            "Log lines lost because stdout/stderr was blocked or closed",
            value=dropped_log_lines(),
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        r.register(_DroppedLogLines())
        self.tasks = Gauge("callbackd_tasks", "Tasks by status", ["status"], registry=r)
        self.attempts = Counter(
            "callbackd_attempts",
            "Finished attempts by outcome (success, a_busy, b_no_answer, ...)",
            ["outcome"],
            registry=r,
        )
        self.calls_in_progress = Gauge(
            "callbackd_calls_in_progress", "Attempts with a call on the PBX", registry=r
        )
        self.ami_connected = Gauge(
            "callbackd_ami_connected", "1 while logged in to AMI, else 0", registry=r
        )
        self.ami_reconnects = Counter(
            "callbackd_ami_reconnects", "AMI logins after a lost connection", registry=r
        )
        self.ami_events = Counter(
            "callbackd_ami_events_received", "AMI events received", registry=r
        )
        self.webhook_deliveries = Counter(
            "callbackd_webhook_deliveries", "Webhooks delivered (2xx)", registry=r
        )
        self.webhook_failures = Counter(
            "callbackd_webhook_failures",
            "Webhook tries that failed (non-2xx, timeout, refused)",
            registry=r,
        )
        self.webhooks_given_up = Counter(
            "callbackd_webhooks_given_up", "Webhooks dropped after their last try", registry=r
        )
        self.webhooks_pending = Gauge(
            "callbackd_webhooks_pending", "Webhooks waiting in the outbox", registry=r
        )
        self.dispatch_latency = Histogram(
            "callbackd_dispatch_latency_seconds",
            "From a task's due time to its Originate being sent",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.asr_guard_trips = Counter(
            "callbackd_asr_guard_trips",
            "Times an extension profile's answer-rate guard tripped (its tasks held)",
            ["profile"],
            registry=r,
        )
        self.asr_guard_clears = Counter(
            "callbackd_asr_guard_clears",
            "Times an extension profile's answer-rate guard cleared",
            ["profile"],
            registry=r,
        )
        self.asr_guard_tripped = Gauge(
            "callbackd_asr_guard_tripped",
            "1 while the profile's answer-rate guard holds its tasks, else 0",
            ["profile"],
            registry=r,
        )
        self.config_reloads = Counter(
            "callbackd_config_reloads",
            "Config reloads (SIGHUP) by result",
            ["result"],
            registry=r,
        )
        for result in ("ok", "failed"):
            self.config_reloads.labels(result=result)

    async def render(self, services: Services) -> tuple[bytes, str]:
        """Refresh the gauges that are read from state, then expose everything."""
        counts = {row["status"]: row["n"] for row in await services.db.fetch_all(_TASK_COUNTS)}
        for status in TaskStatus:
            self.tasks.labels(status=str(status)).set(counts.get(str(status), 0))
        self.calls_in_progress.set(await services.db.fetch_value(_CALLS_IN_PROGRESS))
        self.webhooks_pending.set(await services.db.fetch_value(_WEBHOOKS_PENDING))
        self.ami_connected.set(1 if services.ami_status.logged_in else 0)
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
