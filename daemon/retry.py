"""The retry policy: given a task's rules, what its attempts so far did, and how the last
attempt ended, what happens next. Pure: plain values in, a plain value out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ami.outcome import COMMENTS, Outcome, Result
from daemon.models import FinishResult

# An invalid B number is as final as running out of A numbers: no retry can help.
_FINAL = {Result.B_INVALID, Result.REJECTED, Result.CANCELLED}


@dataclass(frozen=True)
class RetryRules:
    try_count: int
    try_again_pause: int
    try_count_caller: int = 0
    try_again_pause_caller: int | None = None


@dataclass(frozen=True)
class Progress:
    """Attempts made so far, the last one included."""

    attempts_made: int
    caller_attempts: int  # attempts in which no A number answered
    a_numbers_left: Sequence[str]  # A numbers not (yet) known to be invalid


@dataclass(frozen=True)
class NextStep:
    finished: bool
    finish_result: FinishResult | None
    comment: str
    next_attempt: datetime | None


def progress_after(before: Progress, outcome: Outcome) -> Progress:
    """Count the attempt that just ended and drop the numbers found invalid."""
    invalid = set(outcome.invalid_numbers)
    return Progress(
        attempts_made=before.attempts_made,
        caller_attempts=before.caller_attempts + (0 if outcome.a_answered else 1),
        a_numbers_left=[n for n in before.a_numbers_left if n not in invalid],
    )


def next_step(rules: RetryRules, progress: Progress, outcome: Outcome, ended: datetime) -> NextStep:
    """`progress` already counts the attempt that ended at `ended` with `outcome`."""
    if outcome.success:
        return NextStep(True, FinishResult.SUCCESS, COMMENTS[Result.SUCCESS], None)

    def failed(comment: str = outcome.comment) -> NextStep:
        return NextStep(True, FinishResult.FAILED, comment, None)

    if outcome.result in _FINAL:
        return failed()
    if not progress.a_numbers_left:
        return failed(COMMENTS[Result.A_INVALID])
    if progress.attempts_made >= rules.try_count:
        return failed()
    if (
        not outcome.a_answered
        and rules.try_count_caller > 0
        and progress.caller_attempts >= rules.try_count_caller
    ):
        return failed()
    pause = rules.try_again_pause
    if not outcome.a_answered and rules.try_again_pause_caller is not None:
        pause = rules.try_again_pause_caller
    return NextStep(False, None, outcome.comment, ended + timedelta(seconds=pause))


def pick(numbers: Sequence[str], attempt_no: int) -> str | None:
    """attempts_src/dst_ani_numbers: entry n for attempt n (from 1); the last repeats."""
    if not numbers:
        return None
    return numbers[min(attempt_no, len(numbers)) - 1]
