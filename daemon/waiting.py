"""Why a task is not in a call right now, in words an operator reads at a glance.

`why_waiting` is a pure function of the task, its queue, how full the limits are, the
AMI link and the time; the console shows its answer on the task page. It restates the
scheduler's rules (docs/console.md lists them) and decides nothing itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from daemon.asr import GuardState
from daemon.models import TaskStatus, parse_time


class Reason(StrEnum):
    IN_CALL = "in_call"
    FINISHED = "finished"
    QUEUE_OFF = "queue_off"
    AMI_DOWN = "ami_down"
    START_TIME = "start_time"
    RETRY_PAUSE = "retry_pause"
    INTERVAL_CLOSED = "interval_closed"
    ASR_GUARD = "asr_guard"
    PBX_LIMIT = "pbx_limit"
    QUEUE_LIMIT = "queue_limit"
    EXTENSION_LIMIT = "extension_limit"
    DUE = "due"


@dataclass(frozen=True)
class TaskState:
    status: str
    attempts_made: int
    next_attempt_utc: str | None
    finish_result: str | None = None
    finish_comment: str = ""
    extension_id: int | None = None


@dataclass(frozen=True)
class QueueState:
    status: str  # "on" / "off"
    concurrent_task_limit: int
    interval_open: bool | None = None  # None: the queue has no calling hours
    next_open_utc: str | None = None


@dataclass(frozen=True)
class Load:
    """Calls in progress now, against each limit that applies to the task."""

    queue_running: int
    pbx_running: int
    pbx_limit: int
    extension_running: int = 0
    extension_limit: int | None = None


@dataclass(frozen=True)
class Why:
    reason: Reason
    text: str
    until: str | None = None  # UTC text: when this reason goes away by itself


def why_waiting(
    task: TaskState,
    queue: QueueState,
    load: Load,
    ami_ready: bool,
    now: datetime,
    asr: GuardState | None = None,  # the guard of the task's extension profile, if on
) -> list[Why]:
    """Every reason that keeps `task` from starting now, the one to act on first: a
    switch an operator controls, then time, then the guards and limits. A task that is
    due and fits every limit gets one reason, `due`: the scheduler starts it on its
    next pass. An empty list never comes back."""
    if task.status == TaskStatus.FINISHED:
        comment = f": {task.finish_comment}" if task.finish_comment else ""
        return [Why(Reason.FINISHED, f"finished, {task.finish_result or 'no result'}{comment}")]
    if task.status == TaskStatus.EXECUTED:
        return [Why(Reason.IN_CALL, f"in a call now (attempt {task.attempts_made})")]
    reasons: list[Why] = []
    if queue.status != "on":
        reasons.append(Why(Reason.QUEUE_OFF, "its queue is switched off"))
    if not ami_ready:
        reasons.append(Why(Reason.AMI_DOWN, "the PBX link (AMI) is not ready: nothing starts"))
    due_at = parse_time(task.next_attempt_utc) if task.next_attempt_utc else None
    if (
        due_at is not None
        and due_at > now
        and task.status not in (TaskStatus.DELAYED_INTERVAL, TaskStatus.DELAYED_ASR)
    ):
        reasons.append(_time_not_come(task))
        return reasons
    reasons.extend(_held(task, queue, load, asr))
    return reasons or [Why(Reason.DUE, "due now: starts on the scheduler's next pass")]


def _time_not_come(task: TaskState) -> Why:
    when = task.next_attempt_utc
    if task.attempts_made == 0:
        return Why(Reason.START_TIME, f"waits for its start time, {when} UTC", when)
    return Why(
        Reason.RETRY_PAUSE,
        f"waits out the pause after attempt {task.attempts_made}, until {when} UTC",
        when,
    )


def _held(task: TaskState, queue: QueueState, load: Load, asr: GuardState | None) -> list[Why]:
    held = []
    if task.status == TaskStatus.DELAYED_INTERVAL or queue.interval_open is False:
        opens = queue.next_open_utc or (
            task.next_attempt_utc if task.status == TaskStatus.DELAYED_INTERVAL else None
        )
        text = f"calling hours closed until {opens} UTC" if opens else "calling hours closed"
        held.append(Why(Reason.INTERVAL_CLOSED, text, opens))
    if task.status == TaskStatus.DELAYED_ASR or (asr is not None and asr.tripped):
        held.append(Why(Reason.ASR_GUARD, _asr_text(asr)))
    if load.pbx_running >= load.pbx_limit:
        held.append(_full(Reason.PBX_LIMIT, "the PBX", load.pbx_running, load.pbx_limit))
    if load.queue_running >= queue.concurrent_task_limit:
        held.append(
            _full(Reason.QUEUE_LIMIT, "its queue", load.queue_running, queue.concurrent_task_limit)
        )
    if load.extension_limit is not None and load.extension_running >= load.extension_limit:
        name = f"extension profile {task.extension_id}"
        held.append(
            _full(Reason.EXTENSION_LIMIT, name, load.extension_running, load.extension_limit)
        )
    return held


def _asr_text(asr: GuardState | None) -> str:
    text = "held by the ASR guard: too few answered calls on its extension profile"
    if asr is None or not asr.attempts:
        return text
    return (
        f"{text} ({asr.answered} of the last {asr.attempts} attempts answered,"
        f" {asr.answered / asr.attempts:.0%}; it needs {asr.min_ratio:.0%})"
    )


def _full(reason: Reason, what: str, running: int, limit: int) -> Why:
    return Why(reason, f"{what} is at its concurrency limit: {running} of {limit} calls")
