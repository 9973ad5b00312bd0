"""Claims and gone hosts on a real PostgreSQL, several hosts at once (each its own
connections): a queue's limit holds across hosts claiming together, each due task is
claimed by one host, a gone host's calls are closed only when none of them can still be
up, and what it writes after that changes and sends nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import cast

import pytest

from config import Settings
from daemon.clock import FakeClock
from daemon.cluster import CALL_END_SLACK
from daemon.models import CallPlan
from daemon.scheduler import Scheduler
from daemon.store.attempts import AttemptRepository, Claim, TaskRecord
from daemon.store.console_reads import ConsoleReads
from daemon.store.db import Database
from daemon.store.pg import cluster
from daemon.store.pg.backend import PgDatabase
from daemon.store.pg.connection import connect
from daemon.store.pg.schema import migrate
from daemon.store.webhooks import OutboxRepository

pytestmark = pytest.mark.pg

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
TIMEOUT = 30.0
LONGEST = 660  # a 30 s + 30 s ring and a 600 s talk limit
PLAN = CallPlan(a_numbers=["1001"], b_number="1002")


@pytest.fixture
def store(pg_url: str) -> Iterator[str]:
    with connect(pg_url) as conn:
        migrate(conn)
    yield pg_url


def add_queue(
    url: str, queue_id: int, limit: int, tasks: int, try_count: int = 1, **fields: object
) -> list[int]:
    params = json.dumps({"a_number": "1001", "b_number": "1002", "try_count": try_count, **fields})
    with connect(url) as conn:
        conn.execute(
            "INSERT INTO queues (id, client_id, name, status, concurrent_task_limit, create_date)"
            " VALUES (%s, 'acme', 'q', 'on', %s, '')",
            (queue_id, limit),
        )
        conn.execute(
            "INSERT INTO tasks (id, scheduler_id, params, status, next_attempt, create_date)"
            " SELECT %s * 100000 + i, %s, %s, 'scheduled', '2026-03-01 11:00:00', ''"
            " FROM generate_series(1, %s) i",
            (queue_id, queue_id, params, tasks),
        )
    return [queue_id * 100000 + i for i in range(1, tasks + 1)]


async def host(url: str, host_id: str) -> PgDatabase:
    db = await PgDatabase.open(url, host_id)
    with connect(url) as conn:
        cluster.heartbeat(conn, host_id, 6, LONGEST)
    return db


async def claim(db: PgDatabase, queue_id: int, task_ids: list[int]) -> set[str]:
    """The daemon's own claim of these tasks' first attempts."""
    claims = [Claim(task_id, queue_id, str(uuid.uuid4()), 1, PLAN) for task_id in task_ids]
    return await AttemptRepository(cast(Database, db)).claim(claims, NOW)


def silence(url: str, host_id: str, seconds: float) -> None:
    """Make `host_id` look silent for `seconds` by the database's clock."""
    with connect(url) as conn:
        conn.execute(
            "UPDATE hosts SET last_heartbeat = now() - make_interval(secs => %s)"
            " WHERE host_id = %s",
            (seconds, host_id),
        )


def value(url: str, sql: str) -> object:
    with connect(url) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return next(iter(row.values()))


def recover(url: str) -> cluster.Recovered:
    with connect(url) as conn:
        return cluster.recover(conn, TIMEOUT)


async def test_a_queue_limit_holds_across_hosts_claiming_at_once(store: str) -> None:
    task_ids = add_queue(store, 1, limit=3, tasks=40)
    hosts = [await host(store, f"pbx-{n}") for n in range(4)]

    claimed = await asyncio.gather(*(claim(db, 1, task_ids) for db in hosts))

    assert sum(len(c) for c in claimed) == 3
    assert value(store, "SELECT count(*) FROM tasks WHERE status = 'executed'") == 3
    for db in hosts:
        await db.close()


async def test_every_due_task_is_claimed_by_exactly_one_host(store: str) -> None:
    task_ids = add_queue(store, 1, limit=1000, tasks=60)
    hosts = [await host(store, f"pbx-{n}") for n in range(2)]

    claimed = await asyncio.gather(*(claim(db, 1, task_ids) for db in hosts))

    assert sum(len(c) for c in claimed) == 60
    assert value(store, "SELECT count(DISTINCT task_id) FROM attempts") == 60
    assert value(store, "SELECT count(*) FROM attempts WHERE host_id = ''") == 0
    for db in hosts:
        await db.close()


async def test_a_gone_hosts_call_is_closed_only_once_it_cannot_be_up(store: str) -> None:
    [task_id] = add_queue(store, 1, limit=10, tasks=1, try_count=2)
    gone = await host(store, "pbx-1")
    [call_uuid] = await claim(gone, 1, [task_id])

    silence(store, "pbx-1", TIMEOUT + 1)
    early = recover(store)
    silence(store, "pbx-1", TIMEOUT + LONGEST + CALL_END_SLACK.total_seconds() + 1)
    late = recover(store)

    assert early == cluster.Recovered(waiting=1)
    assert late == cluster.Recovered(closed=1)
    assert value(store, "SELECT result FROM attempts") == "interrupted"
    # the normal pause applies: a retry, not an immediate second call
    assert value(store, "SELECT status FROM tasks") == "delayed"
    # the gone host, resumed, tells of a bridge: nothing changes, nothing is sent
    await AttemptRepository(cast(Database, gone)).mark_bridged(call_uuid, task_id, NOW)
    assert value(store, "SELECT bridged_time FROM attempts") is None
    assert value(store, "SELECT count(*) FROM outbox WHERE event = 'success'") == 0
    await gone.close()


async def test_without_a_talk_limit_only_the_operators_release_closes_the_call(
    store: str,
) -> None:
    [task_id] = add_queue(store, 1, limit=10, tasks=1, url_after="http://127.0.0.1:9/after")
    gone = await host(store, "pbx-1")
    with connect(store) as conn:
        cluster.heartbeat(conn, "pbx-1", 6, 0)  # no max_talk_time
    await claim(gone, 1, [task_id])
    silence(store, "pbx-1", 10**6)

    waiting = recover(store)
    with connect(store) as conn:
        released = cluster.release(conn, "pbx-1", TIMEOUT)
    closed = recover(store)

    assert waiting == cluster.Recovered(waiting=1)
    assert released
    assert closed == cluster.Recovered(closed=1)
    assert value(store, "SELECT finish_comment FROM tasks") == "interrupted"
    # finished: its `after` webhook is queued, as when an attempt ends on its own host
    assert value(store, "SELECT event FROM outbox WHERE event != 'before'") == "after"
    await gone.close()


async def test_a_live_host_cannot_be_released_and_its_calls_stay(store: str) -> None:
    [task_id] = add_queue(store, 1, limit=10, tasks=1)
    alive = await host(store, "pbx-1")
    await claim(alive, 1, [task_id])

    with connect(store) as conn:
        released = cluster.release(conn, "pbx-1", TIMEOUT)
        (status,) = cluster.hosts(conn)
    recovered = recover(store)

    assert not released
    assert recovered == cluster.Recovered()
    assert (status.host_id, status.calls) == ("pbx-1", 1)
    assert status.silent_for < TIMEOUT
    await alive.close()


async def test_each_host_sends_its_own_tasks_webhooks_and_a_gone_hosts_go_to_another(
    store: str,
) -> None:
    url = "http://127.0.0.1:9/before"
    first_tasks = add_queue(store, 1, limit=10, tasks=2, url_before=url)
    second_tasks = add_queue(store, 2, limit=10, tasks=2, url_before=url)
    first, second = await host(store, "pbx-1"), await host(store, "pbx-2")
    await claim(first, 1, first_tasks)
    await claim(second, 2, second_tasks)

    async def sends(db: PgDatabase) -> list[int]:
        rows = await OutboxRepository(cast(Database, db)).heads([], 10)
        return sorted(row["task_id"] for row in rows)

    before = (await sends(first), await sends(second))
    silence(store, "pbx-1", TIMEOUT + 1)
    after = (await sends(first), await sends(second))

    assert before == (first_tasks, second_tasks)
    # a host taken for gone sends none: the live one sends them all
    assert after == ([], sorted(first_tasks + second_tasks))
    await first.close()
    await second.close()


class ClaimingDialer:
    """The call engine's part in a dispatch, without Asterisk: claims what the
    scheduler places, as the engine does before its Originates, and tells the
    scheduler of each attempt started."""

    may_start = True

    def __init__(self, db: PgDatabase) -> None:
        self._attempts = AttemptRepository(cast(Database, db))
        self.scheduler: Scheduler | None = None
        self.asked: list[int] = []

    async def place_many(self, records: Sequence[TaskRecord]) -> dict[int, str]:
        self.asked += [record.id for record in records]
        claims = {
            record.id: Claim(record.id, record.scheduler_id, str(uuid.uuid4()), 1, PLAN)
            for record in records
        }
        held = await self._attempts.claim(list(claims.values()), NOW)
        assert self.scheduler is not None
        for record in records:
            if claims[record.id].call_uuid in held:
                self.scheduler.attempt_started(record)
        return {task_id: c.call_uuid for task_id, c in claims.items() if c.call_uuid in held}


def statuses(url: str) -> list[str]:
    with connect(url) as conn:
        return [row["status"] for row in conn.execute("SELECT status FROM tasks ORDER BY id")]


async def test_a_task_held_back_by_another_hosts_calls_shows_delayed_concurrent_task(
    store: str,
) -> None:
    task_ids = add_queue(store, 1, limit=2, tasks=5)
    other = await host(store, "pbx-2")
    await claim(other, 1, task_ids[:1])
    here = await host(store, "pbx-1")
    clock = FakeClock(NOW)
    dialer = ClaimingDialer(here)
    settings = Settings(calls={"a_channel": "Local/{number}@phones"})
    scheduler = Scheduler(cast(Database, here), dialer, clock, lambda: settings)
    dialer.scheduler = scheduler

    await scheduler.dispatch_due()
    first = (dialer.asked, statuses(store))
    # pbx-2 is gone and its call closed: the queue's slot is seen free within a second
    silence(store, "pbx-2", TIMEOUT + LONGEST + CALL_END_SLACK.total_seconds() + 1)
    assert recover(store) == cluster.Recovered(closed=1)
    dialer.asked = []
    await clock.advance(1)
    await scheduler.dispatch_due()
    second = (dialer.asked, statuses(store))

    # one slot of two was left: one task is placed, the rest are held back by the limit
    held = ["delayed_concurrent_task"] * 3
    assert first == ([task_ids[1]], ["executed", "executed", *held])
    assert second == ([task_ids[2]], ["finished", "executed", "executed", *held[:2]])
    await other.close()
    await here.close()


async def test_why_a_task_waits_counts_the_pbx_and_profile_limits_per_host(store: str) -> None:
    task_ids = add_queue(store, 1, limit=5, tasks=3, extension_id=101)
    here, other = await host(store, "pbx-1"), await host(store, "pbx-2")
    await claim(other, 1, task_ids[:2])

    # (in the queue, on the host's PBX, in profile 101 on the host's PBX)
    assert await ConsoleReads(cast(Database, here)).running(1, 101) == (2, 0, 0)
    assert await ConsoleReads(cast(Database, other)).running(1, 101) == (2, 2, 2)
    await here.close()
    await other.close()
