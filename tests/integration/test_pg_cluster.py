"""Claims, fences and gone hosts on a real PostgreSQL, several hosts at once (each a
connection of its own on a thread): a queue's limit holds across hosts, each due task
is claimed by one host, a stale claim dials and changes nothing, and a gone host's
calls are closed only when none of them can still be up."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from psycopg.rows import DictRow

from ami.outcome import COMMENTS, Outcome, Result
from daemon.cluster import CALL_END_SLACK
from daemon.models import CallPlan
from daemon.store.pg import cluster
from daemon.store.pg.connection import connect
from daemon.store.pg.schema import migrate

pytestmark = pytest.mark.pg

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
TIMEOUT = 30.0
LONGEST = 660  # a 30 s + 30 s ring and a 600 s talk limit


@pytest.fixture
def store(pg_url: str) -> Iterator[str]:
    with connect(pg_url) as conn:
        migrate(conn)
    yield pg_url


def add_queue(
    url: str, queue_id: int, limit: int, tasks: int, try_count: int = 1, **fields: str
) -> None:
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


def new_attempt(row: DictRow) -> cluster.NewAttempt:
    plan = CallPlan(a_numbers=["1001"], b_number="1002")
    return cluster.NewAttempt(str(uuid.uuid4()), plan.model_dump_json())


def claim(url: str, host: str, room: int) -> list[cluster.Claim]:
    with connect(url) as conn:
        return cluster.claim_due(conn, host, NOW, room, new_attempt)


def silence(url: str, host: str, seconds: float) -> None:
    """Make `host` look silent for `seconds` by the database's clock."""
    with connect(url) as conn:
        conn.execute(
            "UPDATE hosts SET last_heartbeat = now() - make_interval(secs => %s)"
            " WHERE host_id = %s",
            (seconds, host),
        )


def value(url: str, sql: str) -> object:
    with connect(url) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return next(iter(row.values()))


def test_a_queue_limit_holds_across_hosts_claiming_at_once(store: str) -> None:
    add_queue(store, 1, limit=3, tasks=40)
    start = threading.Barrier(4)

    def host(n: int) -> list[cluster.Claim]:
        start.wait()
        return [c for _ in range(5) for c in claim(store, f"pbx-{n}", room=2)]

    with ThreadPoolExecutor(4) as pool:
        claims = [c for got in pool.map(host, range(4)) for c in got]

    assert len(claims) == 3
    assert value(store, "SELECT count(*) FROM tasks WHERE status = 'executed'") == 3


def test_every_due_task_is_claimed_by_exactly_one_host(store: str) -> None:
    add_queue(store, 1, limit=1000, tasks=60)
    add_queue(store, 2, limit=1000, tasks=60)

    def host(n: int) -> list[cluster.Claim]:
        got: list[cluster.Claim] = []
        while batch := claim(store, f"pbx-{n}", room=7):
            got.extend(batch)
        return got

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(host, range(2))

    task_ids = [c.task_id for c in first + second]
    assert len(task_ids) == len(set(task_ids)) == 120
    assert first and second
    assert value(store, "SELECT count(DISTINCT host_id) FROM attempts") == 2


def _end(url: str, c: cluster.Claim) -> object:
    outcome = Outcome(Result.SUCCESS, COMMENTS[Result.SUCCESS], end_time=NOW)
    with connect(url) as conn:
        return cluster.end_attempt(conn, c, outcome, NOW)


def test_a_claim_taken_back_dials_nothing_and_changes_nothing(store: str) -> None:
    add_queue(store, 1, limit=10, tasks=1)
    with connect(store) as conn:
        cluster.heartbeat(conn, "pbx-1", 6, LONGEST)
    (stale,) = claim(store, "pbx-1", room=1)
    silence(store, "pbx-1", TIMEOUT + 1)  # frozen before it sent the Originate

    with connect(store) as conn:
        recovered = cluster.recover(conn, TIMEOUT)
    (fresh,) = claim(store, "pbx-2", room=1)

    assert recovered == cluster.Recovered(given_back=1)
    assert fresh.task_id == stale.task_id and fresh.fence > stale.fence
    with connect(store) as conn:
        assert not cluster.dial(conn, stale)
        assert cluster.dial(conn, fresh)
    assert _end(store, stale) is None
    assert value(store, "SELECT status FROM tasks") == "executed"
    assert value(store, "SELECT attempts_made FROM tasks") == 1
    assert _end(store, fresh) is not None
    assert value(store, "SELECT finish_result FROM tasks") == "success"


def _in_call(url: str, host: str, longest: int) -> cluster.Claim:
    with connect(url) as conn:
        cluster.heartbeat(conn, host, 6, longest)
    (c,) = claim(url, host, room=1)
    with connect(url) as conn:
        assert cluster.dial(conn, c)
    return c


def test_a_gone_hosts_call_is_closed_only_once_it_cannot_be_up(store: str) -> None:
    add_queue(store, 1, limit=10, tasks=1, try_count=2)
    _in_call(store, "pbx-1", LONGEST)

    silence(store, "pbx-1", TIMEOUT + 1)
    with connect(store) as conn:
        early = cluster.recover(conn, TIMEOUT)
    silence(store, "pbx-1", TIMEOUT + LONGEST + CALL_END_SLACK.total_seconds() + 1)
    with connect(store) as conn:
        late = cluster.recover(conn, TIMEOUT)

    assert early == cluster.Recovered(waiting=1)
    assert late == cluster.Recovered(closed=1)
    assert value(store, "SELECT result FROM attempts") == "interrupted"
    # the normal pause applies: a retry, not an immediate second call
    assert value(store, "SELECT status FROM tasks") == "delayed"
    assert value(store, "SELECT claimed_by FROM tasks") is None


def test_without_a_talk_limit_only_the_operators_release_closes_the_call(store: str) -> None:
    add_queue(store, 1, limit=10, tasks=1, url_after="http://127.0.0.1:9/after")
    _in_call(store, "pbx-1", longest=0)
    silence(store, "pbx-1", 10**6)

    with connect(store) as conn:
        waiting = cluster.recover(conn, TIMEOUT)
        released = cluster.release(conn, "pbx-1", TIMEOUT)
        closed = cluster.recover(conn, TIMEOUT)

    assert waiting == cluster.Recovered(waiting=1)
    assert released
    assert closed == cluster.Recovered(closed=1)
    assert value(store, "SELECT finish_comment FROM tasks") == "interrupted"
    # finished: its `after` webhook is queued, as when an attempt ends on its own host
    assert value(store, "SELECT event FROM outbox") == "after"


def test_a_live_host_cannot_be_released_and_its_calls_stay(store: str) -> None:
    add_queue(store, 1, limit=10, tasks=1)
    _in_call(store, "pbx-1", LONGEST)

    with connect(store) as conn:
        released = cluster.release(conn, "pbx-1", TIMEOUT)
        recovered = cluster.recover(conn, TIMEOUT)
        (status,) = cluster.hosts(conn)

    assert not released
    assert recovered == cluster.Recovered()
    assert (status.host_id, status.calls, status.claimed) == ("pbx-1", 1, 1)
    assert status.silent_for < TIMEOUT


def add_webhooks(url: str, per_task: dict[int, int]) -> None:
    with connect(url) as conn:
        for task_id, count in per_task.items():
            for n in range(count):
                conn.execute(
                    "INSERT INTO outbox (task_id, event, url, body, created, next_try)"
                    " VALUES (%s, %s, 'http://127.0.0.1:9/h', '{}', '', '2026-03-01 11:00:00')",
                    (task_id, f"event-{n}"),
                )


def test_each_webhook_is_sent_once_and_in_order_by_whichever_host(store: str) -> None:
    add_webhooks(store, {task: 3 for task in range(1, 21)})
    sent: list[tuple[str, int, str]] = []
    lock = threading.Lock()

    def host(n: int) -> None:
        with connect(store) as conn:
            while True:
                claims = cluster.claim_webhooks(conn, f"pbx-{n}", NOW, 4)
                if not claims and not value(
                    store, "SELECT count(*) FROM outbox WHERE delivered_at IS NULL"
                ):
                    return
                for c in claims:
                    with lock:
                        sent.append((f"pbx-{n}", c.task_id, c.event))
                    assert cluster.webhook_sent(conn, c, NOW, delivered=True)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(host, range(2)))

    per_task: dict[int, list[str]] = {}
    for _, task_id, event in sent:
        per_task.setdefault(task_id, []).append(event)
    assert len(sent) == 60
    assert all(events == ["event-0", "event-1", "event-2"] for events in per_task.values())
    assert {h for h, _, _ in sent} == {"pbx-0", "pbx-1"}


def test_a_gone_hosts_webhook_goes_to_another_and_its_late_result_is_dropped(
    store: str,
) -> None:
    add_webhooks(store, {1: 2})
    with connect(store) as conn:
        cluster.heartbeat(conn, "pbx-1", 6, LONGEST)
        (stale,) = cluster.claim_webhooks(conn, "pbx-1", NOW, 10)
    silence(store, "pbx-1", TIMEOUT + 1)

    with connect(store) as conn:
        recovered = cluster.recover(conn, TIMEOUT)
        (fresh,) = cluster.claim_webhooks(conn, "pbx-2", NOW, 10)
        late = cluster.webhook_sent(conn, stale, NOW, delivered=True)
        held = cluster.claim_webhooks(conn, "pbx-2", NOW, 10)  # the second waits its turn
        done = cluster.webhook_sent(conn, fresh, NOW, delivered=True)
        (second,) = cluster.claim_webhooks(conn, "pbx-2", NOW, 10)

    assert recovered == cluster.Recovered(webhooks=1)
    assert (fresh.id, fresh.event) == (stale.id, "event-0")
    assert not late
    assert held == []
    assert done
    assert second.event == "event-1"
