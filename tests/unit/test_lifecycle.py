"""The task lifecycle as a table: (status and attempts, event) -> new status and columns,
or no change; and the guard of every event against every status."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from ami.outcome import COMMENTS, Outcome, Result
from daemon.lifecycle import (
    ALLOWED_FROM,
    CANCELLED_COMMENT,
    AttemptEnded,
    Cancelled,
    Change,
    Claimed,
    Edited,
    Event,
    GivenBack,
    Held,
    HoldReason,
    TaskState,
    held_from,
    hold,
    next_state,
)
from daemon.models import FinishResult, TaskStatus
from daemon.retry import NextStep, RetryRules

S = TaskStatus
NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
NOW_TEXT = "2026-03-01 09:30:00"
LATER = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ENDED = NOW + timedelta(seconds=0.25)  # the pause counts from the end, rounded up


def ended(result: Result, *, a_answered: bool = False, invalid: tuple[str, ...] = ()) -> Outcome:
    return Outcome(
        result=result,
        comment=COMMENTS[result],
        a_answer_time=NOW - timedelta(seconds=5) if a_answered else None,
        end_time=ENDED,
        invalid_numbers=invalid,
    )


THREE_TRIES = RetryRules(try_count=3, try_again_pause=60)
IN_CALL = TaskState(S.EXECUTED, attempts_made=1, rules=THREE_TRIES, a_numbers=("100",))


@pytest.mark.parametrize(
    ("state", "event", "expected"),
    [
        # claim: any waiting status starts an attempt, counted at once
        (
            TaskState(S.SCHEDULED),
            Claimed("u1"),
            Change(S.EXECUTED, {"attempts_made": 1, "cdr": "u1", "next_attempt": None}),
        ),
        (
            TaskState(S.DELAYED_CONCURRENT, attempts_made=2),
            Claimed("u3"),
            Change(S.EXECUTED, {"attempts_made": 3, "cdr": "u3", "next_attempt": None}),
        ),
        (TaskState(S.EXECUTED, attempts_made=1), Claimed("u2"), None),
        (TaskState(S.FINISHED, attempts_made=1), Claimed("u2"), None),
        # give back: as if the attempt never was; due again at once
        (
            TaskState(S.EXECUTED, attempts_made=1),
            GivenBack(""),
            Change(S.SCHEDULED, {"attempts_made": 0, "cdr": "", "next_attempt": NOW_TEXT}),
        ),
        (
            TaskState(S.EXECUTED, attempts_made=2),
            GivenBack("u1"),
            Change(S.DELAYED, {"attempts_made": 1, "cdr": "u1", "next_attempt": NOW_TEXT}),
        ),
        (TaskState(S.FINISHED, attempts_made=1), GivenBack(""), None),
        # an attempt that ended: the retry policy decides
        (
            IN_CALL,
            AttemptEnded(ended(Result.A_BUSY), ENDED),
            Change(
                S.DELAYED,
                {
                    "finish_result": None,
                    "finish_comment": "A busy",
                    "next_attempt": "2026-03-01 09:31:01",
                    "caller_attempts": 1,
                    "invalid_numbers": "[]",
                },
                NextStep(False, None, "A busy", ENDED + timedelta(seconds=60)),
            ),
        ),
        (
            IN_CALL,
            AttemptEnded(ended(Result.SUCCESS, a_answered=True), ENDED),
            Change(
                S.FINISHED,
                {
                    "finish_result": "success",
                    "finish_comment": "A and B connected",
                    "next_attempt": None,
                    "caller_attempts": 0,
                    "invalid_numbers": "[]",
                },
                NextStep(True, FinishResult.SUCCESS, "A and B connected", None),
            ),
        ),
        (
            IN_CALL,
            AttemptEnded(ended(Result.A_INVALID, invalid=("100",)), ENDED),
            Change(
                S.FINISHED,
                {
                    "finish_result": "failed",
                    "finish_comment": "A number invalid",
                    "next_attempt": None,
                    "caller_attempts": 1,
                    "invalid_numbers": '["100"]',
                },
                NextStep(True, FinishResult.FAILED, "A number invalid", None),
            ),
        ),
        (  # cancelled while in the call: the cancel already finished it
            TaskState(S.FINISHED, attempts_made=1, rules=THREE_TRIES, a_numbers=("100",)),
            AttemptEnded(ended(Result.A_BUSY), ENDED),
            None,
        ),
        # cancel: from anything unfinished, a call in progress included
        *(
            (
                TaskState(status),
                Cancelled(),
                Change(
                    S.FINISHED,
                    {
                        "finish_result": "failed",
                        "finish_comment": CANCELLED_COMMENT,
                        "next_attempt": None,
                    },
                ),
            )
            for status in (S.SCHEDULED, S.EXECUTED, S.DELAYED, S.DELAYED_CONCURRENT)
        ),
        (TaskState(S.FINISHED), Cancelled(), None),
        # held by a full queue, extension profile or PBX: stays due
        (
            TaskState(S.SCHEDULED),
            Held(HoldReason.CONCURRENCY),
            Change(S.DELAYED_CONCURRENT),
        ),
        (TaskState(S.DELAYED_CONCURRENT), Held(HoldReason.CONCURRENCY), None),
        (TaskState(S.EXECUTED), Held(HoldReason.CONCURRENCY), None),
        # held until a time: looked at again then (a closed calling-hours window)
        (
            TaskState(S.DELAYED_CONCURRENT, next_attempt=NOW_TEXT),
            Held(HoldReason.CONCURRENCY, LATER),
            Change(S.DELAYED_CONCURRENT, {"next_attempt": "2026-03-02 08:00:00"}),
        ),
        # calling hours closed: due again at the opening, no attempt used, and why
        (
            TaskState(S.DELAYED, attempts_made=1, next_attempt=NOW_TEXT),
            Held(HoldReason.INTERVAL, LATER, "calling hours closed"),
            Change(
                S.DELAYED_INTERVAL,
                {"next_attempt": "2026-03-02 08:00:00", "finish_comment": "calling hours closed"},
            ),
        ),
        # ... that never open again: out of the due tasks until the interval changes
        (
            TaskState(S.SCHEDULED, next_attempt=NOW_TEXT),
            Held(HoldReason.INTERVAL),
            Change(S.DELAYED_INTERVAL, {"next_attempt": None}),
        ),
        # ... freed (the interval changed): due now, looked at again
        (
            TaskState(S.DELAYED_INTERVAL),
            Held(HoldReason.INTERVAL, NOW),
            Change(S.DELAYED_INTERVAL, {"next_attempt": NOW_TEXT}),
        ),
        (TaskState(S.EXECUTED, attempts_made=1), Held(HoldReason.INTERVAL, LATER), None),
        # the answer-rate guard: out of the due tasks until it clears
        (
            TaskState(S.DELAYED_CONCURRENT, next_attempt=NOW_TEXT),
            Held(HoldReason.ASR, None, "held by the answer-rate guard"),
            Change(
                S.DELAYED_ASR,
                {"next_attempt": None, "finish_comment": "held by the answer-rate guard"},
            ),
        ),
        (TaskState(S.DELAYED_ASR), Held(HoldReason.ASR), None),
        (
            TaskState(S.DELAYED_ASR),
            Claimed("probe"),
            Change(S.EXECUTED, {"attempts_made": 1, "cdr": "probe", "next_attempt": None}),
        ),
        (
            TaskState(S.DELAYED_INTERVAL, next_attempt=NOW_TEXT),
            Edited(None),
            Change(S.SCHEDULED, {"next_attempt": NOW_TEXT}),
        ),
        # PUT: waits again as before any hold; a first attempt is due at its start time
        (
            TaskState(S.DELAYED_CONCURRENT, next_attempt=NOW_TEXT),
            Edited(LATER),
            Change(S.SCHEDULED, {"next_attempt": "2026-03-02 08:00:00"}),
        ),
        (
            TaskState(S.SCHEDULED, next_attempt="2030-01-01 00:00:00"),
            Edited(None),
            Change(S.SCHEDULED, {"next_attempt": NOW_TEXT}),
        ),
        (  # a retry keeps its pause, whatever start time the PUT names
            TaskState(S.DELAYED, attempts_made=1, next_attempt="2026-03-01 09:40:00"),
            Edited(LATER),
            Change(S.DELAYED, {"next_attempt": "2026-03-01 09:40:00"}),
        ),
        (TaskState(S.EXECUTED, attempts_made=1), Edited(None), None),
        (TaskState(S.FINISHED), Edited(None), None),
    ],
)
def test_each_event_changes_a_task_as_the_table_says(
    state: TaskState, event: Event, expected: Change | None
) -> None:
    assert next_state(state, event, NOW) == expected


EVERY_EVENT: list[Event] = [
    Claimed("u"),
    GivenBack(""),
    AttemptEnded(ended(Result.A_BUSY), ENDED),
    Cancelled(),
    Held(HoldReason.CONCURRENCY, LATER),
    Edited(None),
]


@pytest.mark.parametrize("status", list(TaskStatus))
@pytest.mark.parametrize("event", EVERY_EVENT, ids=lambda e: type(e).__name__)
def test_an_event_changes_a_task_only_from_the_statuses_it_allows(
    status: TaskStatus, event: Event
) -> None:
    state = TaskState(status, attempts_made=1, rules=THREE_TRIES, a_numbers=("100",))
    change = next_state(state, event, NOW)
    assert (change is not None) == (status in ALLOWED_FROM[type(event)])


def test_a_finished_task_never_changes_again() -> None:
    finished = TaskState(S.FINISHED, attempts_made=1, rules=THREE_TRIES, a_numbers=("100",))
    assert [next_state(finished, event, NOW) for event in EVERY_EVENT] == [None] * 6


@pytest.mark.parametrize("until", [None, LATER])
@pytest.mark.parametrize("reason", list(HoldReason))
def test_a_hold_written_to_many_tasks_at_once_is_what_it_is_for_each(
    reason: HoldReason, until: datetime | None
) -> None:
    # The store writes `hold()` guarded by `held_from()` in one statement.
    for status in TaskStatus:
        change = next_state(TaskState(status, next_attempt=NOW_TEXT), Held(reason, until), NOW)
        expected = hold(reason, until) if status in held_from(reason, until) else None
        assert change == expected, status


def test_invalid_numbers_stay_invalid_on_later_attempts() -> None:
    state = TaskState(
        S.EXECUTED,
        attempts_made=1,
        invalid_numbers=("200",),
        rules=THREE_TRIES,
        a_numbers=("100", "200", "300"),
    )
    change = next_state(state, AttemptEnded(ended(Result.A_INVALID, invalid=("300",)), ENDED), NOW)
    assert change is not None and change.status is S.DELAYED
    assert json.loads(str(change.columns["invalid_numbers"])) == ["200", "300"]
