"""Webhook delivery for real: the outbox over a SQLite file, receivers on 127.0.0.1.

Time is a FakeClock: a retry happens when the test advances the clock past its backoff.
Tests wait on the receiver's requests and on `WebhookOutbox.settled()`, never on sleeps.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from config.settings import WebhookSettings
from daemon.clock import FakeClock
from daemon.metrics import Metrics
from daemon.models import format_time
from daemon.outbox import WebhookOutbox, no_jitter
from daemon.store.db import Database, StoreError
from tests.store_faults import refuse_writes
from tests.store_sql import execute
from tests.webhook_receiver import WebhookReceiver, free_port, verify_signature

START = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(b"integration-test-key-32-bytes!!!").decode()
DENIED = "address denied by webhooks.deny_networks"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "callbackd.db")
    yield database
    await database.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


ReceiverFactory = Callable[..., Awaitable[WebhookReceiver]]


@pytest.fixture
async def receivers() -> AsyncIterator[ReceiverFactory]:
    """`await receivers(500, 200)` starts a receiver answering those statuses first."""
    started: list[WebhookReceiver] = []

    async def start(*statuses: int) -> WebhookReceiver:
        receiver = await WebhookReceiver(statuses).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        await receiver.stop()


@pytest.fixture
async def receiver(receivers: ReceiverFactory) -> WebhookReceiver:
    return await receivers()


def settings(**values: Any) -> Callable[[], WebhookSettings]:
    chosen = WebhookSettings(**values)
    return lambda: chosen


def make_outbox(
    db: Database, clock: FakeClock, metrics: Metrics | None = None, **kw: Any
) -> WebhookOutbox:
    config = kw.pop("config", settings())
    return WebhookOutbox(db, clock, config, metrics, jitter=no_jitter, **kw)


async def add_webhook(
    db: Database,
    task_id: int,
    url: str,
    event: str = "before",
    created: datetime = START,
    next_try: datetime | None = None,
) -> int:
    """An outbox row as the store writes it with a task change."""
    body = json.dumps({"event": event, "task": {"id": task_id}, "attempt": None})
    [row] = await execute(
        db,
        "INSERT INTO outbox (task_id, event, url, body, created, next_try)"
        " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        (task_id, event, url, body, format_time(created), format_time(next_try or created)),
    )
    return int(row[0])


async def outbox_row(db: Database, outbox_id: int) -> dict[str, Any]:
    row = await db.fetch_one("SELECT * FROM outbox WHERE id = ?", (outbox_id,))
    assert row is not None
    return dict(row)


@asynccontextmanager
async def running(outbox: WebhookOutbox) -> AsyncIterator[WebhookOutbox]:
    """The outbox's run loop in the background; a crash of it fails the test."""
    task = asyncio.create_task(outbox.run())
    try:
        yield outbox
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def settle(outbox: WebhookOutbox) -> None:
    await asyncio.wait_for(outbox.settled(), 5)


def count(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value(f"callbackd_{name}_total") or 0.0


# --- delivery -------------------------------------------------------------------------


async def test_a_webhook_is_posted_signed_and_marked_delivered(
    db: Database, clock: FakeClock, metrics: Metrics, receiver: WebhookReceiver
) -> None:
    row_id = await add_webhook(db, 1, receiver.url("/tasks/1"), event="success")
    outbox = make_outbox(db, clock, metrics, config=settings(secret=SECRET))
    async with running(outbox):
        [request] = await receiver.wait_requests(1)
        await settle(outbox)

    stored = await outbox_row(db, row_id)
    assert request.path == "/tasks/1"
    assert request.headers["content-type"] == "application/json"
    assert request.webhook_id.startswith(f"msg_{row_id}_")
    assert request.timestamp == str(int(START.timestamp()))
    assert verify_signature(SECRET, request)
    assert request.body.decode() == stored["body"]
    assert request.json()["event"] == "success"
    assert stored["delivered_at"] == format_time(START)
    assert stored["tries"] == 1
    assert stored["given_up"] == 0
    assert count(metrics, "webhook_deliveries") == 1


@pytest.mark.parametrize("status", [201, 202, 204, 299])
async def test_every_2xx_is_delivered(
    db: Database, clock: FakeClock, receivers: ReceiverFactory, status: int
) -> None:
    receiver = await receivers(status)
    row_id = await add_webhook(db, 1, receiver.url())
    outbox = make_outbox(db, clock)
    async with running(outbox):
        await receiver.wait_requests(1)
        await settle(outbox)
    assert (await outbox_row(db, row_id))["delivered_at"] == format_time(START)


async def test_without_a_secret_webhooks_go_unsigned(
    db: Database, clock: FakeClock, receiver: WebhookReceiver
) -> None:
    await add_webhook(db, 1, receiver.url())
    async with running(make_outbox(db, clock)):
        [request] = await receiver.wait_requests(1)
    assert "webhook-signature" not in request.headers
    assert request.webhook_id.startswith("msg_")


@pytest.mark.parametrize("status", [301, 302, 307, 400, 404, 500, 503])
async def test_anything_but_a_2xx_is_a_failed_try_and_redirects_are_not_followed(
    db: Database, clock: FakeClock, metrics: Metrics, receivers: ReceiverFactory, status: int
) -> None:
    receiver = await receivers(status)
    row_id = await add_webhook(db, 1, receiver.url())
    outbox = make_outbox(db, clock, metrics)
    async with running(outbox):
        await receiver.wait_requests(1)
        await settle(outbox)
    stored = await outbox_row(db, row_id)
    assert stored["delivered_at"] is None
    assert stored["tries"] == 1
    assert stored["last_error"] == f"HTTP {status}"
    assert stored["next_try"] == "2024-03-01 10:00:05"
    assert count(metrics, "webhook_failures") == 1
    assert len(receiver.requests) == 1


async def test_a_failed_webhook_is_retried_after_its_backoff_with_the_same_id(
    db: Database, clock: FakeClock, metrics: Metrics, receivers: ReceiverFactory
) -> None:
    receiver = await receivers(500, 502)
    row_id = await add_webhook(db, 1, receiver.url())
    outbox = make_outbox(db, clock, metrics, config=settings(secret=SECRET))
    async with running(outbox):
        await receiver.wait_requests(1)
        await settle(outbox)
        await clock.advance(4)
        await settle(outbox)
        assert len(receiver.requests) == 1  # not due before 5 s
        await clock.advance(1)
        await receiver.wait_requests(2)
        await settle(outbox)
        assert (await outbox_row(db, row_id))["next_try"] == "2024-03-01 10:00:35"  # +30 s
        await clock.advance(30)
        requests = await receiver.wait_requests(3)
        await settle(outbox)

    assert [r.status for r in requests] == [500, 502, 200]
    assert len({r.webhook_id for r in requests}) == 1
    assert [int(r.timestamp) - int(START.timestamp()) for r in requests] == [0, 5, 35]
    assert all(verify_signature(SECRET, r) for r in requests)
    stored = await outbox_row(db, row_id)
    assert stored["delivered_at"] == "2024-03-01 10:00:35"
    assert stored["tries"] == 3
    assert count(metrics, "webhook_failures") == 2
    assert count(metrics, "webhook_deliveries") == 1


async def test_after_max_attempts_a_webhook_is_given_up_once_and_the_task_moves_on(
    db: Database, clock: FakeClock, metrics: Metrics, receivers: ReceiverFactory
) -> None:
    receiver = await receivers(500, 500, 500)
    first = await add_webhook(db, 7, receiver.url(), event="before")
    second = await add_webhook(db, 7, receiver.url(), event="after")
    outbox = make_outbox(db, clock, metrics, config=settings(secret=SECRET, max_attempts=3))
    with capture_logs() as logs:
        async with running(outbox):
            await receiver.wait_requests(1)
            await settle(outbox)
            await clock.advance(5)
            await receiver.wait_requests(2)
            await settle(outbox)
            await clock.advance(30)
            requests = await receiver.wait_requests(4)
            await settle(outbox)

    assert [r.json()["event"] for r in requests] == ["before"] * 3 + ["after"]
    given_up = await outbox_row(db, first)
    assert (given_up["given_up"], given_up["tries"], given_up["delivered_at"]) == (1, 3, None)
    assert given_up["last_error"] == "HTTP 500"
    assert (await outbox_row(db, second))["delivered_at"] == "2024-03-01 10:00:35"
    assert count(metrics, "webhooks_given_up") == 1
    assert count(metrics, "webhook_failures") == 3
    assert count(metrics, "webhook_deliveries") == 1

    ours = [entry for entry in logs if entry["event"].startswith("webhook")]
    assert [e["event"] for e in ours].count("webhook given up") == 1
    assert len(ours) == 4
    assert all(e["task_id"] == 7 and e["webhook_id"].startswith("msg_") for e in ours)
    assert SECRET not in repr(logs)
    assert SECRET.removeprefix("whsec_") not in repr(logs)


async def test_a_task_webhooks_are_delivered_in_order_even_when_the_first_is_retried(
    db: Database, clock: FakeClock, receivers: ReceiverFactory
) -> None:
    flaky = await receivers(503)
    other = await receivers()
    rows = [
        await add_webhook(db, 1, flaky.url(), event="before"),
        await add_webhook(db, 1, flaky.url(), event="before_again"),
        await add_webhook(db, 1, flaky.url(), event="after"),
        await add_webhook(db, 2, other.url(), event="before"),
    ]
    outbox = make_outbox(db, clock)
    async with running(outbox):
        await other.wait_requests(1)
        await flaky.wait_requests(1)
        await settle(outbox)
        # Task 1 waits for its first webhook; task 2 did not wait for task 1.
        assert [r.json()["event"] for r in flaky.requests] == ["before"]
        assert (await outbox_row(db, rows[1]))["tries"] == 0
        await clock.advance(5)
        await flaky.wait_requests(4)
        await settle(outbox)

    assert [r.json()["event"] for r in flaky.requests] == [
        "before",
        "before",
        "before_again",
        "after",
    ]
    for row_id in rows:
        assert (await outbox_row(db, row_id))["delivered_at"] is not None


async def test_a_slow_receiver_does_not_hold_back_other_tasks(
    db: Database, clock: FakeClock, receivers: ReceiverFactory
) -> None:
    slow = await receivers()
    fast = await receivers()
    slow.hold()  # answers nothing until released: a 30 s receiver
    stuck = await add_webhook(db, 1, slow.url())
    behind = await add_webhook(db, 1, slow.url(), event="after")
    others = [await add_webhook(db, task_id, fast.url()) for task_id in range(2, 22)]
    outbox = make_outbox(db, clock, config=settings(timeout=30))
    async with running(outbox):
        await slow.wait_arrivals(1)
        await fast.wait_requests(len(others))
        # Every other task's webhook got its answer while task 1's first one hangs.
        assert slow.requests == []
        assert slow.arrivals == 1
        slow.release()
        await slow.wait_requests(2)
        await settle(outbox)

    assert [r.json()["event"] for r in slow.requests] == ["before", "after"]
    for row_id in [stuck, behind, *others]:
        assert (await outbox_row(db, row_id))["delivered_at"] is not None


async def test_a_dead_receiver_delays_only_its_own_task(
    db: Database, clock: FakeClock, receiver: WebhookReceiver
) -> None:
    dead_url = f"http://127.0.0.1:{free_port()}/hook"
    first = await add_webhook(db, 1, dead_url)
    behind = await add_webhook(db, 1, dead_url, event="after")
    other = await add_webhook(db, 2, receiver.url())
    outbox = make_outbox(db, clock)
    async with running(outbox):
        await receiver.wait_requests(1)
        await settle(outbox)
    failed = await outbox_row(db, first)
    assert failed["tries"] == 1
    assert failed["given_up"] == 0
    assert "connect" in failed["last_error"].lower()
    assert len(failed["last_error"]) <= 200
    assert (await outbox_row(db, behind))["tries"] == 0
    assert (await outbox_row(db, other))["delivered_at"] is not None


async def test_a_receiver_that_does_not_answer_in_time_is_a_failed_try(
    db: Database, clock: FakeClock, receiver: WebhookReceiver
) -> None:
    receiver.hold()
    row_id = await add_webhook(db, 1, receiver.url())
    outbox = make_outbox(db, clock, config=settings(timeout=0.2))
    async with running(outbox):
        await receiver.wait_arrivals(1)
        await settle(outbox)
    stored = await outbox_row(db, row_id)
    assert stored["tries"] == 1
    assert stored["last_error"] == "no answer within 0.2 s"
    assert stored["next_try"] == "2024-03-01 10:00:05"


async def test_no_more_than_the_concurrency_limit_is_in_flight(
    db: Database, clock: FakeClock, receiver: WebhookReceiver
) -> None:
    receiver.hold()
    rows = [await add_webhook(db, task_id, receiver.url()) for task_id in range(1, 6)]
    outbox = make_outbox(db, clock, concurrency=2)
    async with running(outbox):
        await receiver.wait_arrivals(2)
        # Both slots are taken: a delivered row frees one before the next goes out.
        assert receiver.arrivals == 2
        assert await db.fetch_value("SELECT count(*) FROM outbox WHERE tries > 0") == 0
        receiver.release()
        await receiver.wait_requests(len(rows))
        await settle(outbox)
    assert await db.fetch_value("SELECT count(*) FROM outbox WHERE delivered_at IS NULL") == 0


async def test_wake_sends_a_new_webhook_without_waiting_for_a_later_one(
    db: Database, clock: FakeClock, receiver: WebhookReceiver
) -> None:
    later = await add_webhook(
        db, 1, receiver.url(), next_try=datetime(2024, 3, 1, 11, 0, tzinfo=UTC)
    )
    outbox = make_outbox(db, clock)
    async with running(outbox):
        await settle(outbox)  # asleep until 11:00
        new = await add_webhook(db, 2, receiver.url(), event="success")
        outbox.wake()
        [request] = await receiver.wait_requests(1)
        await settle(outbox)
        assert request.json()["event"] == "success"
        assert (await outbox_row(db, new))["delivered_at"] == format_time(START)
        assert (await outbox_row(db, later))["tries"] == 0
        await clock.advance(3600)
        await receiver.wait_requests(2)


# --- restarts and shutdown ------------------------------------------------------------


async def test_a_new_outbox_over_the_same_file_delivers_the_rest_without_duplicates(
    tmp_path: Path, clock: FakeClock, receivers: ReceiverFactory
) -> None:
    up = await receivers()
    down = await receivers()
    await down.stop()  # refused until it comes back
    path = tmp_path / "callbackd.db"

    first_db = await Database.open(path)
    delivered = [await add_webhook(first_db, task_id, up.url()) for task_id in (1, 2)]
    waiting = [
        await add_webhook(first_db, 3, down.url(), event="before"),
        await add_webhook(first_db, 3, down.url(), event="after"),
    ]
    first = make_outbox(first_db, clock)
    async with running(first):
        await up.wait_requests(2)
        await settle(first)
    await first_db.close()

    await down.start()
    second_db = await Database.open(path)
    second = make_outbox(second_db, clock)
    await clock.advance(5)
    async with running(second):
        await down.wait_requests(2)
        await settle(second)
    for row_id in delivered + waiting:
        assert (await outbox_row(second_db, row_id))["delivered_at"] is not None
    await second_db.close()

    assert [r.json()["event"] for r in down.requests] == ["before", "after"]
    assert set(up.ids().values()) == {1}
    assert set(down.ids().values()) == {1}
    assert len(up.requests) == 2


async def test_a_webhook_cut_off_by_a_stop_is_sent_again_with_the_same_id(
    tmp_path: Path, clock: FakeClock, receiver: WebhookReceiver
) -> None:
    path = tmp_path / "callbackd.db"
    db = await Database.open(path)
    row_id = await add_webhook(db, 1, receiver.url())
    receiver.hold()
    async with running(make_outbox(db, clock)):
        await receiver.wait_arrivals(1)
    await db.close()
    receiver.release()

    db = await Database.open(path)
    outbox = make_outbox(db, clock)
    async with running(outbox):
        await receiver.wait_arrivals(2)
        await settle(outbox)
    assert (await outbox_row(db, row_id))["delivered_at"] is not None
    await db.close()
    ids = {r.webhook_id for r in receiver.requests}
    assert len(ids) == 1  # receivers de-duplicate by webhook-id


async def test_drain_delivers_what_is_due_and_leaves_what_is_not(
    db: Database, clock: FakeClock, receiver: WebhookReceiver
) -> None:
    rows = [
        await add_webhook(db, 1, receiver.url(), event="before"),
        await add_webhook(db, 1, receiver.url(), event="after"),
        await add_webhook(db, 2, receiver.url()),
    ]
    later = await add_webhook(
        db, 3, receiver.url(), next_try=datetime(2024, 3, 1, 11, 0, tzinfo=UTC)
    )
    await make_outbox(db, clock).drain(5)
    for row_id in rows:
        assert (await outbox_row(db, row_id))["delivered_at"] is not None
    assert (await outbox_row(db, later))["tries"] == 0
    assert len(receiver.requests) == 3


async def test_drain_is_bounded_by_its_timeout(
    db: Database, clock: FakeClock, receiver: WebhookReceiver
) -> None:
    receiver.hold()
    row_id = await add_webhook(db, 1, receiver.url())
    outbox = make_outbox(db, clock, config=settings(timeout=30))
    await asyncio.wait_for(outbox.drain(0.2), 5)
    stored = await outbox_row(db, row_id)
    assert (stored["delivered_at"], stored["tries"]) == (None, 0)  # sent again next start


async def test_drain_at_shutdown_waits_for_the_delivery_the_run_loop_started(
    db: Database, clock: FakeClock, receiver: WebhookReceiver
) -> None:
    receiver.hold()
    first = await add_webhook(db, 1, receiver.url(), event="before")
    second = await add_webhook(db, 1, receiver.url(), event="after")
    outbox = make_outbox(db, clock)
    async with running(outbox):
        await receiver.wait_arrivals(1)
        drain = asyncio.create_task(outbox.drain(5))
        receiver.release()
        await asyncio.wait_for(drain, 5)
        for row_id in (first, second):
            assert (await outbox_row(db, row_id))["delivered_at"] is not None
    assert len(receiver.requests) == 2


async def test_a_drain_goes_on_when_a_delivery_ends_while_it_looks_for_the_next(
    db: Database, clock: FakeClock, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The drain looks for due webhooks while the run loop's delivery of the first ends:
    # what it read left out the first's task as busy, and by the time it looks at what
    # is in flight, nothing is. It must look again, not stop with the second unsent.
    receiver.hold()
    first = await add_webhook(db, 1, receiver.url(), event="before")
    second = await add_webhook(db, 1, receiver.url(), event="after")
    outbox = make_outbox(db, clock)
    real_heads = outbox._rows.heads

    async def heads_while_the_first_ends(busy: list[int], n: int) -> list[Any]:
        monkeypatch.setattr(outbox._rows, "heads", real_heads)  # this look only
        rows = await real_heads(busy, n)
        with outbox._listening() as delivered:
            receiver.release()
            await delivered.wait()
        return rows

    async with running(outbox):
        await receiver.wait_arrivals(1)
        monkeypatch.setattr(outbox._rows, "heads", heads_while_the_first_ends)
        await asyncio.wait_for(outbox.drain(5), 5)
        for row_id in (first, second):
            assert (await outbox_row(db, row_id))["delivered_at"] is not None
    assert len(receiver.requests) == 2


async def test_a_delivery_that_cannot_be_recorded_stops_the_run_loudly(
    tmp_path: Path, clock: FakeClock, receiver: WebhookReceiver
) -> None:
    db = await Database.open(tmp_path / "callbackd.db")
    await add_webhook(db, 1, receiver.url())
    receiver.hold()
    outbox = make_outbox(db, clock)
    run = asyncio.create_task(outbox.run())
    await receiver.wait_arrivals(1)
    await db.close()  # the store goes away under the delivery
    receiver.release()
    with pytest.raises(StoreError, match="the store is closed"):
        await asyncio.wait_for(run, 5)


async def test_a_result_the_store_refuses_waits_in_flight_and_is_recorded_later(
    db: Database,
    clock: FakeClock,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = await add_webhook(db, 1, receiver.url(), event="before")
    second = await add_webhook(db, 1, receiver.url(), event="after")
    refusals = refuse_writes(db, monkeypatch, times=3)
    outbox = make_outbox(db, clock)
    with capture_logs() as logs:
        async with running(outbox):
            await receiver.wait_arrivals(1)
            await advance_until(clock, lambda: len(receiver.requests) == 2)
            await settle(outbox)

    assert refusals == [True, True, True]
    assert [r.json()["event"] for r in receiver.requests] == ["before", "after"]
    assert receiver.requests[0].webhook_id != receiver.requests[1].webhook_id
    for row_id in (first, second):
        row = await outbox_row(db, row_id)
        assert row["delivered_at"] is not None and row["tries"] == 1
    waits = [e["retry_in"] for e in logs if e["event"] == "store refused a write; trying again"]
    assert waits == [1.0, 2.0, 4.0]


async def test_a_held_tasks_webhooks_wait_until_released(
    db: Database, clock: FakeClock, receiver: WebhookReceiver
) -> None:
    # The engine holds a task while its Originate is on the way to Asterisk.
    held = {1}
    waiting = await add_webhook(db, 1, receiver.url(), event="before")
    free = await add_webhook(db, 2, receiver.url(), event="before")
    outbox = make_outbox(db, clock, held=held)
    async with running(outbox):
        await receiver.wait_arrivals(1)
        await settle(outbox)
        assert [r.json()["task"]["id"] for r in receiver.requests] == [2]
        assert (await outbox_row(db, waiting))["delivered_at"] is None

        held.clear()
        outbox.wake()
        await receiver.wait_arrivals(2)
        await settle(outbox)

    assert [r.json()["task"]["id"] for r in receiver.requests] == [2, 1]
    for row_id in (waiting, free):
        assert (await outbox_row(db, row_id))["delivered_at"] is not None


async def advance_until(clock: FakeClock, done: Callable[[], bool]) -> None:
    """Move the clock a second at a time until `done()`; at most 10 minutes of it."""
    for _ in range(600):
        if done():
            return
        await clock.advance(1)
        await asyncio.sleep(0.005)
    raise AssertionError("not done after 600 s of clock time")


# --- denied networks ------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_denied_address_is_given_up_without_sending(
    db: Database, clock: FakeClock, metrics: Metrics, receiver: WebhookReceiver, host: str
) -> None:
    url = receiver.url().replace("127.0.0.1", host)
    row_id = await add_webhook(db, 1, url)
    behind = await add_webhook(db, 1, receiver.url(), event="after")
    config = settings(deny_networks=["127.0.0.0/8", "::1/128"])
    outbox = make_outbox(db, clock, metrics, config=config)
    with capture_logs() as logs:
        async with running(outbox):
            await settle(outbox)

    stored = await outbox_row(db, row_id)
    assert (stored["given_up"], stored["tries"], stored["last_error"]) == (1, 1, DENIED)
    assert (await outbox_row(db, behind))["given_up"] == 1
    assert receiver.arrivals == 0
    assert count(metrics, "webhooks_given_up") == 2
    denied = [e for e in logs if e["event"] == "webhook denied"]
    assert [e["task_id"] for e in denied] == [1, 1]


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://[fe80::1]:8080/hook",
    ],
)
async def test_link_local_is_denied_by_default_without_any_traffic(
    db: Database, clock: FakeClock, url: str
) -> None:
    started: list[str] = []

    async def on_request_start(*_: Any) -> None:
        started.append("request")

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    row_id = await add_webhook(db, 1, url)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        outbox = make_outbox(db, clock, session=session)
        async with running(outbox):
            await settle(outbox)
    stored = await outbox_row(db, row_id)
    assert (stored["given_up"], stored["last_error"]) == (1, DENIED)
    assert started == []


async def test_a_bad_secret_fails_the_try_without_showing_the_secret(
    db: Database, clock: FakeClock, receiver: WebhookReceiver
) -> None:
    # The config refuses such a secret at start and at reload; the outbox must not
    # trip over one all the same.
    row_id = await add_webhook(db, 1, receiver.url())
    unchecked = WebhookSettings.model_construct(secret=SecretStr("whsec_Sekr3"))
    outbox = make_outbox(db, clock, config=lambda: unchecked)
    with capture_logs() as logs:
        async with running(outbox):
            await settle(outbox)
    stored = await outbox_row(db, row_id)
    assert stored["tries"] == 1
    assert "webhooks.secret" in stored["last_error"]
    assert "Sekr3" not in stored["last_error"]
    assert "Sekr3" not in repr(logs)
    assert receiver.arrivals == 0


async def test_a_host_whose_lease_is_over_sends_nothing_until_it_is_renewed(
    db: Database, clock: FakeClock, receiver: WebhookReceiver
) -> None:
    # A host of the shared store frozen past its lease: the live hosts may be sending
    # its webhooks, so it leaves them pending, records nothing, and sends once renewed.
    asked: list[bool] = []
    lease_runs = False

    def may_send() -> bool:
        asked.append(lease_runs)
        return lease_runs

    row_id = await add_webhook(db, 1, receiver.url())
    outbox = make_outbox(db, clock, may_send=may_send)
    async with running(outbox):
        # The outbox has looked again (every LEASE_RECHECK) and declined each time.
        await advance_until(clock, lambda: len(asked) >= 3)
        assert receiver.arrivals == 0
        row = await outbox_row(db, row_id)
        assert (row["delivered_at"], row["tries"]) == (None, 0)

        lease_runs = True
        await advance_until(clock, lambda: receiver.arrivals == 1)
        await settle(outbox)

    assert receiver.arrivals == 1
    assert (await outbox_row(db, row_id))["tries"] == 1
