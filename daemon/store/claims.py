"""The claim of due tasks for their attempts: a batch in a few set-based statements.

The claim is the one write the scheduler makes per batch and two hosts of one shared
store make at once, so it is a handful of statements whatever the batch's size: each
queue's row locked and its running tasks counted (that lock, held to the commit, is what
keeps `concurrent_task_limit` across hosts), the tasks' states read and, on the shared
store, locked in one statement; what each becomes decided in Python by the lifecycle's
`next_state`; then the updates, the attempt rows and the `before` webhooks each written
as one batch (one pipelined round trip on PostgreSQL).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter

from daemon.lifecycle import Change, Claimed, TaskState, next_state
from daemon.models import CallPlan, format_time
from daemon.store.queries import q
from daemon.store.tasks import apply_each, task_state
from daemon.store.webhooks import WebhookEvent, enqueue_start_webhooks


@dataclass(frozen=True)
class Claim:
    """One attempt about to start: the task it belongs to and what it will dial."""

    task_id: int
    scheduler_id: int
    call_uuid: str
    attempt_no: int
    plan: CallPlan


def _room_in_queue(conn: sqlite3.Connection, scheduler_id: int) -> int:
    """How many more of the queue's tasks may start, counted in this transaction after
    the queue's row is locked (on the shared store, where several hosts claim; SQLite
    has one writer): every claim committed before is counted."""
    row = conn.execute(q("lock_queue_for_claim"), {"id": scheduler_id}).fetchone()
    if row is None:
        return 0
    running = conn.execute(q("count_running_in_queue"), {"id": scheduler_id}).fetchone()
    return int(row[0]) - int(running[0])


def _states(conn: sqlite3.Connection, claims: Sequence[Claim]) -> dict[int, TaskState]:
    ids = json.dumps(sorted({claim.task_id for claim in claims}))
    rows = conn.execute(q("lock_tasks_for_claim"), {"ids": ids})
    return {row["id"]: task_state(row, with_rules=False) for row in rows}


def decide_claims(
    claims: Sequence[Claim], room: dict[int, int], states: dict[int, TaskState], now: datetime
) -> list[tuple[Claim, TaskState, Change]]:
    """The claims that hold, in queue order, with the state each was decided from and
    its change: within the room left in its queue, a task still waiting with the
    attempts its plan was made for (one that moved on since, another attempt or a PUT
    that made it wait again, is not started on that plan), each task once."""
    room = dict(room)
    held: list[tuple[Claim, TaskState, Change]] = []
    seen: set[int] = set()
    for claim in sorted(claims, key=attrgetter("scheduler_id")):
        state = states.get(claim.task_id)
        if room.get(claim.scheduler_id, 0) <= 0 or state is None or claim.task_id in seen:
            continue  # concurrent_task_limit is reached (over every host), or no task
        if state.attempts_made != claim.attempt_no - 1:
            continue
        change = next_state(state, Claimed(claim.call_uuid), now)
        if change is None:
            continue
        held.append((claim, state, change))
        seen.add(claim.task_id)
        room[claim.scheduler_id] -= 1
    return held


def claim_tasks(claims: Sequence[Claim], now: datetime, conn: sqlite3.Connection) -> set[str]:
    """Mark each task `executed`, write its attempt row and queue its `before` webhook;
    the call uuids of the claims that held."""
    if not claims:
        return set()
    # Queue rows are locked in id order, then the tasks' rows: two hosts claiming never
    # wait on each other in a circle.
    queues = sorted({claim.scheduler_id for claim in claims})
    room = {queue: _room_in_queue(conn, queue) for queue in queues}
    held = decide_claims(claims, room, _states(conn, claims), now)
    if not held:
        return set()
    apply_each(conn, [(claim.task_id, state, change) for claim, state, change in held])
    when = format_time(now)
    conn.executemany(
        q("insert_attempt"),
        [
            {
                "call_uuid": claim.call_uuid,
                "task_id": claim.task_id,
                "attempt_no": claim.attempt_no,
                "scheduler_id": claim.scheduler_id,
                "plan": claim.plan.model_dump_json(),
                "now": when,
            }
            for claim, _, _ in held
        ],
    )
    enqueue_start_webhooks(
        conn,
        [
            (
                WebhookEvent.BEFORE if claim.attempt_no == 1 else WebhookEvent.BEFORE_AGAIN,
                claim.task_id,
                claim.call_uuid,
            )
            for claim, _, _ in held
        ],
        when,
    )
    touched = sorted({claim.scheduler_id for claim, _, _ in held})
    conn.executemany(  # a claim of 64 tasks of one queue updates it once
        q("touch_queue_last_call"), [{"scheduler_id": queue, "now": when} for queue in touched]
    )
    return {claim.call_uuid for claim, _, _ in held}
