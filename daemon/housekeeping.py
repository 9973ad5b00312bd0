"""Keeps the store from growing without bound: once an hour, Idempotency-Key answers
older than `api.idempotency_hours` and webhooks delivered or given up more than
`webhooks.keep_days` ago are deleted, in short write transactions so that no call or
API write waits long behind them. Tasks, attempts and call history are never touched.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from config import Settings
from daemon.clock import Clock
from daemon.models import format_time
from daemon.store.db import Database, StoreUnavailable
from daemon.store.queries import q

log = structlog.get_logger("callbackd.housekeeping")

SWEEP_INTERVAL = timedelta(hours=1)
# Rows deleted per transaction: a few milliseconds of write lock each.
BATCH = 2000


@dataclass(frozen=True)
class Swept:
    idempotency_keys: int
    webhooks: int


async def sweep(db: Database, clock: Clock, settings: Settings) -> Swept:
    now = clock.now()
    keys_before = now - timedelta(hours=settings.api.idempotency_hours)
    webhooks_before = now - timedelta(days=settings.webhooks.keep_days)
    keys = await _in_batches(db, q("delete_expired_idempotency"), keys_before)
    webhooks = await _in_batches(db, q("delete_old_webhooks"), webhooks_before)
    return Swept(keys, webhooks)


async def _in_batches(db: Database, delete_sql: str, before: datetime) -> int:
    """Run a `DELETE ... LIMIT :n` until it deletes fewer than BATCH rows."""
    params = {"before": format_time(before), "n": BATCH}

    def delete(conn: sqlite3.Connection) -> int:
        return conn.execute(delete_sql, params).rowcount

    deleted = 0
    while True:
        batch = await db.write(delete)
        deleted += batch
        if batch < BATCH:
            return deleted


async def run(db: Database, clock: Clock, settings: Callable[[], Settings]) -> None:
    """Sweep at start, then every SWEEP_INTERVAL; a store refusing writes is tried at
    the next sweep."""
    while True:
        try:
            swept = await sweep(db, clock, settings())
        except (StoreUnavailable, sqlite3.Error) as exc:
            # Never worth stopping the daemon for: the next sweep tries again.
            log.warning("housekeeping skipped: the store refused it", error=str(exc))
        else:
            if swept.idempotency_keys or swept.webhooks:
                log.info(
                    "old rows deleted",
                    idempotency_keys=swept.idempotency_keys,
                    webhooks=swept.webhooks,
                )
        await clock.sleep_until(clock.now() + SWEEP_INTERVAL)
