"""The answer-rate guard: its decision as a table, and the sliding window over time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ami.outcome import Result
from config import Settings
from config.settings import AsrGuardSettings
from daemon.asr import AsrGuard, counts_as, guard_tripped

CFG = AsrGuardSettings(min_ratio=0.3, window=1800, min_attempts=10, probe_interval=60)
T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)

# (settings, attempts, answered, tripped before, tripped after)
DECISIONS = [
    (CFG, 10, 2, False, True),  # 20 % of 10: trips
    (CFG, 10, 3, False, False),  # exactly the minimum ratio: fine
    (CFG, 9, 0, False, False),  # too few attempts to judge
    (CFG, 1, 0, False, False),  # one failure of one contact never trips it
    (CFG, 0, 0, False, False),
    (CFG, 10, 2, True, True),
    (CFG, 10, 3, True, False),  # back at the minimum: clears
    (CFG, 3, 1, True, False),  # a small window that recovered clears too
    (CFG, 3, 0, True, True),  # ... one that did not, does not
    (CFG, 0, 0, True, True),  # nothing to judge by: the next probe decides
    (CFG.model_copy(update={"min_ratio": 0.0}), 100, 0, False, False),  # off
    (CFG.model_copy(update={"min_ratio": 0.0}), 100, 0, True, False),  # switched off
]


@pytest.mark.parametrize(("cfg", "attempts", "answered", "before", "after"), DECISIONS)
def test_guard_decision(
    cfg: AsrGuardSettings, attempts: int, answered: int, before: bool, after: bool
) -> None:
    assert guard_tripped(cfg, attempts, answered, before) is after


COUNTED = [
    (Result.SUCCESS, True, True),
    (Result.B_BUSY, True, True),
    (Result.A_HUNG_UP, True, True),
    (Result.A_BUSY, False, False),
    (Result.A_NO_ANSWER, False, False),
    (Result.A_CONGESTION, False, False),
    (Result.A_INVALID, False, False),
    (Result.CANCELLED, True, None),
    (Result.CANCELLED, False, None),
    (Result.REJECTED, False, None),
    (Result.INTERRUPTED, False, None),
    (None, False, None),  # given back: no Originate was sent
]


@pytest.mark.parametrize(("result", "a_answered", "expected"), COUNTED)
def test_what_counts_in_the_ratio(
    result: Result | None, a_answered: bool, expected: bool | None
) -> None:
    assert counts_as(result, a_answered) is expected


def guard(**asr: float) -> AsrGuard:
    cfg = {"min_ratio": 0.3, "min_attempts": 10, "window": 1800, "probe_interval": 60, **asr}
    settings = Settings(
        calls={"asr_guard": cfg}, extensions={101: {"asr_guard": {"min_ratio": 0.0}}}
    )
    return AsrGuard(lambda: settings)


def test_the_guard_trips_on_distinct_attempts_only() -> None:
    asr = guard()
    for _ in range(20):  # one attempt reported again and again
        assert asr.record(None, "call-1", T0, False) is None
    assert asr.state(None).attempts == 1
    changes = [asr.record(None, f"call-{i}", T0, False) for i in range(2, 11)]
    assert [c.tripped for c in changes if c is not None] == [True]
    assert asr.held(T0)[0] == {None}


def test_profiles_have_windows_and_settings_of_their_own() -> None:
    asr = guard()
    for i in range(30):
        asr.record(101, f"ext-{i}", T0, False)  # its guard is off
    for i in range(9):
        asr.record(None, f"default-{i}", T0, False)
    assert asr.held(T0)[0] == set()
    assert asr.state(101).attempts == 30
    assert list(asr.states()) == [None]


def test_the_guard_clears_when_probes_bring_the_ratio_back() -> None:
    asr = guard()
    for i in range(10):
        asr.record(None, f"bad-{i}", T0, False)
    assert not asr.may_probe(None, T0 + timedelta(seconds=59))
    assert asr.may_probe(None, T0 + timedelta(seconds=60))
    asr.probed(None, T0 + timedelta(seconds=60))
    assert not asr.may_probe(None, T0 + timedelta(seconds=61))
    assert asr.next_probe(None, T0 + timedelta(seconds=61)) == T0 + timedelta(seconds=120)
    changes = [
        asr.record(None, f"good-{i}", T0 + timedelta(seconds=60 * i), True) for i in range(1, 6)
    ]
    # 4 answered of 14 is below 30 %, 5 of 15 is not
    assert [c is not None and not c.tripped for c in changes] == [False] * 4 + [True]


def test_old_attempts_leave_the_window() -> None:
    asr = guard()
    for i in range(10):
        asr.record(None, f"bad-{i}", T0, False)
    held, changes = asr.held(T0 + timedelta(seconds=1801))
    # the window is empty: still held until a probe answers
    assert (held, changes, asr.state(None).attempts) == ({None}, [], 0)
    change = asr.record(None, "probe", T0 + timedelta(seconds=1802), True)
    assert change is not None and not change.tripped
    assert asr.state(None).ratio == 1.0
