"""Attempts and their calls in the store: the call history of docs/api.md."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from ami.events import parse_headers
from daemon.models import CallPlan, CallRecord, parse_time
from daemon.store.db import Database
from daemon.store.queries import q

TimedEvent = tuple[str, dict[str, str]]  # (received_at, headers)


def event_headers(stored: str) -> dict[str, str]:
    """The headers of one stored event (`select_call_events`): the JSON of the text it
    came in, or of its headers. Raises ValueError if it is neither."""
    value = json.loads(stored)
    if isinstance(value, str):
        return parse_headers(value)
    if isinstance(value, dict):
        return value
    raise ValueError(f"a stored event is a JSON {type(value).__name__}")


async def timed_events(db: Database, call_uuid: str) -> list[TimedEvent]:
    """The call's events in arrival order, each with the time it was received."""
    rows = await db.fetch_all(q("select_call_events"), {"call_uuid": call_uuid})
    return [(row["received_at"], event_headers(row["event"])) for row in rows]


def _seconds_between(start: str | None, end: str | None) -> int | None:
    if start is None or end is None:
        return None
    return int((parse_time(end) - parse_time(start)).total_seconds())


def call_from_row(row: sqlite3.Row, events: Sequence[TimedEvent] | None = None) -> CallRecord:
    """The call record of an attempt row; `events` (with their receive times) only when
    asked for, as two lists: `events` keeps the header form clients read."""
    plan = CallPlan.model_validate_json(row["plan"])
    return CallRecord(
        call_uuid=row["call_uuid"],
        task_id=row["task_id"],
        scheduler_id=row["scheduler_id"],
        attempt=row["attempt_no"],
        state=row["state"],
        a_numbers=plan.a_numbers,
        b_number=plan.b_number,
        answered_a_number=row["answered_a_number"],
        a_caller_id_number=plan.a_caller_id_number,
        a_caller_id_name=plan.a_caller_id_name,
        b_caller_id_number=plan.b_caller_id_number,
        interval_zone=plan.interval_zone,
        interval_zone_reason=plan.interval_zone_reason,
        start_time_gmt=row["start_time"],
        a_answer_time_gmt=row["a_answer_time"],
        bridged_time_gmt=row["bridged_time"],
        end_time_gmt=row["end_time"],
        duration=_seconds_between(row["start_time"], row["end_time"]),
        bridged_duration=_seconds_between(row["bridged_time"], row["end_time"]),
        a_dial_status=row["a_dial_status"],
        b_dial_status=row["b_dial_status"],
        a_hangup_cause=row["a_hangup_cause"],
        b_hangup_cause=row["b_hangup_cause"],
        result=row["result"],
        result_comment=row["result_comment"],
        pbx_refusal=row["refusal"],
        cancel_time_gmt=row["cancel_time"],
        events=None if events is None else [headers for _, headers in events],
        events_received_at=None if events is None else [at for at, _ in events],
    )


@dataclass(frozen=True)
class CallFilter:
    task_id: int | None = None
    since: str | None = None  # start_time >= since
    until: str | None = None  # start_time < until
    live: bool | None = None  # True: calls in progress only, False: ended calls only
    number: str | None = None  # a part of an A or the B number dialled


class CallRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, client_id: str, call_uuid: str, with_events: bool) -> CallRecord | None:
        row = await self._db.fetch_one(
            q("select_call"), {"call_uuid": call_uuid, "client_id": client_id}
        )
        if row is None:
            return None
        events = await self.events(call_uuid) if with_events else None
        return call_from_row(row, events)

    async def events(self, call_uuid: str) -> list[TimedEvent]:
        return await timed_events(self._db, call_uuid)

    async def of_task(self, task_id: int) -> list[CallRecord]:
        rows = await self._db.fetch_all(q("select_attempts_of_task"), {"task_id": task_id})
        return [call_from_row(row) for row in rows]

    async def list(
        self, client_id: str, where: CallFilter, limit: int, offset: int
    ) -> tuple[list[CallRecord], int]:
        clauses = ["q.client_id = ?"]
        params: list[object] = [client_id]
        if where.task_id is not None:
            clauses.append("a.task_id = ?")
            params.append(where.task_id)
        if where.since is not None:
            clauses.append("a.start_time >= ?")
            params.append(where.since)
        if where.until is not None:
            clauses.append("a.start_time < ?")
            params.append(where.until)
        if where.live is not None:
            clauses.append("a.state != 'ended'" if where.live else "a.state = 'ended'")
        if where.number is not None:
            # Numbers hold no LIKE wildcards (+, digits, * and # only).
            clauses.append(
                "(a.plan ->> '$.b_number' LIKE ? OR EXISTS"
                " (SELECT 1 FROM json_each(a.plan, '$.a_numbers') WHERE value LIKE ?))"
            )
            params.extend([f"%{where.number}%"] * 2)
        base = (
            f"FROM attempts a JOIN queues q ON q.id = a.scheduler_id WHERE {' AND '.join(clauses)}"
        )
        rows = await self._db.fetch_all(
            f"SELECT a.* {base} ORDER BY a.start_time, a.call_uuid LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        total = int(await self._db.fetch_value(f"SELECT count(*) {base}", params))
        return [call_from_row(row) for row in rows], total
