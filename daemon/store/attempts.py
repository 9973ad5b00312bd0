"""Writes of the call engine: claiming a task for an attempt, the attempt's milestones,
its end together with the task's next state, and the AMI events behind it."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from itertools import groupby
from operator import attrgetter
from typing import NamedTuple

from pydantic_core import to_json

from ami.events import AmiEvent, RawEvent
from ami.outcome import Outcome
from daemon.lifecycle import AttemptEnded, GivenBack
from daemon.models import CallPlan, TaskInput, TaskStatus, format_time, parse_time
from daemon.retry import NextStep, Progress
from daemon.store.calls import event_headers
from daemon.store.claims import Claim as Claim  # the engine claims through this module
from daemon.store.claims import claim_tasks
from daemon.store.db import Database
from daemon.store.queries import q
from daemon.store.tasks import apply, read_state, task_state, transition
from daemon.store.webhooks import (
    WebhookEvent,
    enqueue_webhook_now,
    enqueue_webhook_of_row,
    has_webhook,
)

Answer = tuple[datetime, str | None]  # when A answered, and which A number


@dataclass(frozen=True)
class TaskRecord:
    """A stored task with what the scheduler and the retry policy need."""

    id: int
    scheduler_id: int
    status: TaskStatus
    task: TaskInput
    attempts_made: int
    caller_attempts: int
    invalid_numbers: tuple[str, ...]
    # The zone the calling hours were read in for this attempt, and why (None: the
    # queue has no interval).
    hours_zone: tuple[str, str] | None = None

    @property
    def progress(self) -> Progress:
        invalid = set(self.invalid_numbers)
        return Progress(
            attempts_made=self.attempts_made,
            caller_attempts=self.caller_attempts,
            a_numbers_left=[n for n in self.task.a_numbers() if n not in invalid],
        )


def task_record(row: sqlite3.Row, hours_zone: tuple[str, str] | None = None) -> TaskRecord:
    params = json.loads(row["params"])
    if row["start_time"]:
        params["start_time_utc"] = row["start_time"]
    return TaskRecord(
        id=row["id"],
        scheduler_id=row["scheduler_id"],
        status=TaskStatus(row["status"]),
        task=TaskInput.model_validate(params),
        attempts_made=row["attempts_made"],
        caller_attempts=row["caller_attempts"],
        invalid_numbers=tuple(json.loads(row["invalid_numbers"])),
        hours_zone=hours_zone,
    )


@dataclass(frozen=True)
class LiveAttempt:
    call_uuid: str
    task_id: int
    attempt_no: int
    plan: CallPlan
    a_answer_time: str | None
    bridged_time: str | None
    answered_a_number: str | None


class StoredEvent(NamedTuple):
    """One AMI event of a call, numbered in arrival order. A tuple: one is made for
    every event the daemon receives."""

    call_uuid: str
    seq: int
    received_at: str
    event: AmiEvent


def _opt_time(moment: datetime | None) -> str | None:
    return format_time(moment) if moment else None


@dataclass(frozen=True)
class AttemptNotes:
    """What the engine knows of an attempt besides its outcome: Asterisk's words when
    it refused the Originate, and when the task was cancelled during the call."""

    refusal: str | None = None
    cancel_time: datetime | None = None


NO_NOTES = AttemptNotes()


class AttemptRepository:
    """The engine's writes: the store's group commit lets the claims of a scheduler
    pass, the bridges and ends of calls that happen close together share transactions."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def task(self, task_id: int) -> TaskRecord | None:
        row = await self._db.fetch_one(q("select_task_by_id"), {"id": task_id})
        return None if row is None else task_record(row)

    async def claim(self, claims: Sequence[Claim], now: datetime) -> set[str]:
        """Mark each task `executed` and write its attempt row, all in one transaction,
        before anything is sent to Asterisk. Returns the call uuids of the claims that
        held (a task no longer waiting is skipped)."""
        return await self._db.write(partial(claim_tasks, claims, now))

    async def release(
        self, task_id: int, call_uuid: str, now: datetime, refusal: str | None = None
    ) -> None:
        """Undo a claim whose Originate was certainly never sent: no attempt is used,
        and its `before` webhook is withdrawn. `refusal`: what the PBX answered, kept
        as the task's latest give-back."""
        await self._db.write(partial(_release, task_id, call_uuid, now, refusal))

    async def mark_answered(self, call_uuid: str, at: datetime, number: str | None) -> None:
        params = _answer(call_uuid, (at, number))
        await self._db.write(lambda conn: conn.execute(q("mark_attempt_answered"), params))

    async def mark_bridged(
        self,
        call_uuid: str,
        task_id: int,
        at: datetime,
        answer: Answer | None = None,
        events: Sequence[StoredEvent] = (),
    ) -> None:
        """Record the bridge and queue the task's `success` webhook with it; with the
        `answer` of A (when and which number), when that is not stored yet, and the
        call's `events` so far: a daemon killed while A and B talk finds on its restart
        what the legs did (their dial statuses, their channels)."""
        answered = _answer(call_uuid, answer) if answer is not None else None

        def write(conn: sqlite3.Connection) -> None:
            _insert_events(events, conn)
            _bridged(call_uuid, task_id, format_time(at), answered, conn)

        await self._db.write(write)

    async def end(
        self,
        call_uuid: str,
        task_id: int,
        outcome: Outcome,
        ended: datetime,
        events: Sequence[StoredEvent],
        notes: AttemptNotes = NO_NOTES,
        events_on_their_way: int = 0,
    ) -> Ended:
        """Close the attempt with its outcome and move the task on as the lifecycle
        decides, atomically. A second close of the same attempt changes nothing.
        `events_on_their_way`: the last event number an earlier write of the call
        still on its way carries (see `_insert_events`)."""
        return await self._db.write(
            _Ending(call_uuid, task_id, outcome, ended, events, notes, events_on_their_way)
        )

    async def live(self) -> list[LiveAttempt]:
        rows = await self._db.fetch_all(q("select_live_attempts"))
        return [
            LiveAttempt(
                call_uuid=row["call_uuid"],
                task_id=row["task_id"],
                attempt_no=row["attempt_no"],
                plan=CallPlan.model_validate_json(row["plan"]),
                a_answer_time=row["a_answer_time"],
                bridged_time=row["bridged_time"],
                answered_a_number=row["answered_a_number"],
            )
            for row in rows
        ]

    async def stored_events(self, call_uuid: str) -> list[tuple[AmiEvent, datetime]]:
        """The call's stored events with the time each was received, in arrival order."""
        rows = await self._db.fetch_all(q("select_call_events"), {"call_uuid": call_uuid})
        return [(event_headers(row["event"]), parse_time(row["received_at"])) for row in rows]

    async def next_event_seq(self, call_uuid: str) -> int:
        return int(await self._db.fetch_value(q("max_event_seq"), {"call_uuid": call_uuid})) + 1

    async def save_events(self, events: Sequence[StoredEvent]) -> None:
        if events:
            await self._db.write(partial(_insert_events, events))


def _release(
    task_id: int, call_uuid: str, now: datetime, refusal: str | None, conn: sqlite3.Connection
) -> None:
    conn.execute(q("withdraw_start_webhook"), {"task_id": task_id, "call_uuid": call_uuid})
    conn.execute(q("delete_unsent_attempt"), {"call_uuid": call_uuid})
    previous = conn.execute(q("select_last_call_of_task"), {"task_id": task_id}).fetchone()
    previous_call = previous[0] if previous else ""
    when = format_time(now)
    if refusal is not None:
        conn.execute(q("note_given_back"), {"task_id": task_id, "time": when, "refusal": refusal})
    if transition(conn, task_id, GivenBack(previous_call), now) is None and _finished(
        conn, task_id
    ):
        # Cancelled while its Originate was out: the cancel left the `after` webhook to
        # the attempt's end, and this is its end.
        enqueue_webhook_now(conn, WebhookEvent.AFTER, task_id, previous_call or None, when)


def _finished(conn: sqlite3.Connection, task_id: int) -> bool:
    state = read_state(conn, task_id)
    return state is not None and state.status is TaskStatus.FINISHED


def _answer(call_uuid: str, answer: Answer) -> dict[str, str | None]:
    at, number = answer
    return {"call_uuid": call_uuid, "at": format_time(at), "number": number}


def _bridged(
    call_uuid: str,
    task_id: int,
    when: str,
    answered: dict[str, str | None] | None,
    conn: sqlite3.Connection,
) -> None:
    # A row (with the task's `success` URL) only when the bridge is stored by this.
    if answered is None:
        params: dict[str, str | None] = {"call_uuid": call_uuid, "at": when}
        changed = conn.execute(q("mark_attempt_bridged"), params).fetchone()
    else:
        params = answered | {"bridged_at": when}
        changed = conn.execute(q("mark_attempt_answered_and_bridged"), params).fetchone()
        if changed is None:
            conn.execute(q("mark_attempt_answered"), answered)  # as it would have been
    if changed is not None and changed["webhook_url"]:
        enqueue_webhook_now(conn, WebhookEvent.SUCCESS, task_id, call_uuid, when)


@dataclass(frozen=True)
class Ended:
    """What closing an attempt did: whether it closed it (False: it was closed
    already), and what the retry policy decided for its task (None: the task had
    moved on, e.g. it was cancelled meanwhile)."""

    closed: bool
    step: NextStep | None


@dataclass(frozen=True)
class _Ending:
    """The end of an attempt as one write: its events, its outcome, the task's next
    state and the `after` webhook of a task that finished."""

    call_uuid: str
    task_id: int
    outcome: Outcome
    ended: datetime
    events: Sequence[StoredEvent]
    notes: AttemptNotes
    events_on_their_way: int = 0

    def __call__(self, conn: sqlite3.Connection) -> Ended:
        outcome = self.outcome
        # The task is read first (it changes below only through the guarded update,
        # which finds a task moved on meanwhile): its params tell whether it has a
        # `success` webhook to go out here.
        task = conn.execute(q("select_task_state_and_params"), {"id": self.task_id}).fetchone()
        _insert_events(self.events, conn, on_their_way=self.events_on_their_way)
        bridged = outcome.bridged_time
        if bridged is not None and task is not None and has_webhook(task, WebhookEvent.SUCCESS):
            # The bridge's own write may still be waiting for a store that refused it;
            # then its `success` webhook goes out here, ahead of `after`, and that
            # write finds the bridge stored. Without that webhook, `end_attempt` below
            # stores the bridge's time as well.
            _bridged(self.call_uuid, self.task_id, format_time(bridged), None, conn)
        cursor = conn.execute(
            q("end_attempt"),
            {
                "call_uuid": self.call_uuid,
                "a_answer_time": _opt_time(outcome.a_answer_time),
                "bridged_time": _opt_time(outcome.bridged_time),
                "end_time": _opt_time(outcome.end_time),
                "answered_a_number": outcome.answered_a_number,
                "a_dial_status": outcome.a_dial_status,
                "b_dial_status": outcome.b_dial_status,
                "a_hangup_cause": outcome.a_hangup_cause,
                "b_hangup_cause": outcome.b_hangup_cause,
                "result": str(outcome.result),
                "result_comment": outcome.comment,
                "refusal": self.notes.refusal,
                "cancel_time": _opt_time(self.notes.cancel_time),
            },
        )
        if cursor.rowcount != 1:
            return Ended(closed=False, step=None)
        ended = AttemptEnded(outcome, self.ended)
        changed = None
        if task is not None:
            changed = apply(conn, self.task_id, task_state(task), ended, self.ended, returning=True)
        when = _opt_time(outcome.end_time) or format_time(self.ended)
        task_row = None if changed is None else changed[1]
        if changed is None or task_row is None:
            if _finished(conn, self.task_id):
                # Cancelled during the call: its `after` webhook waited for the end, to
                # carry the ended attempt.
                enqueue_webhook_now(conn, WebhookEvent.AFTER, self.task_id, self.call_uuid, when)
            return Ended(closed=True, step=None)
        change = changed[0]
        if change.status is TaskStatus.FINISHED:
            enqueue_webhook_of_row(conn, WebhookEvent.AFTER, task_row, self.call_uuid, when)
        return Ended(closed=True, step=change.step)


def stored_form(event: AmiEvent) -> str | AmiEvent:
    """An event as a batch row holds it: the text it came in, or, for an event not read
    from the wire (a plain mapping), its headers as a JSON object, the form rows written
    before events were kept as text still have."""
    return event.text if isinstance(event, RawEvent) else event


def _insert_events(
    events: Sequence[StoredEvent], conn: sqlite3.Connection, *, on_their_way: int = 0
) -> None:
    """Each call's events as one batch row (migration 0004), each event in its
    `stored_form`. A periodic flush and the call's end can carry the same events, and a
    write retried after the store refused it may come after a later one: events
    numbered up to the call's last stored one are skipped, so each is stored once. A
    call's writes go out in the order its events came, so what is skipped is always
    stored already.

    The batch is first inserted on a condition, one statement where reading the last
    stored number first takes two: that none of its events is stored; or, when an
    earlier write still on its way carries its events numbered up to `on_their_way`
    (a call's end, written while its bridge's write is), only the events after those,
    on the condition that the call's last stored number is exactly that. Otherwise the
    last stored number is read and the events after it are inserted."""
    for call_uuid, grouped in groupby(events, key=attrgetter("call_uuid")):
        of_call = list(grouped)
        first = min(e.seq for e in of_call)
        if on_their_way >= first:
            rest = [e for e in of_call if e.seq > on_their_way]
            stored_from = stored_to = on_their_way
        else:
            rest, stored_from, stored_to = of_call, 0, first - 1
        if rest:
            batch = {
                "call_uuid": call_uuid,
                "stored_from": stored_from,
                "stored_to": stored_to,
                "last_seq": rest[-1].seq,
                "events": _batch(rest),
            }
            if conn.execute(q("insert_call_event_batch_if_stored"), batch).rowcount == 1:
                continue
        stored = conn.execute(q("max_event_seq"), {"call_uuid": call_uuid}).fetchone()[0]
        fresh = [e for e in of_call if e.seq > stored]
        if fresh:
            conn.execute(q("insert_call_event_batch"), (call_uuid, fresh[-1].seq, _batch(fresh)))


def _batch(events: Sequence[StoredEvent]) -> str:
    # pydantic-core's JSON writer is four times as fast as json.dumps here.
    return to_json([(e.received_at, stored_form(e.event)) for e in events]).decode()
