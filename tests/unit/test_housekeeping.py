"""The store does not grow without bound: Idempotency-Key answers are forgotten after
`api.idempotency_hours`, and delivered or given-up webhooks are deleted after
`webhooks.keep_days`; pending webhooks, tasks and call history stay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from config import Settings
from daemon import housekeeping
from daemon.clock import FakeClock
from daemon.models import QueueInput, TaskInput, format_time
from daemon.store.db import Database
from daemon.store.queues import QueueRepository
from daemon.store.tasks import IdempotentRequest, TaskRepository
from tests.store_sql import execute

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SETTINGS = Settings(api={"idempotency_hours": 24}, webhooks={"keep_days": 7})


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "callbackd.db")
    yield database
    await database.close()


async def _add_with_key(db: Database, queue_id: int, now: datetime) -> tuple[bool, int]:
    """POST one task with the same key and body at `now`: (replayed, tasks stored)."""
    since = format_time(now - timedelta(hours=SETTINGS.api.idempotency_hours))
    stored = await TaskRepository(db).add(
        "acme",
        queue_id,
        [TaskInput(a_number="1", b_number="2")],
        format_time(now),
        render=lambda created: str(len(created)),
        idempotent=IdempotentRequest(key="order-4711", request_hash="same", since=since),
    )
    return stored.replayed, int(await db.fetch_value("SELECT count(*) FROM tasks"))


async def test_a_key_is_remembered_for_its_hours_and_then_is_new_again(db: Database) -> None:
    queue = await QueueRepository(db).create("acme", QueueInput(name="q"), format_time(T0))

    assert await _add_with_key(db, queue.id, T0) == (False, 1)
    assert await _add_with_key(db, queue.id, T0 + timedelta(hours=23)) == (True, 1)
    assert await _add_with_key(db, queue.id, T0 + timedelta(hours=25)) == (False, 2)
    assert await _add_with_key(db, queue.id, T0 + timedelta(hours=26)) == (True, 2)


async def _webhook(
    db: Database, created: datetime, state: str, finished: datetime | None = None
) -> None:
    """A webhook created at `created`, delivered or given up at `finished` (default:
    at once), or pending."""
    last_try = format_time(finished or created)
    delivered = last_try if state == "delivered" else None
    given_up = 1 if state == "given_up" else 0
    await execute(
        db,
        "INSERT INTO outbox (task_id, event, url, body, created, next_try, delivered_at,"
        " given_up) VALUES (1, 'after', 'http://127.0.0.1/', '{}', ?, ?, ?, ?)",
        (format_time(created), last_try, delivered, given_up),
    )


async def test_a_sweep_deletes_old_answers_and_old_finished_webhooks_only(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(housekeeping, "BATCH", 3)  # several transactions
    queue = await QueueRepository(db).create("acme", QueueInput(name="q"), format_time(T0))
    await _add_with_key(db, queue.id, T0)
    old = T0 - timedelta(days=8)
    for _ in range(5):
        await _webhook(db, old, "delivered")
    await _webhook(db, old, "given_up")
    await _webhook(db, old, "pending")  # still to deliver: never deleted
    await _webhook(db, old, "given_up", finished=T0 - timedelta(days=2))  # aged by its end
    await _webhook(db, T0 - timedelta(days=1), "delivered")  # within keep_days

    swept = await housekeeping.sweep(db, FakeClock(T0 + timedelta(hours=25)), SETTINGS)

    assert swept == housekeeping.Swept(idempotency_keys=1, webhooks=6)
    left = await db.fetch_all("SELECT created, given_up, delivered_at IS NULL AS p FROM outbox")
    assert [(r["created"], r["given_up"], r["p"]) for r in left] == [
        (format_time(old), 0, 1),
        (format_time(old), 1, 1),
        (format_time(T0 - timedelta(days=1)), 0, 0),
    ]
    assert await db.fetch_value("SELECT count(*) FROM idempotency_keys") == 0
    assert await db.fetch_value("SELECT count(*) FROM tasks") == 1


async def test_a_sweep_of_a_store_with_nothing_old_deletes_nothing(db: Database) -> None:
    await _webhook(db, T0, "delivered")

    swept = await housekeeping.sweep(db, FakeClock(T0), SETTINGS)

    assert swept == housekeeping.Swept(idempotency_keys=0, webhooks=0)
    assert await db.fetch_value("SELECT count(*) FROM outbox") == 1
