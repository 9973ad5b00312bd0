"""Host membership on the shared store, and the recovery of gone hosts: the SQL side
of daemon/cluster.py, as functions over one psycopg connection (each its own
transaction, or a savepoint inside the caller's).

Claims themselves are the store's own (daemon/store/attempts.py): the attempt row, with
its host, is committed before the Originate, the queue's row is locked while its
running tasks are counted, and the task moves on only from the status and attempt
count it was decided from, which every claim raises: that count is the task's fence.
A gone host's attempts are closed here only when daemon.cluster.attempt_verdict says
no call of theirs can still be up; the task's fence is raised with it, so whatever the
gone host writes later about the attempt changes nothing.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from psycopg.rows import DictRow

from ami.outcome import COMMENTS, Outcome, Result
from daemon.cluster import GoneHost, Verdict, attempt_verdict
from daemon.lifecycle import AttemptEnded, Change, next_state
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


def hosts(conn: Conn) -> list[HostStatus]:
    """Every host that shares the store, with its last heartbeat and its calls."""
    rows = conn.execute(
        "SELECT h.host_id, h.last_heartbeat, h.schema_version,"
        " extract(epoch FROM now() - h.last_heartbeat)::float8 AS silent_for,"
        " (SELECT count(*) FROM attempts a WHERE a.host_id = h.host_id"
        "   AND a.state != 'ended') AS calls"
        " FROM hosts h ORDER BY h.host_id"
    ).fetchall()
    conn.commit()
    return [
        HostStatus(
            r["host_id"], r["last_heartbeat"], r["silent_for"], r["schema_version"], r["calls"]
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


def _state(row: DictRow) -> Any:
    # task_state reads its columns by name, which a dict row has as sqlite3.Row does.
    return task_state(cast(sqlite3.Row, row))


def _apply(conn: Conn, task: DictRow, event: Any, now: datetime) -> Change | None:
    """Write the lifecycle's change of `task` (locked) for `event`, from the state it
    was read in, as the store's own writes do."""
    change = next_state(_state(task), event, now)
    if change is None:
        return None
    values = change.values()
    assignments = ", ".join(f"{name} = %({name})s" for name in values)
    conn.execute(
        f"UPDATE tasks SET {assignments} WHERE id = %(id)s"  # noqa: S608 - names from lifecycle
        " AND status = %(from_status)s AND attempts_made = %(from_attempts)s",
        {
            **values,
            "id": task["id"],
            "from_status": task["status"],
            "from_attempts": task["attempts_made"],
        },
    )
    return change


# --- recovery of gone hosts -----------------------------------------------------------------


@dataclass(frozen=True)
class Recovered:
    closed: int = 0  # attempts closed "interrupted" (or success, if bridged)
    waiting: int = 0  # attempts of gone hosts whose call may still be up


def recover(conn: Conn, host_timeout: float) -> Recovered:
    """Close the attempts of gone hosts (gone by the database's clock) once
    attempt_verdict allows: then the normal pause applies to their tasks. One host
    recovers at a time; the others find the lock taken and leave it to that one."""
    closed = waiting = 0
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
                "SELECT * FROM attempts WHERE host_id = %s AND state != 'ended'"
                " ORDER BY start_time FOR UPDATE",
                (host["host_id"],),
            ).fetchall()
            for attempt in attempts:
                task = conn.execute(
                    "SELECT * FROM tasks WHERE id = %s FOR UPDATE", (attempt["task_id"],)
                ).fetchone()
                assert task is not None
                if verdict is Verdict.CLOSE:
                    closed += _close_interrupted(conn, task, attempt, db_now)
                else:
                    waiting += 1
    return Recovered(closed, waiting)


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
    conn.execute(
        "UPDATE attempts SET state = 'ended', end_time = %s, result = %s, result_comment = %s"
        " WHERE call_uuid = %s AND state != 'ended'",
        (format_time(now), str(result), outcome.comment, attempt["call_uuid"]),
    )
    current = task["status"] == "executed" and task["attempts_made"] == attempt["attempt_no"]
    if not current:
        return 1  # the task moved on already (cancelled, say): only the attempt closes
    change = _apply(conn, task, AttemptEnded(outcome, now), now)
    if change is not None and change.status is TaskStatus.FINISHED:
        # As an attempt that ends on its own host: the task's `after` webhook, by the
        # store's own code (through the adapter, in this transaction).
        store_conn = cast(sqlite3.Connection, Connection(conn))
        enqueue_webhook_now(
            store_conn, WebhookEvent.AFTER, task["id"], attempt["call_uuid"], format_time(now)
        )
    return 1
