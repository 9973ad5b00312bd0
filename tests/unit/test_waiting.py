"""why_waiting: every reason a task is not in a call, as a table."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from daemon.asr import GuardState
from daemon.waiting import Load, QueueState, Reason, TaskState, why_waiting

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
WAITING = TaskState(status="scheduled", attempts_made=0, next_attempt_utc="2026-03-02 11:00:00")
ON = QueueState(status="on", concurrent_task_limit=10)
ROOM = Load(queue_running=0, pbx_running=0, pbx_limit=50)

CASES = [
    # (name, task, queue, load, ami_ready, [reasons], until of the first)
    ("due", WAITING, ON, ROOM, True, [Reason.DUE], None),
    (
        "start time",
        replace(WAITING, next_attempt_utc="2026-03-02 13:00:00"),
        ON,
        ROOM,
        True,
        [Reason.START_TIME],
        "2026-03-02 13:00:00",
    ),
    (
        "retry pause",
        replace(WAITING, status="delayed", attempts_made=2, next_attempt_utc="2026-03-02 12:01:00"),
        ON,
        ROOM,
        True,
        [Reason.RETRY_PAUSE],
        "2026-03-02 12:01:00",
    ),
    ("queue off", WAITING, replace(ON, status="off"), ROOM, True, [Reason.QUEUE_OFF], None),
    ("AMI down", WAITING, ON, ROOM, False, [Reason.AMI_DOWN], None),
    (
        "queue off and not yet time: both, the switch first",
        replace(WAITING, next_attempt_utc="2026-03-02 13:00:00"),
        replace(ON, status="off"),
        ROOM,
        True,
        [Reason.QUEUE_OFF, Reason.START_TIME],
        None,
    ),
    (
        "calling hours closed, from the queue",
        WAITING,
        replace(ON, interval_open=False, next_open_utc="2026-03-03 06:00:00"),
        ROOM,
        True,
        [Reason.INTERVAL_CLOSED],
        "2026-03-03 06:00:00",
    ),
    (
        "calling hours closed, from the task's status alone",
        replace(WAITING, status="delayed_interval", next_attempt_utc="2026-03-03 06:00:00"),
        ON,
        ROOM,
        True,
        [Reason.INTERVAL_CLOSED],
        "2026-03-03 06:00:00",
    ),
    (
        "calling hours open",
        WAITING,
        replace(ON, interval_open=True),
        ROOM,
        True,
        [Reason.DUE],
        None,
    ),
    (
        "ASR guard",
        replace(WAITING, status="delayed_asr"),
        ON,
        ROOM,
        True,
        [Reason.ASR_GUARD],
        None,
    ),
    (
        "queue full",
        replace(WAITING, status="delayed_concurrent_task"),
        replace(ON, concurrent_task_limit=2),
        replace(ROOM, queue_running=2),
        True,
        [Reason.QUEUE_LIMIT],
        None,
    ),
    (
        "PBX full and queue full",
        WAITING,
        replace(ON, concurrent_task_limit=2),
        Load(queue_running=2, pbx_running=50, pbx_limit=50),
        True,
        [Reason.PBX_LIMIT, Reason.QUEUE_LIMIT],
        None,
    ),
    (
        "extension full",
        replace(WAITING, extension_id=101),
        ON,
        replace(ROOM, extension_running=5, extension_limit=5),
        True,
        [Reason.EXTENSION_LIMIT],
        None,
    ),
    (
        "an extension without its own cap is never full",
        replace(WAITING, extension_id=101),
        ON,
        replace(ROOM, extension_running=500),
        True,
        [Reason.DUE],
        None,
    ),
    (
        "held for concurrency, but the limit has room again",
        replace(WAITING, status="delayed_concurrent_task"),
        ON,
        replace(ROOM, queue_running=9),
        True,
        [Reason.DUE],
        None,
    ),
    (
        "in a call",
        replace(WAITING, status="executed", attempts_made=1, next_attempt_utc=None),
        replace(ON, status="off"),
        ROOM,
        False,
        [Reason.IN_CALL],
        None,
    ),
    (
        "finished",
        replace(WAITING, status="finished", finish_result="failed", finish_comment="A busy"),
        ON,
        ROOM,
        True,
        [Reason.FINISHED],
        None,
    ),
]


@pytest.mark.parametrize(
    ("task", "queue", "load", "ami_ready", "reasons", "until"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_why_a_task_waits(
    task: TaskState,
    queue: QueueState,
    load: Load,
    ami_ready: bool,
    reasons: list[Reason],
    until: str | None,
) -> None:
    found = why_waiting(task, queue, load, ami_ready, NOW)
    assert [why.reason for why in found] == reasons
    assert found[0].until == until
    assert all(why.text for why in found)


def test_the_text_names_the_numbers_an_operator_needs() -> None:
    [full] = why_waiting(
        WAITING, replace(ON, concurrent_task_limit=3), replace(ROOM, queue_running=3), True, NOW
    )
    assert full.text == "its queue is at its concurrency limit: 3 of 3 calls"
    [finished] = why_waiting(
        replace(WAITING, status="finished", finish_result="failed", finish_comment="A busy"),
        ON,
        ROOM,
        True,
        NOW,
    )
    assert finished.text == "finished, failed: A busy"


def test_a_tripped_asr_guard_holds_a_due_task_and_says_by_how_much() -> None:
    tripped = GuardState(tripped=True, attempts=40, answered=4, min_ratio=0.3, min_attempts=30)
    [held] = why_waiting(WAITING, ON, ROOM, True, NOW, asr=tripped)
    assert held.reason is Reason.ASR_GUARD
    assert held.text.endswith("(4 of the last 40 attempts answered, 10%; it needs 30%)")
    clear = GuardState(tripped=False, attempts=40, answered=30, min_ratio=0.3, min_attempts=30)
    assert [w.reason for w in why_waiting(WAITING, ON, ROOM, True, NOW, asr=clear)] == [Reason.DUE]
