"""Calling hours: open/closed and the next opening, as tables over explicit instants, and
as properties checked against a plain reading of the local wall clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from daemon.intervals import Hours, day_of_week, is_open, matches_day, next_closing, next_opening
from daemon.models import IntervalCondition, IntervalInput

NY = "America/New_York"
BERLIN = "Europe/Berlin"
TOKYO = "Asia/Tokyo"  # no DST


def hours(tz: str, *conditions: dict[str, Any]) -> Hours:
    return Hours(ZoneInfo(tz), [IntervalCondition.model_validate(c) for c in conditions])


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


WORKDAYS = {"start_dow": 2, "end_dow": 6, "start_time": "09:00:00", "end_time": "17:59:59"}

# (zone, conditions, now UTC, next opening UTC or None)
NEXT_OPENING = [
    # open now: the opening is now
    (NY, [WORKDAYS], "2026-12-07 15:00:00", "2026-12-07 15:00:00"),
    # Saturday in New York: Monday 09:00 EST
    (NY, [WORKDAYS], "2026-12-05 12:00:00", "2026-12-07 14:00:00"),
    # Friday 18:00 local is closed: the end's second is the last one open
    (NY, [WORKDAYS], "2026-12-04 23:00:00", "2026-12-07 14:00:00"),
    (NY, [WORKDAYS], "2026-12-04 22:59:59", "2026-12-04 22:59:59"),
    # the weekday is the local one: Monday 00:30 UTC is Sunday evening in New York
    (NY, [{"start_dow": 2, "end_dow": 2}], "2026-12-07 00:30:00", "2026-12-07 05:00:00"),
    # wrap-around: every day but Monday
    (BERLIN, [{"start_dow": 3, "end_dow": 1}], "2026-12-07 10:00:00", "2026-12-07 23:00:00"),
    (BERLIN, [{"start_dow": 3, "end_dow": 1}], "2026-12-08 10:00:00", "2026-12-08 10:00:00"),
    # month ends: the 31st does not exist in November, so December 31st is next
    (TOKYO, [{"start_mday": 31, "end_mday": 31}], "2026-11-01 00:00:00", "2026-12-30 15:00:00"),
    # a wrapping day-of-month range: 28th through 2nd
    (TOKYO, [{"start_mday": 28, "end_mday": 2}], "2026-02-03 00:00:00", "2026-02-27 15:00:00"),
    # February 29th: in 2028, not in 2027
    (
        TOKYO,
        [{"month": 2, "start_mday": 29, "end_mday": 29}],
        "2027-03-01 00:00:00",
        "2028-02-28 15:00:00",
    ),
    # ... and it is more than 366 days away from early 2027: never
    (TOKYO, [{"month": 2, "start_mday": 29, "end_mday": 29}], "2027-01-01 00:00:00", None),
    # shift pattern: 2 days on, 3 off, from Monday 2026-12-07 (local dates)
    (
        BERLIN,
        [{"sched_active_days": 2, "sched_skip_days": 3, "sched_start_date": "2026-12-07"}],
        "2026-12-09 12:00:00",
        "2026-12-11 23:00:00",
    ),
    # ... and nothing before its start date
    (
        BERLIN,
        [{"sched_active_days": 2, "sched_skip_days": 3, "sched_start_date": "2026-12-07"}],
        "2026-12-01 12:00:00",
        "2026-12-06 23:00:00",
    ),
    # datetimes override the other fields (start_dow 1 would say Sunday only)
    (
        BERLIN,
        [
            {
                "start_dow": 1,
                "end_dow": 1,
                "start_datetime": "2026-12-09 08:00:00",
                "end_datetime": "2026-12-09 10:00:00",
            }
        ],
        "2026-12-01 00:00:00",
        "2026-12-09 07:00:00",
    ),
    # a datetime window in the past never opens again
    (
        BERLIN,
        [{"start_datetime": "2025-01-01 00:00:00", "end_datetime": "2025-12-31 23:59:59"}],
        "2026-01-01 00:00:00",
        None,
    ),
    # spring forward in New York (2026-03-08, 02:00 -> 03:00): 02:30 is skipped, the
    # window opens at the change
    (
        NY,
        [{"start_time": "02:30:00", "end_time": "04:00:00"}],
        "2026-03-08 05:00:00",
        "2026-03-08 07:00:00",
    ),
    # a window wholly inside the skipped hour does not open that day
    (
        NY,
        [{"start_time": "02:10:00", "end_time": "02:50:00"}],
        "2026-03-08 05:00:00",
        "2026-03-09 06:10:00",
    ),
    # spring forward in Berlin (2026-03-29, 02:00 -> 03:00)
    (
        BERLIN,
        [{"start_time": "02:30:00", "end_time": "05:00:00"}],
        "2026-03-28 23:00:00",
        "2026-03-29 01:00:00",
    ),
    # fall back in Berlin (2026-10-25, 03:00 -> 02:00): 02:30 counts at its first time
    (
        BERLIN,
        [{"start_time": "02:30:00", "end_time": "05:00:00"}],
        "2026-10-24 23:00:00",
        "2026-10-25 00:30:00",
    ),
    # fall back in New York (2026-11-01, 02:00 -> 01:00)
    (
        NY,
        [{"start_time": "01:30:00", "end_time": "05:00:00"}],
        "2026-11-01 04:00:00",
        "2026-11-01 05:30:00",
    ),
    # several conditions: the earliest opening wins
    (
        TOKYO,
        [
            {"start_time": "20:00:00", "end_time": "21:00:00"},
            {"start_time": "10:00:00", "end_time": "11:00:00"},
        ],
        "2026-12-07 00:00:00",
        "2026-12-07 01:00:00",
    ),
]


@pytest.mark.parametrize(("tz", "conditions", "now", "expected"), NEXT_OPENING)
def test_next_opening(
    tz: str, conditions: list[dict[str, Any]], now: str, expected: str | None
) -> None:
    opening = next_opening(hours(tz, *conditions), utc(now))
    assert opening == (utc(expected) if expected else None)


# (zone, conditions, now UTC, when it closes)
NEXT_CLOSING = [
    (NY, [WORKDAYS], "2026-12-07 15:00:00", "2026-12-07 23:00:00"),
    # two conditions that touch at midnight are one window: 22:00 to 06:00
    (
        BERLIN,
        [
            {"start_time": "22:00:00", "end_time": "23:59:59"},
            {"start_time": "00:00:00", "end_time": "05:59:59"},
        ],
        "2026-12-07 22:00:00",
        "2026-12-08 05:00:00",
    ),
    # fall back in Berlin: the window ends at the first 02:30, not the repeated one
    (
        BERLIN,
        [{"start_time": "00:00:00", "end_time": "02:29:59"}],
        "2026-10-24 23:00:00",
        "2026-10-25 00:30:00",
    ),
]


@pytest.mark.parametrize(("tz", "conditions", "now", "expected"), NEXT_CLOSING)
def test_next_closing(tz: str, conditions: list[dict[str, Any]], now: str, expected: str) -> None:
    assert next_closing(hours(tz, *conditions), utc(now)) == utc(expected)


def test_an_interval_without_conditions_is_always_open() -> None:
    always = hours(TOKYO)
    assert is_open(always, utc("2026-12-07 00:00:00"))
    assert next_closing(always, utc("2026-12-07 00:00:00")) is None


def test_the_days_of_the_week_are_counted_from_sunday() -> None:
    assert [day_of_week(date(2026, 12, d)) for d in range(6, 13)] == [1, 2, 3, 4, 5, 6, 7]


# (condition, error location, words in the message)
INVALID = [
    ({"start_dow": 2}, "end_dow", "required with start_dow"),
    ({"end_mday": 2}, "start_mday", "required with end_mday"),
    ({"start_time": "09:00:00"}, "end_time", "required"),
    ({"start_datetime": "2026-01-01 00:00:00"}, "end_datetime", "required"),
    ({"sched_active_days": 2, "sched_skip_days": 1}, "sched_start_date", "required"),
    ({"start_dow": 0, "end_dow": 7}, "start_dow", "greater than or equal to 1"),
    ({"start_dow": 1, "end_dow": 8}, "end_dow", "less than or equal to 7"),
    ({"start_mday": 1, "end_mday": 32}, "end_mday", "less than"),
    ({"month": 13}, "month", "less than"),
    ({"start_time": "10:00:00", "end_time": "09:00:00"}, "end_time", "later than start_time"),
    ({"start_time": "10:00:00", "end_time": "10:00:00"}, "end_time", "later than start_time"),
    ({"start_time": "9:00", "end_time": "10:00:00"}, "start_time", "hh:mm:ss"),
    ({"start_time": "25:00:00", "end_time": "23:00:00"}, "start_time", "not a valid"),
    (
        {"start_datetime": "2026-01-01T00:00:00", "end_datetime": "2026-01-02 00:00:00"},
        "start_datetime",
        "YYYY-MM-DD HH:MM:SS",
    ),
    (
        {"start_datetime": "2026-01-02 00:00:00", "end_datetime": "2026-01-01 00:00:00"},
        "end_datetime",
        "not be before",
    ),
    ({"start_dow": "2", "end_dow": 3}, "start_dow", "integer"),
    (
        {"start_datetime": "9998-12-31 23:00:00", "end_datetime": "9999-12-31 23:59:59"},
        "end_datetime",
        "years 1970 to 9998",
    ),
    (
        {"sched_active_days": 1, "sched_skip_days": 1, "sched_start_date": "0001-01-01"},
        "sched_start_date",
        "years 1970 to 9998",
    ),
    ({"weekday": 2}, "weekday", "not permitted"),
]


@pytest.mark.parametrize(("condition", "field", "words"), INVALID)
def test_a_bad_condition_names_its_field(condition: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        IntervalInput.model_validate({"name": "x", "timezone": NY, "conditions": [condition]})
    (error,) = caught.value.errors()
    assert error["loc"] == ("conditions", 0, field)
    assert words in error["msg"]


@pytest.mark.parametrize("tz", ["Mars/Olympus", "", "../../etc/passwd", "EST5EDT "])
def test_an_unknown_zone_is_refused(tz: str) -> None:
    with pytest.raises(ValidationError) as caught:
        IntervalInput.model_validate({"name": "x", "timezone": tz})
    assert caught.value.errors()[0]["loc"] == ("timezone",)


def test_a_condition_reads_back_as_it_was_written() -> None:
    written = {
        "start_datetime": "2026-01-01 08:00:00",
        "end_datetime": "2026-01-01 09:00:00",
        "start_time": "08:00:00",
        "end_time": "09:00:00",
        "sched_active_days": 1,
        "sched_skip_days": 0,
        "sched_start_date": "2026-01-01",
    }
    dumped = IntervalCondition.model_validate(written).model_dump(mode="json", exclude_none=True)
    assert dumped == written


# --- properties ---------------------------------------------------------------------------

ZONES = [NY, BERLIN, TOKYO, "UTC", "Australia/Lord_Howe"]  # Lord Howe moves by 30 minutes


def _pair(lo: int, hi: int) -> st.SearchStrategy[tuple[int, int]]:
    return st.tuples(st.integers(lo, hi), st.integers(lo, hi))


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    cond: dict[str, Any] = {}
    if draw(st.booleans()):
        cond["start_dow"], cond["end_dow"] = draw(_pair(1, 7))
    if draw(st.booleans()):
        cond["start_mday"], cond["end_mday"] = draw(_pair(1, 31))
    if draw(st.integers(0, 4)) == 0:
        cond["month"] = draw(st.integers(1, 12))
    if draw(st.booleans()):
        start, end = sorted(
            draw(st.lists(st.integers(0, 86399), min_size=2, max_size=2, unique=True))
        )
        cond["start_time"] = str(time(start // 3600, start // 60 % 60, start % 60))
        cond["end_time"] = str(time(end // 3600, end // 60 % 60, end % 60))
    if draw(st.integers(0, 3)) == 0:
        cond["sched_active_days"] = draw(st.integers(1, 5))
        cond["sched_skip_days"] = draw(st.integers(0, 5))
        cond["sched_start_date"] = str(date(2026, 1, 1) + timedelta(days=draw(st.integers(0, 700))))
    if draw(st.integers(0, 5)) == 0:
        start_at = datetime(2026, 1, 1) + timedelta(minutes=draw(st.integers(0, 1_200_000)))
        cond["start_datetime"] = str(start_at)
        cond["end_datetime"] = str(start_at + timedelta(minutes=draw(st.integers(0, 100_000))))
    return cond


def wall_clock_open(hours: Hours, moment: datetime) -> bool:
    """The plain reading: what the local wall clock shows matches a condition."""
    wall = moment.astimezone(hours.zone).replace(tzinfo=None)
    for cond in hours.conditions:
        if cond.start_datetime is not None and cond.end_datetime is not None:
            if cond.start_datetime <= wall < cond.end_datetime + timedelta(seconds=1):
                return True
            continue
        if not matches_day(cond, wall.date()):
            continue
        if cond.start_time is None or cond.end_time is None:
            return True
        if cond.start_time <= wall.time() and wall.time() < _after(cond.end_time):
            return True
    return not hours.conditions


def _after(end: time) -> time:
    moment = datetime.combine(date.min, end) + timedelta(seconds=1)
    return moment.time() if moment.date() == date.min else time.max


def _unambiguous(tz: ZoneInfo, moment: datetime) -> bool:
    """No clock change within three hours: the wall clock reads this instant one way."""
    offsets = {(moment + timedelta(hours=h)).astimezone(tz).utcoffset() for h in (-3, 0, 3)}
    return len(offsets) == 1


moments = st.integers(0, 3 * 366 * 86400).map(
    lambda s: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=s)
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ZONES), st.lists(conditions(), max_size=3), moments)
def test_open_is_what_the_local_clock_shows_away_from_changes(
    tz: str, conds: list[dict[str, Any]], moment: datetime
) -> None:
    interval = hours(tz, *conds)
    if _unambiguous(interval.zone, moment):
        assert is_open(interval, moment) == wall_clock_open(interval, moment)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ZONES), st.lists(conditions(), max_size=3), moments)
def test_the_next_opening_is_the_first_open_moment(
    tz: str, conds: list[dict[str, Any]], moment: datetime
) -> None:
    interval = hours(tz, *conds)
    opening = next_opening(interval, moment)
    assert (opening == moment) == is_open(interval, moment)
    if opening is None:
        assert not is_open(interval, moment + timedelta(days=366))
        return
    assert moment <= opening <= moment + timedelta(days=366)
    assert is_open(interval, opening)
    if opening > moment:
        # closed from now up to the opening
        step = (opening - moment) / 7
        assert not any(is_open(interval, moment + step * i) for i in range(7))
        assert not is_open(interval, opening - timedelta(seconds=1))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ZONES), st.lists(conditions(), min_size=1, max_size=3), moments)
def test_an_open_interval_closes_at_its_first_closed_moment(
    tz: str, conds: list[dict[str, Any]], moment: datetime
) -> None:
    interval = hours(tz, *conds)
    if not is_open(interval, moment):
        return
    closing = next_closing(interval, moment)
    if closing is None:
        return
    assert closing > moment
    assert not is_open(interval, closing)
    assert is_open(interval, closing - timedelta(seconds=1))
