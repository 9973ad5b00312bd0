"""Claims, fences and host membership on the shared store: the SQL side of
daemon/cluster.py, as functions over one psycopg connection (each its own transaction,
or a savepoint inside the caller's).

A claim raises the task's fence and names the host; its attempt row carries both, and
moves from `claimed` to `originating` in a fenced write just before the Originate is
sent. So the store always knows whether a gone host may have rung anyone: a `claimed`
attempt rang nobody and goes back at once; an `originating` or `in_call` one is closed
only when daemon.cluster.attempt_verdict says no call of it can still be up. Every
later write about the task names its fence and changes nothing once another claim or a
recovery raised it; its caller then sends nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from psycopg.rows import DictRow

from ami.outcome import COMMENTS, Outcome, Result
from daemon.cluster import GoneHost, Verdict, attempt_verdict
from daemon.lifecycle import AttemptEnded, Change, Claimed, GivenBack, next_state
from daemon.models import WAITING_STATUSES, TaskStatus, format_time, parse_time
from daemon.store.pg.connection import Conn
from daemon.store.pg.dbapi import Connection
from daemon.store.tasks import task_state
from daemon.store.webhooks import WebhookEvent, enqueue_webhook_now

_WAITING = [str(s) for s in WAITING_STATUSES]
# One recovery at a time across hosts (pg_try_advisory_xact_lock): the others skip it.
RECOVERY_LOCK = 0x72656376  # "recv"


# --- membership ------------------------------------------------------------------------


def heartbeat(conn: Conn, host_id: str, schema_version: int, longest_call: int) -> datetime:
    """Stamp this host alive with the database's clock; returns that clock's reading."""
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO hosts (host_id, schema_version, max_call_seconds)"
            " VALUES (%s, %s, %s) ON CONFLICT (host_id) DO UPDATE SET last_heartbeat = now(),"
            " schema_version = excluded.schema_version,"
            " max_call_seconds = excluded.max_call_seconds, released_at = NULL"
            " RETURNING now() AS now",
            (host_id, schema_version, longest_call),
        ).fetchone()
    assert row is not None
    return cast(datetime, row["now"])


# pg_advisory_xact_lock key of joining: two hosts starting at once join one at a time.
JOIN_LOCK = 0x6A6F696E  # "join"


def join(
    conn: Conn, host_id: str, schema_version: int, longest_call: int, host_timeout: float
) -> list[str]:
    """Register this host with a first heartbeat; returns the other hosts alive (heard
    from within host_timeout), that work the same queues."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (JOIN_LOCK,))
        alive = [
            row["host_id"]
            for row in conn.execute(
                "SELECT host_id FROM hosts WHERE host_id != %s"
                " AND last_heartbeat >= now() - make_interval(secs => %s) ORDER BY host_id",
                (host_id, host_timeout),
            ).fetchall()
        ]
        heartbeat(conn, host_id, schema_version, longest_call)
    return alive


@dataclass(frozen=True)
class HostStatus:
    host_id: str
    last_heartbeat: datetime
    silent_for: float  # seconds, by the database's clock
    schema_version: int
    calls: int  # attempts of this host not ended
    claimed: int  # tasks claimed by this host


def hosts(conn: Conn) -> list[HostStatus]:
    """Every host that shares the store, with its last heartbeat and its calls."""
    rows = conn.execute(
        "SELECT h.host_id, h.last_heartbeat, h.schema_version,"
        " extract(epoch FROM now() - h.last_heartbeat)::float8 AS silent_for,"
        " (SELECT count(*) FROM attempts a WHERE a.host_id = h.host_id"
        "   AND a.state != 'ended') AS calls,"
        " (SELECT count(*) FROM tasks t WHERE t.claimed_by = h.host_id) AS claimed"
        " FROM hosts h ORDER BY h.host_id"
    ).fetchall()
    conn.commit()
    return [
        HostStatus(
            r["host_id"],
            r["last_heartbeat"],
            r["silent_for"],
            r["schema_version"],
            r["calls"],
            r["claimed"],
        )
        for r in rows
    ]


def release(conn: Conn, host_id: str, host_timeout: float) -> bool:
    """`callbackd cluster release HOST`: the operator vouches that no call of that gone
    host is up; False (nothing changed) when no such host is gone."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE hosts SET released_at = now() WHERE host_id = %s"
            " AND last_heartbeat < now() - make_interval(secs => %s) RETURNING host_id",
            (host_id, host_timeout),
        ).fetchone()
    return row is not None


# --- claims ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewAttempt:
    """What the claim of one due task writes: its attempt's call uuid and plan (JSON)."""

    call_uuid: str
    plan: str


@dataclass(frozen=True)
class Claim:
    task_id: int
    scheduler_id: int
    fence: int
    call_uuid: str
    attempt_no: int


def claim_due(
    conn: Conn,
    host_id: str,
    now: datetime,
    room: int,
    new_attempt: Callable[[DictRow], NewAttempt],
    skip_extensions: Collection[str] = (),
) -> list[Claim]:
    """Claim up to `room` due tasks (this host's free call slots, its full profiles'
    tasks passed over), oldest due first, within each queue's concurrent_task_limit
    counted over every host. `new_attempt(task_row)` gives each claim's NewAttempt.

    The queues' rows are locked first, in id order: claims of one queue are serialized
    across hosts, and the count of its running tasks is read after the lock, so it
    includes every claim committed before. Due rows another transaction holds are
    skipped, not waited for."""
    if room <= 0:
        return []
    due = format_time(now)
    claims: list[Claim] = []
    with conn.transaction():
        queues = conn.execute(
            "SELECT id, concurrent_task_limit FROM queues q WHERE status = 'on' AND EXISTS"
            " (SELECT 1 FROM tasks t WHERE t.scheduler_id = q.id AND t.next_attempt <= %s"
            "  AND t.status = ANY(%s)) ORDER BY id FOR UPDATE",
            (due, _WAITING),
        ).fetchall()
        for queue in queues:
            if len(claims) >= room:
                break
            # A statement of its own: its snapshot is taken after the lock was granted.
            running = conn.execute(
                "SELECT count(*) AS n FROM tasks WHERE scheduler_id = %s AND status = 'executed'",
                (queue["id"],),
            ).fetchone()
            assert running is not None
            take = min(queue["concurrent_task_limit"] - running["n"], room - len(claims))
            if take <= 0:
                continue
            rows = conn.execute(
                "SELECT * FROM tasks WHERE scheduler_id = %s AND next_attempt <= %s"
                " AND status = ANY(%s)"
                " AND coalesce(params::jsonb ->> 'extension_id', '') != ALL(%s)"
                " ORDER BY next_attempt, id LIMIT %s FOR UPDATE SKIP LOCKED",
                (queue["id"], due, _WAITING, list(skip_extensions), take),
            ).fetchall()
            for row in rows:
                claim = _claim_one(conn, host_id, row, new_attempt(row), now)
                if claim is not None:
                    claims.append(claim)
    return claims


def _claim_one(
    conn: Conn, host_id: str, row: DictRow, attempt: NewAttempt, now: datetime
) -> Claim | None:
    change = next_state(_state(row), Claimed(attempt.call_uuid), now)
    if change is None:
        return None
    values = change.values()
    assignments = ", ".join(f"{name} = %({name})s" for name in values)
    written = conn.execute(
        f"UPDATE tasks SET {assignments}, fence = fence + 1, claimed_by = %(host)s"  # noqa: S608 - names from lifecycle
        " WHERE id = %(id)s RETURNING fence, attempts_made",
        {**values, "host": host_id, "id": row["id"]},
    ).fetchone()
    assert written is not None
    conn.execute(
        "INSERT INTO attempts (call_uuid, task_id, attempt_no, scheduler_id, state, plan,"
        " start_time, host_id, fence) VALUES (%s, %s, %s, %s, 'claimed', %s, %s, %s, %s)",
        (
            attempt.call_uuid,
            row["id"],
            written["attempts_made"],
            row["scheduler_id"],
            attempt.plan,
            format_time(now),
            host_id,
            written["fence"],
        ),
    )
    conn.execute(
        "UPDATE queues SET last_call_date = %s WHERE id = %s",
        (format_time(now), row["scheduler_id"]),
    )
    return Claim(
        row["id"],
        row["scheduler_id"],
        written["fence"],
        attempt.call_uuid,
        written["attempts_made"],
    )


def dial(conn: Conn, claim: Claim) -> bool:
    """Record that the Originate of `claim` is about to be sent; False when the claim
    is stale (its task was given back or re-claimed): then send nothing."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE attempts a SET state = 'originating' FROM tasks t"
            " WHERE a.call_uuid = %s AND a.state = 'claimed' AND t.id = a.task_id"
            " AND t.fence = %s AND a.fence = %s RETURNING a.call_uuid",
            (claim.call_uuid, claim.fence, claim.fence),
        ).fetchone()
    return row is not None


def end_attempt(conn: Conn, claim: Claim, outcome: Outcome, now: datetime) -> Change | None:
    """The attempt's end with the task's next state, fenced: None (nothing written, and
    nothing to send) when the claim is stale or the attempt ended already."""
    with conn.transaction():
        task = conn.execute(
            "SELECT * FROM tasks WHERE id = %s AND fence = %s FOR UPDATE",
            (claim.task_id, claim.fence),
        ).fetchone()
        if task is None:
            return None
        ended = _end_row(conn, claim.call_uuid, claim.fence, outcome)
        if not ended:
            return None
        return _apply(conn, task, AttemptEnded(outcome, outcome.end_time or now), now)


def _end_row(conn: Conn, call_uuid: str, fence: int, outcome: Outcome) -> bool:
    row = conn.execute(
        "UPDATE attempts SET state = 'ended', end_time = %s, result = %s, result_comment = %s,"
        " a_answer_time = coalesce(a_answer_time, %s), bridged_time = coalesce(bridged_time, %s)"
        " WHERE call_uuid = %s AND fence = %s AND state != 'ended' RETURNING call_uuid",
        (
            format_time(outcome.end_time) if outcome.end_time else None,
            str(outcome.result),
            outcome.comment,
            format_time(outcome.a_answer_time) if outcome.a_answer_time else None,
            format_time(outcome.bridged_time) if outcome.bridged_time else None,
            call_uuid,
            fence,
        ),
    ).fetchone()
    return row is not None


def _state(row: DictRow) -> Any:
    # task_state reads its columns by name, which a dict row has as sqlite3.Row does.
    return task_state(cast(sqlite3.Row, row))


def _apply(conn: Conn, task: DictRow, event: Any, now: datetime) -> Change | None:
    """Write the lifecycle's change of `task` (locked) for `event`, raising its fence and
    ending its claim: whoever held it can change nothing more."""
    change = next_state(_state(task), event, now)
    if change is None:
        return None
    values = change.values()
    assignments = ", ".join(f"{name} = %({name})s" for name in values)
    conn.execute(
        f"UPDATE tasks SET {assignments}, fence = fence + 1, claimed_by = NULL"  # noqa: S608 - names from lifecycle
        " WHERE id = %(id)s",
        {**values, "id": task["id"]},
    )
    return change


# --- the webhook outbox ---------------------------------------------------------------


@dataclass(frozen=True)
class WebhookClaim:
    id: int
    task_id: int
    event: str
    url: str
    body: str
    tries: int
    fence: int


def claim_webhooks(conn: Conn, host_id: str, now: datetime, n: int) -> list[WebhookClaim]:
    """Claim up to `n` webhooks due at `now` for this host to send: the oldest pending
    one of each task, and only while no earlier one of that task is pending, so a task's
    webhooks go out one at a time and in order, whichever host sends them. Rows another
    host is claiming are skipped, not waited for."""
    with conn.transaction():
        rows = conn.execute(
            "SELECT o.id FROM outbox o WHERE o.delivered_at IS NULL AND o.given_up = 0"
            " AND o.claimed_by IS NULL AND o.next_try <= %s"
            " AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.task_id = o.task_id"
            "   AND e.id < o.id AND e.delivered_at IS NULL AND e.given_up = 0)"
            " ORDER BY o.next_try, o.id LIMIT %s FOR UPDATE OF o SKIP LOCKED",
            (format_time(now), n),
        ).fetchall()
        if not rows:
            return []
        claimed = conn.execute(
            "UPDATE outbox SET claimed_by = %s, fence = fence + 1 WHERE id = ANY(%s)"
            " RETURNING id, task_id, event, url, body, tries, fence",
            (host_id, [r["id"] for r in rows]),
        ).fetchall()
    return sorted((WebhookClaim(**r) for r in claimed), key=lambda c: c.id)


def webhook_sent(
    conn: Conn,
    claim: WebhookClaim,
    now: datetime,
    *,
    delivered: bool,
    next_try: datetime | None = None,
    error: str = "",
    given_up: bool = False,
) -> bool:
    """Record a try of a claimed webhook (delivered, or to try again at `next_try`, or
    given up) and end the claim; False, with nothing written, when the claim is stale
    (this host was taken for gone and another host has the webhook now)."""
    with conn.transaction():
        if delivered:
            row = conn.execute(
                "UPDATE outbox SET delivered_at = %s, tries = %s, claimed_by = NULL"
                " WHERE id = %s AND fence = %s AND claimed_by IS NOT NULL RETURNING id",
                (format_time(now), claim.tries + 1, claim.id, claim.fence),
            ).fetchone()
        else:
            row = conn.execute(
                "UPDATE outbox SET tries = %s, last_error = %s, next_try = %s, given_up = %s,"
                " claimed_by = NULL WHERE id = %s AND fence = %s AND claimed_by IS NOT NULL"
                " RETURNING id",
                (
                    claim.tries + 1,
                    error,
                    format_time(next_try or now),
                    int(given_up),
                    claim.id,
                    claim.fence,
                ),
            ).fetchone()
    return row is not None


# --- recovery of gone hosts -----------------------------------------------------------------


@dataclass(frozen=True)
class Recovered:
    given_back: int = 0  # claims that rang nobody, due again at once
    closed: int = 0  # attempts closed "interrupted" (or success, if bridged)
    waiting: int = 0  # attempts of gone hosts whose call may still be up
    webhooks: int = 0  # webhooks a gone host was sending, free for the others


def recover(conn: Conn, host_timeout: float) -> Recovered:
    """Take back what gone hosts held (by the database's clock): their claims that
    rang nobody at once, their calls once attempt_verdict allows. One host recovers at
    a time; the others find the lock taken and leave it to that one."""
    given_back = closed = waiting = webhooks = 0
    with conn.transaction():
        lock = conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS ok", (RECOVERY_LOCK,))
        locked = lock.fetchone()
        if locked is None or not locked["ok"]:
            return Recovered()
        clock = conn.execute("SELECT now() AS now").fetchone()
        assert clock is not None
        db_now: datetime = clock["now"]
        gone = conn.execute(
            "SELECT * FROM hosts WHERE last_heartbeat < now() - make_interval(secs => %s)",
            (host_timeout,),
        ).fetchall()
        for host in gone:
            verdict = attempt_verdict(
                GoneHost(
                    host["last_heartbeat"],
                    host_timeout,
                    host["max_call_seconds"],
                    released=host["released_at"] is not None,
                ),
                db_now,
            )
            attempts = conn.execute(
                "SELECT a.*, t.fence AS task_fence FROM attempts a JOIN tasks t ON t.id = a.task_id"
                " WHERE a.host_id = %s AND a.state != 'ended' ORDER BY a.start_time FOR UPDATE",
                (host["host_id"],),
            ).fetchall()
            for attempt in attempts:
                task = conn.execute(
                    "SELECT * FROM tasks WHERE id = %s FOR UPDATE", (attempt["task_id"],)
                ).fetchone()
                assert task is not None
                if attempt["state"] == "claimed":
                    given_back += _give_back(conn, task, attempt)
                elif verdict is Verdict.CLOSE:
                    closed += _close_interrupted(conn, task, attempt, db_now)
                else:
                    waiting += 1
            # Sent or not, the result of its try was never stored: it is sent again,
            # with the same webhook-id, as after a restart of a single host.
            webhooks += conn.execute(
                "UPDATE outbox SET claimed_by = NULL, fence = fence + 1 WHERE claimed_by = %s",
                (host["host_id"],),
            ).rowcount
    return Recovered(given_back, closed, waiting, webhooks)


def _give_back(conn: Conn, task: DictRow, attempt: DictRow) -> int:
    previous = conn.execute(
        "SELECT call_uuid FROM attempts WHERE task_id = %s AND attempt_no < %s"
        " ORDER BY attempt_no DESC LIMIT 1",
        (task["id"], attempt["attempt_no"]),
    ).fetchone()
    conn.execute("DELETE FROM attempts WHERE call_uuid = %s", (attempt["call_uuid"],))
    if attempt["fence"] != task["fence"]:
        return 0  # the task moved on already; only the stray row goes
    # Due again as of its claim, by the clock of the host that claimed it: at once for
    # every host, whatever the skew between their clocks and the database's.
    claimed_at = parse_time(attempt["start_time"])
    event = GivenBack(previous["call_uuid"] if previous else "")
    change = _apply(conn, task, event, claimed_at)
    return 0 if change is None else 1


def _close_interrupted(conn: Conn, task: DictRow, attempt: DictRow, now: datetime) -> int:
    bridged = attempt["bridged_time"]
    # A call that was bridged did connect A and B, whatever happened to it later.
    result = Result.SUCCESS if bridged else Result.INTERRUPTED
    outcome = Outcome(
        result=result,
        comment=COMMENTS[result],
        a_answer_time=parse_time(attempt["a_answer_time"]) if attempt["a_answer_time"] else None,
        bridged_time=parse_time(bridged) if bridged else None,
        end_time=now,
    )
    _end_row(conn, attempt["call_uuid"], attempt["fence"], outcome)
    if attempt["fence"] != task["fence"]:
        return 1
    change = _apply(conn, task, AttemptEnded(outcome, now), now)
    if change is not None and change.status is TaskStatus.FINISHED:
        # As an attempt that ends on its own host: the task's `after` webhook, by the
        # store's own code (through the adapter, in this transaction).
        store_conn = cast(sqlite3.Connection, Connection(conn))
        enqueue_webhook_now(
            store_conn, WebhookEvent.AFTER, task["id"], attempt["call_uuid"], format_time(now)
        )
    return 1


def live_claims(conn: Conn, host_id: str) -> Sequence[DictRow]:
    """This host's attempts not ended, with their fences: what it reconciles at start."""
    rows = conn.execute(
        "SELECT * FROM attempts WHERE host_id = %s AND state != 'ended' ORDER BY start_time",
        (host_id,),
    ).fetchall()
    conn.commit()
    return rows
