"""The task lifecycle: every change of a task's status, as a pure function of the task's
state, what happened to it and the time. The store reads the state, asks `next_state`,
and writes the change it returns; nothing else decides or writes a task's status.

The whole lifecycle is the table `ALLOWED_FROM` (which event may change a task in which
status) and one small function per event (what the change is).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from ami.outcome import Outcome
from daemon.models import WAITING_STATUSES, FinishResult, TaskStatus, format_time
from daemon.retry import NextStep, Progress, RetryRules, next_step, progress_after

CANCELLED_COMMENT = "cancelled"


class HoldReason(StrEnum):
    """Why a due task does not start now. One status each; a new guard is one more
    member here and one more entry in HELD_STATUS."""

    CONCURRENCY = "concurrency"  # its queue, its extension profile or the PBX is full
    INTERVAL = "interval"  # its queue's calling hours are closed
    ASR = "asr"  # the answer-rate guard of its extension profile tripped


HELD_STATUS: Mapping[HoldReason, TaskStatus] = MappingProxyType(
    {
        HoldReason.CONCURRENCY: TaskStatus.DELAYED_CONCURRENT,
        HoldReason.INTERVAL: TaskStatus.DELAYED_INTERVAL,
        HoldReason.ASR: TaskStatus.DELAYED_ASR,
    }
)
# Held without a time, a task of these waits until the scheduler frees it (a PUT of the
# interval, the guard clearing, a restart): it leaves the due tasks, so a closed queue
# or a tripped profile costs no pass anything. A full limit keeps its tasks due.
_OUT_OF_THE_DUE = frozenset({HoldReason.INTERVAL, HoldReason.ASR})


_ONE_TRY = RetryRules(try_count=1, try_again_pause=60)  # the API's defaults


@dataclass(frozen=True)
class TaskState:
    """What the lifecycle needs to know of a task: its status, its attempts so far and
    its retry rules."""

    status: TaskStatus
    attempts_made: int = 0
    caller_attempts: int = 0
    invalid_numbers: tuple[str, ...] = ()
    next_attempt: str | None = None  # stored UTC text
    rules: RetryRules = _ONE_TRY
    a_numbers: tuple[str, ...] = ()


# --- events -------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """An attempt starts: its row is written before the Originate is sent."""

    call_uuid: str


@dataclass(frozen=True)
class GivenBack:
    """The attempt's Originate certainly rang nobody: it is undone, no attempt used."""

    previous_call_uuid: str  # the task's attempt before this one; "" if none


@dataclass(frozen=True)
class AttemptEnded:
    """The attempt's call ended with `outcome` at `ended`."""

    outcome: Outcome
    ended: datetime


@dataclass(frozen=True)
class Cancelled:
    """DELETE of the task: it finishes whatever it was doing."""


@dataclass(frozen=True)
class Held:
    """A due task may not start now, for `reason`; `until` is when it may be looked at
    again (None: a full limit's task stays due and starts as soon as the limit has room;
    the others wait to be freed). `comment` says why, in `finish_comment`."""

    reason: HoldReason
    until: datetime | None = None
    comment: str | None = None


@dataclass(frozen=True)
class Edited:
    """PUT of a waiting task with a (possibly new) start time."""

    start_time: datetime | None


Event = Claimed | GivenBack | AttemptEnded | Cancelled | Held | Edited

_UNFINISHED = frozenset(TaskStatus) - {TaskStatus.FINISHED}

ALLOWED_FROM: Mapping[type[Event], frozenset[TaskStatus]] = MappingProxyType(
    {
        Claimed: frozenset(WAITING_STATUSES),
        GivenBack: frozenset({TaskStatus.EXECUTED}),
        AttemptEnded: frozenset({TaskStatus.EXECUTED}),
        Cancelled: _UNFINISHED,
        Held: frozenset(WAITING_STATUSES),
        Edited: frozenset(WAITING_STATUSES),
    }
)


@dataclass(frozen=True)
class Change:
    """The task's new status and the other lifecycle columns that change with it, as
    stored (times as UTC text); `step` is what the retry policy decided, for an ended
    attempt."""

    status: TaskStatus
    columns: Mapping[str, object] = field(default_factory=dict)
    step: NextStep | None = None

    def values(self) -> dict[str, object]:
        """Every column the change writes, `status` included."""
        return {"status": str(self.status), **self.columns}


def next_state(state: TaskState, event: Event, now: datetime) -> Change | None:
    """The change `event` makes to a task in `state` at `now`; None when the event does
    not apply to a task in that status (a finished task cannot be cancelled, a task in a
    call cannot be edited)."""
    if state.status not in ALLOWED_FROM[type(event)]:
        return None
    match event:
        case Claimed(call_uuid):
            return Change(
                TaskStatus.EXECUTED,
                {"attempts_made": state.attempts_made + 1, "cdr": call_uuid, "next_attempt": None},
            )
        case GivenBack(previous):
            attempts = state.attempts_made - 1
            return Change(
                waiting_status(attempts),
                {"attempts_made": attempts, "cdr": previous, "next_attempt": format_time(now)},
            )
        case AttemptEnded(outcome, ended):
            return _after_attempt(state, outcome, ended)
        case Cancelled():
            return Change(
                TaskStatus.FINISHED,
                {
                    "finish_result": str(FinishResult.FAILED),
                    "finish_comment": CANCELLED_COMMENT,
                    "next_attempt": None,
                },
            )
        case Held(reason, until, comment):
            change = hold(reason, until, comment)
            if state.status == change.status and until is None:
                return None  # held for that already
            return change
        case Edited(start_time):
            # A task that never started is due at its (new) start time; one waiting for
            # a retry keeps its pause. Either waits again as it did before any hold.
            next_attempt = (
                due_time(start_time, now) if state.attempts_made == 0 else state.next_attempt
            )
            return Change(waiting_status(state.attempts_made), {"next_attempt": next_attempt})
    raise AssertionError(f"no transition for {event!r}")  # pragma: no cover


def hold(reason: HoldReason, until: datetime | None = None, comment: str | None = None) -> Change:
    """The change of a hold, the same for every task it applies to: a store may write it
    to many tasks in one statement, guarded by `held_from(reason, until)`."""
    columns: dict[str, object] = {}
    if until is not None:
        columns["next_attempt"] = due_text(until)
    elif reason in _OUT_OF_THE_DUE:
        columns["next_attempt"] = None
    if comment is not None:
        columns["finish_comment"] = comment
    return Change(HELD_STATUS[reason], columns)


def held_from(reason: HoldReason, until: datetime | None = None) -> frozenset[TaskStatus]:
    """The statuses a hold changes: those `next_state` accepts for it."""
    allowed = ALLOWED_FROM[Held]
    return allowed if until is not None else allowed - {HELD_STATUS[reason]}


def waiting_status(attempts_made: int) -> TaskStatus:
    """What a task waits as when nothing holds it: for its first attempt, or a retry."""
    return TaskStatus.SCHEDULED if attempts_made == 0 else TaskStatus.DELAYED


def due_time(start_time: datetime | None, now: datetime) -> str:
    """A task without a start time is due now; one with a start time is due then, even
    if that is past (it starts at once, and before tasks that came due later)."""
    return format_time(now if start_time is None else start_time)


def due_text(moment: datetime) -> str:
    """A due time is stored in whole seconds, rounded up: never before the pause ends."""
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return format_time(moment)


def _after_attempt(state: TaskState, outcome: Outcome, ended: datetime) -> Change:
    invalid = set(state.invalid_numbers)
    before = Progress(
        attempts_made=state.attempts_made,
        caller_attempts=state.caller_attempts,
        a_numbers_left=[n for n in state.a_numbers if n not in invalid],
    )
    progress = progress_after(before, outcome)
    step = next_step(state.rules, progress, outcome, ended)
    return Change(
        TaskStatus.FINISHED if step.finished else TaskStatus.DELAYED,
        {
            "finish_result": str(step.finish_result) if step.finish_result else None,
            "finish_comment": step.comment,
            "next_attempt": due_text(step.next_attempt) if step.next_attempt else None,
            "caller_attempts": progress.caller_attempts,
            "invalid_numbers": json.dumps(sorted(invalid | set(outcome.invalid_numbers))),
        },
        step,
    )
