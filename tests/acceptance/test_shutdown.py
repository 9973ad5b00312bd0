"""SIGTERM with a webhook receiver that never answers: the daemon stops within the
configured `shutdown_grace`, and the webhook it could not deliver stays for the next
start."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp

from daemon.store.db import Database
from daemon.store.queries import q
from tests.acceptance.conftest import free_port, launch, write_config
from tests.store_sql import execute
from tests.webhook_receiver import WebhookReceiver

GRACE = 1.5
NOW = "2026-01-01 00:00:00"


async def test_a_stop_takes_no_longer_than_the_configured_grace(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    receiver = await WebhookReceiver().start()
    receiver.hold()  # takes the request and never answers it
    db = await Database.open(tmp_path / "callbackd.db")
    params = {"task_id": 1, "event": "after", "url": receiver.url(), "body": "{}", "now": NOW}
    await execute(db, q("insert_webhook"), params)
    await db.close()
    port = free_port()
    # The webhook timeout alone would let the try hang for a minute.
    config = write_config(
        tmp_path, port, top=f"shutdown_grace = {GRACE}", extra="[webhooks]\ntimeout = 60\n"
    )
    daemon = await launch(config, port, session)
    try:
        await receiver.wait_arrivals(1)

        asked = time.monotonic()
        assert await daemon.stop() == 0
        took = time.monotonic() - asked
    finally:
        receiver.release()
        await receiver.stop()

    # The grace, plus the process's own start and stop around it; 10 s before the key.
    assert took < GRACE + 3, took
    db = await Database.open(tmp_path / "callbackd.db")
    try:
        pending = await db.fetch_value("SELECT count(*) FROM outbox WHERE delivered_at IS NULL")
    finally:
        await db.close()
    assert pending == 1
