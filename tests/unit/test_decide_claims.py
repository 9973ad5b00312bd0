"""decide_claims: which claims of a batch hold, as a table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from daemon.lifecycle import TaskState
from daemon.models import CallPlan, TaskStatus
from daemon.store.claims import Claim, decide_claims

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
PLAN = CallPlan(a_numbers=["100"], b_number="200")
WAITING = TaskState(TaskStatus.SCHEDULED)


def claim(task_id: int, queue: int = 1, attempt_no: int = 1) -> Claim:
    return Claim(task_id, queue, f"uuid-{task_id}-{attempt_no}", attempt_no, PLAN)


CASES = [
    # (claims, room per queue, task states, task ids that hold)
    ("all fit", [claim(1), claim(2)], {1: 2}, {1: WAITING, 2: WAITING}, [1, 2]),
    ("the queue's room is the limit", [claim(1), claim(2)], {1: 1}, {1: WAITING, 2: WAITING}, [1]),
    ("a full queue starts none", [claim(1)], {1: 0}, {1: WAITING}, []),
    ("over the limit already (another host)", [claim(1)], {1: -2}, {1: WAITING}, []),
    ("a queue not found", [claim(1, queue=9)], {1: 5}, {1: WAITING}, []),
    ("a task gone (deleted)", [claim(1), claim(2)], {1: 5}, {2: WAITING}, [2]),
    (
        "a task whose attempts moved on since the plan",
        [claim(1, attempt_no=1)],
        {1: 5},
        {1: TaskState(TaskStatus.DELAYED, attempts_made=1)},
        [],
    ),
    (
        "a retry planned for its attempt",
        [claim(1, attempt_no=2)],
        {1: 5},
        {1: TaskState(TaskStatus.DELAYED, attempts_made=1)},
        [1],
    ),
    (
        "a task in a call (claimed by another host)",
        [claim(1)],
        {1: 5},
        {1: TaskState(TaskStatus.EXECUTED)},
        [],
    ),
    ("a finished task", [claim(1)], {1: 5}, {1: TaskState(TaskStatus.FINISHED)}, []),
    ("a task named twice starts once", [claim(1), claim(1)], {1: 5}, {1: WAITING}, [1]),
    (
        "each queue its own room",
        [claim(1, queue=1), claim(2, queue=2), claim(3, queue=2)],
        {1: 1, 2: 1},
        {1: WAITING, 2: WAITING, 3: WAITING},
        [1, 2],
    ),
]


@pytest.mark.parametrize(
    ("claims", "room", "states", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_decide_claims(
    claims: list[Claim], room: dict[int, int], states: dict[int, TaskState], expected: list[int]
) -> None:
    held = decide_claims(claims, room, states, NOW)
    assert [c.task_id for c, _, _ in held] == expected
    for c, state, change in held:
        assert state is states[c.task_id]
        assert change.status is TaskStatus.EXECUTED


def test_decide_claims_leaves_the_callers_room_alone() -> None:
    room = {1: 1}
    decide_claims([claim(1)], room, {1: WAITING}, NOW)
    assert room == {1: 1}
