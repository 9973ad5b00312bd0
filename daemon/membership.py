"""This host among the hosts of the shared store: it joins when the daemon starts, then
heartbeats (stamped with the database's clock) and runs the recovery of gone hosts
every `cluster.heartbeat` seconds. Only with store.url; the decisions are in
daemon/cluster.py, the SQL in daemon/store/pg/cluster.py.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import psycopg
import structlog

from config import Settings
from daemon.clock import Clock
from daemon.cluster import longest_call_seconds
from daemon.store.db import StoreError
from daemon.store.pg import cluster
from daemon.store.pg.connection import connect
from daemon.store.pg.schema import migrations

log = structlog.get_logger("callbackd.cluster")


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


class Membership:
    def __init__(self, settings: Settings, clock: Clock) -> None:
        self._url = settings.store.url.get_secret_value()
        self._host_id = settings.cluster.resolved_host_id()
        self._heartbeat = settings.cluster.heartbeat
        self._timeout = settings.cluster.host_timeout
        self._longest = longest_call(settings)
        self._clock = clock
        self._version = migrations()[-1][0]

    @property
    def host_id(self) -> str:
        return self._host_id

    def join(self) -> None:
        """StoreError when another host is alive on this store."""
        with connect(self._url) as conn:
            alive = cluster.join(conn, self._host_id, self._version, self._longest, self._timeout)
        if alive:
            raise StoreError(
                f"cluster: {', '.join(alive)} already runs on this store; this version runs"
                " one host per store at a time (this one may start once that host has been"
                " silent for cluster.host_timeout)"
            )

    def beat(self) -> cluster.Recovered:
        """One heartbeat and one recovery pass."""
        with connect(self._url) as conn:
            cluster.heartbeat(conn, self._host_id, self._version, self._longest)
            return cluster.recover(conn, self._timeout)

    async def run(self) -> None:
        """Heartbeat until cancelled; a database that cannot be reached is logged and
        tried again at the next beat (the store's writes say the rest)."""
        while True:
            try:
                recovered = await asyncio.to_thread(self.beat)
            except (StoreError, psycopg.Error) as exc:
                log.error("cluster heartbeat failed", error=str(exc).splitlines()[0])
            else:
                if recovered != cluster.Recovered():
                    log.warning("recovered the work of gone hosts", **vars(recovered))
            await self._clock.sleep_until(self._clock.now() + timedelta(seconds=self._heartbeat))
