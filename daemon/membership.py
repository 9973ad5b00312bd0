"""This host among the hosts of the shared store: it joins when the daemon starts, then
heartbeats (stamped with the database's clock) and runs the recovery of gone hosts
every `cluster.heartbeat` seconds. Only with store.url; the decisions are in
daemon/cluster.py, the SQL in daemon/store/pg/cluster.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import timedelta

import psycopg
import structlog

from config import Settings
from daemon.clock import Clock
from daemon.cluster import Lease, longest_call_seconds
from daemon.store.db import StoreError
from daemon.store.pg import cluster
from daemon.store.pg.connection import connect
from daemon.store.pg.schema import migrations

log = structlog.get_logger("callbackd.cluster")
# How often a host looks for work the other hosts stored: the delay before a task added
# through another host's API may start here.
LOOK_S = 1.0


def longest_call(settings: Settings) -> int:
    """The longest a call of this host can last, over every profile; 0 = no limit."""
    calls = settings.calls
    lengths = [
        longest_call_seconds(calls.a_ring_timeout, calls.b_ring_timeout, calls.max_talk_time)
    ]
    for profile in settings.extensions.values():
        lengths.append(
            longest_call_seconds(
                profile.a_ring_timeout or calls.a_ring_timeout,
                profile.b_ring_timeout or calls.b_ring_timeout,
                calls.max_talk_time if profile.max_talk_time is None else profile.max_talk_time,
            )
        )
    return 0 if 0 in lengths else max(lengths)


def recovery_news(recovered: cluster.Recovered, waiting_before: int) -> tuple[int, str] | None:
    """The log level and line a recovery pass is worth, if any. Closings are news at
    every pass; attempts that wait are said when their number changes, not at every
    heartbeat of the minutes their calls may still be up."""
    if recovered.closed:
        return logging.WARNING, "recovered the work of gone hosts"
    if recovered.waiting != waiting_before:
        return logging.INFO, "attempts of gone hosts wait while their calls may be up"
    return None


class Membership:
    def __init__(
        self, settings: Settings, clock: Clock, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._url = settings.store.url.get_secret_value()
        self._host_id = settings.cluster.resolved_host_id()
        self._heartbeat = settings.cluster.heartbeat
        self._timeout = settings.cluster.host_timeout
        self._longest = longest_call(settings)
        self._clock = clock
        self._version = migrations()[-1][0]
        self._monotonic = monotonic
        self._lease: Lease | None = None

    @property
    def host_id(self) -> str:
        return self._host_id

    def may_act(self) -> bool:
        """Whether this host may act on its claims now (send an Originate or a webhook):
        its lease runs."""
        return self._lease is not None and self._lease.valid(self._monotonic())

    def join(self) -> None:
        """Register this host (StoreError when the store cannot be reached)."""
        sent = self._monotonic()
        with connect(self._url) as conn:
            alive = cluster.join(conn, self._host_id, self._version, self._longest, self._timeout)
        self._lease = Lease(sent, self._timeout)
        log.info("joined the shared store", host_id=self._host_id, other_hosts=alive)

    def beat(self) -> cluster.Recovered:
        """One heartbeat (which renews the lease, counted from when it was sent) and
        one recovery pass."""
        sent = self._monotonic()
        with connect(self._url) as conn:
            cluster.heartbeat(conn, self._host_id, self._version, self._longest)
            self._lease = Lease(sent, self._timeout)
            return cluster.recover(conn, self._timeout)

    async def run(self, wake: Callable[[], None] = lambda: None) -> None:
        """Heartbeat until cancelled; a database that cannot be reached is logged and
        tried again at the next beat (the store's writes say the rest). Between beats,
        `wake()` every LOOK_S: the scheduler and the outbox look for what the other
        hosts' APIs stored (tasks, webhooks), which no wake-up of this host announces."""
        next_beat = self._clock.now()
        waiting = 0
        while True:
            if self._clock.now() >= next_beat:
                next_beat = self._clock.now() + timedelta(seconds=self._heartbeat)
                try:
                    recovered = await asyncio.to_thread(self.beat)
                except (StoreError, psycopg.Error) as exc:
                    log.error("cluster heartbeat failed", error=str(exc).splitlines()[0])
                else:
                    news = recovery_news(recovered, waiting)
                    if news is not None:
                        log.log(news[0], news[1], **vars(recovered))
                    waiting = recovered.waiting
            wake()
            look = self._clock.now() + timedelta(seconds=min(LOOK_S, self._heartbeat))
            await self._clock.sleep_until(min(look, next_beat))
