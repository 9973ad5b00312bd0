"""The retry policy, as a table and as properties over any sequence of attempts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ami.outcome import COMMENTS, Outcome, Result
from daemon.models import FinishResult
from daemon.retry import NextStep, Progress, RetryRules, next_step, pick, progress_after

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
A_ANSWERED_AT = T0 - timedelta(seconds=20)


def outcome(result: Result, *, a_answered: bool = False, invalid: tuple[str, ...] = ()) -> Outcome:
    return Outcome(
        result=result,
        comment=COMMENTS[result],
        a_answer_time=A_ANSWERED_AT if a_answered else None,
        end_time=T0,
        invalid_numbers=invalid,
    )


def step_after(
    rules: RetryRules,
    result: Outcome,
    *,
    attempts: int = 1,
    caller: int = 0,
    numbers: tuple[str, ...] = ("100",),
) -> NextStep:
    before = Progress(attempts_made=attempts, caller_attempts=caller, a_numbers_left=numbers)
    return next_step(rules, progress_after(before, result), result, T0)


@pytest.mark.parametrize(
    ("rules", "result", "attempts", "expected"),
    [
        # success ends the task whatever is left
        (
            RetryRules(3, 60),
            outcome(Result.SUCCESS, a_answered=True),
            1,
            NextStep(True, FinishResult.SUCCESS, "A and B connected", None),
        ),
        # a busy A is retried after the pause
        (
            RetryRules(3, 60),
            outcome(Result.A_BUSY),
            1,
            NextStep(False, None, "A busy", T0 + timedelta(seconds=60)),
        ),
        # the last attempt failing finishes the task with its reason
        (
            RetryRules(3, 60),
            outcome(Result.B_NO_ANSWER, a_answered=True),
            3,
            NextStep(True, FinishResult.FAILED, "B did not answer", None),
        ),
        # the caller pause applies only when no A answered
        (
            RetryRules(3, 60, 0, 5),
            outcome(Result.A_NO_ANSWER),
            1,
            NextStep(False, None, "A did not answer", T0 + timedelta(seconds=5)),
        ),
        (
            RetryRules(3, 60, 0, 5),
            outcome(Result.B_BUSY, a_answered=True),
            1,
            NextStep(False, None, "B busy", T0 + timedelta(seconds=60)),
        ),
        # an interrupted call is a failed attempt with the normal pause
        (
            RetryRules(2, 30),
            outcome(Result.INTERRUPTED),
            1,
            NextStep(False, None, "interrupted", T0 + timedelta(seconds=30)),
        ),
        # a rejected call (603 Decline, 403 Forbidden) is retried: a person who
        # declines now may answer later; A's rejection uses the caller pause
        (
            RetryRules(3, 60, 0, 5),
            outcome(Result.A_REJECTED),
            1,
            NextStep(False, None, "A rejected", T0 + timedelta(seconds=5)),
        ),
        (
            RetryRules(3, 60, 0, 5),
            outcome(Result.B_REJECTED, a_answered=True),
            1,
            NextStep(False, None, "B rejected", T0 + timedelta(seconds=60)),
        ),
        # an invalid B number is not tried again
        (
            RetryRules(5, 30),
            outcome(Result.B_INVALID, a_answered=True),
            1,
            NextStep(True, FinishResult.FAILED, "B number invalid", None),
        ),
    ],
)
def test_next_step_table(
    rules: RetryRules, result: Outcome, attempts: int, expected: NextStep
) -> None:
    assert step_after(rules, result, attempts=attempts) == expected


def test_caller_budget_runs_out_before_try_count() -> None:
    rules = RetryRules(try_count=10, try_again_pause=60, try_count_caller=2)
    first = step_after(rules, outcome(Result.A_BUSY), attempts=1, caller=0)
    second = step_after(rules, outcome(Result.A_BUSY), attempts=2, caller=1)
    assert not first.finished
    assert second == NextStep(True, FinishResult.FAILED, "A busy", None)


def test_answered_attempts_do_not_use_the_caller_budget() -> None:
    rules = RetryRules(try_count=10, try_again_pause=60, try_count_caller=1)
    step = step_after(rules, outcome(Result.B_BUSY, a_answered=True), attempts=3, caller=0)
    assert not step.finished


def test_invalid_numbers_are_dropped_and_the_last_one_finishes_the_task() -> None:
    rules = RetryRules(try_count=5, try_again_pause=60)
    before = Progress(attempts_made=1, caller_attempts=0, a_numbers_left=("100", "200"))
    one_invalid = outcome(Result.A_BUSY, invalid=("100",))
    after = progress_after(before, one_invalid)
    assert list(after.a_numbers_left) == ["200"]
    assert not next_step(rules, after, one_invalid, T0).finished

    all_invalid = outcome(Result.A_INVALID, invalid=("200",))
    final = progress_after(after, all_invalid)
    assert next_step(rules, final, all_invalid, T0) == NextStep(
        True, FinishResult.FAILED, "A number invalid", None
    )


@pytest.mark.parametrize(
    ("numbers", "attempt", "expected"),
    [([], 1, None), (["1"], 3, "1"), (["1", "2", "3"], 2, "2"), (["1", "2"], 9, "2")],
)
def test_ani_lists_pick_by_attempt_and_repeat_the_last(
    numbers: list[str], attempt: int, expected: str | None
) -> None:
    assert pick(numbers, attempt) == expected


FAILURES = [r for r in Result if r is not Result.SUCCESS]


@st.composite
def task_lives(draw: st.DrawFn) -> tuple[RetryRules, list[Outcome]]:
    rules = RetryRules(
        try_count=draw(st.integers(1, 8)),
        try_again_pause=draw(st.integers(0, 600)),
        try_count_caller=draw(st.integers(0, 4)),
        try_again_pause_caller=draw(st.none() | st.integers(0, 600)),
    )
    results = draw(
        st.lists(
            st.builds(
                lambda r, answered: outcome(r, a_answered=answered),
                st.sampled_from(list(Result)),
                st.booleans(),
            ),
            min_size=60,
            max_size=60,
        )
    )
    return rules, results


@given(task_lives())
def test_every_life_ends_finished_within_try_count_and_never_before_the_pause(
    life: tuple[RetryRules, list[Outcome]],
) -> None:
    rules, outcomes = life
    progress = Progress(attempts_made=0, caller_attempts=0, a_numbers_left=("100",))
    now = T0
    for made, result in enumerate(outcomes, start=1):
        progress = Progress(made, progress.caller_attempts, progress.a_numbers_left)
        progress = progress_after(progress, result)
        step = next_step(rules, progress, result, now)
        assert made <= rules.try_count
        if step.finished:
            assert step.finish_result is (
                FinishResult.SUCCESS if result.result is Result.SUCCESS else FinishResult.FAILED
            )
            return
        assert step.next_attempt is not None
        pause = rules.try_again_pause
        if not result.a_answered and rules.try_again_pause_caller is not None:
            pause = rules.try_again_pause_caller
        assert step.next_attempt >= now + timedelta(seconds=pause)
        now = step.next_attempt
    raise AssertionError("the task never finished")
