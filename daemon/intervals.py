"""Calling hours: whether a time interval (the hosted platform's "Time intervals") is
open at an instant, when it next opens and when it next closes. Pure functions of the
conditions, an IANA zone and a UTC instant; the zone rules come from `zoneinfo`.

Each condition gives at most one span of real time per local day (or one span for a
`start_datetime`/`end_datetime` condition). A span runs from its start's first instant
to just past its end's second: a local time that a spring-forward change skips opens
the span at the change, and a local time that a fall-back change repeats counts once,
at its first occurrence.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Protocol
from zoneinfo import ZoneInfo, available_timezones

HORIZON = timedelta(days=366)  # "never opens again" means not within this
_SECOND = timedelta(seconds=1)
_DAY = timedelta(days=1)


class Condition(Protocol):
    """The fields of one condition (daemon.models.IntervalCondition); None = not given."""

    @property
    def start_dow(self) -> int | None: ...
    @property
    def end_dow(self) -> int | None: ...
    @property
    def start_mday(self) -> int | None: ...
    @property
    def end_mday(self) -> int | None: ...
    @property
    def month(self) -> int | None: ...
    @property
    def start_time(self) -> time | None: ...
    @property
    def end_time(self) -> time | None: ...
    @property
    def start_datetime(self) -> datetime | None: ...
    @property
    def end_datetime(self) -> datetime | None: ...
    @property
    def sched_active_days(self) -> int | None: ...
    @property
    def sched_skip_days(self) -> int | None: ...
    @property
    def sched_start_date(self) -> date | None: ...


@dataclass(frozen=True)
class Hours:
    """An interval as evaluated: its zone and its conditions (none = always open)."""

    zone: ZoneInfo
    conditions: Sequence[Condition]


@dataclass(frozen=True)
class State:
    """Open or closed at an instant, and until when (None: not within the horizon)."""

    open: bool
    until: datetime | None


@cache
def known_zones() -> frozenset[str]:
    """Every IANA name this machine's zone data has (the tzdata package ships one)."""
    return frozenset(available_timezones())


def day_of_week(day: date) -> int:
    """1 = Sunday ... 7 = Saturday, as the platform counts."""
    return (day.weekday() + 1) % 7 + 1


def _in_range(value: int, start: int | None, end: int | None) -> bool:
    """start..end inclusive; start > end wraps around (3..1 = every day but Monday)."""
    if start is None or end is None:
        return True
    return start <= value <= end if start <= end else value >= start or value <= end


def matches_day(cond: Condition, day: date) -> bool:
    """Whether the day fields of a condition (no times, no datetimes) allow `day`."""
    if not _in_range(day_of_week(day), cond.start_dow, cond.end_dow):
        return False
    if not _in_range(day.day, cond.start_mday, cond.end_mday):
        return False
    if cond.month is not None and day.month != cond.month:
        return False
    if cond.sched_start_date is not None and cond.sched_active_days is not None:
        # N days on, M days off, counted from the start date; nothing before it.
        offset = (day - cond.sched_start_date).days
        cycle = cond.sched_active_days + (cond.sched_skip_days or 0)
        if offset < 0 or offset % cycle >= cond.sched_active_days:
            return False
    return True


def instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The first UTC instant at which the local clock in `tz` shows `wall` or later: the
    first occurrence of a repeated time, the moment of the change for a skipped one."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first
    # Skipped: fold=0 reads it with the offset before the change (an instant after the
    # change), fold=1 with the one after (an instant before it); the change lies between.
    before = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    lo, hi = int(min(before, first).timestamp()), int(max(before, first).timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _day_span(cond: Condition, day: date, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    if not matches_day(cond, day):
        return None
    if cond.start_time is None or cond.end_time is None:
        start, end = datetime.combine(day, time()), datetime.combine(day + _DAY, time())
    else:
        # The end's own second is open: 23:59:59 reaches midnight.
        start = datetime.combine(day, cond.start_time)
        end = datetime.combine(day, cond.end_time) + _SECOND
    return _span(instant(start, tz), instant(end, tz))


def _span(start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
    # Empty when a spring-forward change skips all of it.
    return (start, end) if start < end else None


def _datetime_span(cond: Condition, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    if cond.start_datetime is None or cond.end_datetime is None:
        return None
    return _span(instant(cond.start_datetime, tz), instant(cond.end_datetime + _SECOND, tz))


def _spans_of_day(hours: Hours, day: date) -> Iterator[tuple[datetime, datetime]]:
    for cond in hours.conditions:
        if cond.start_datetime is None:
            span = _day_span(cond, day, hours.zone)
            if span is not None:
                yield span


def _fixed_spans(hours: Hours) -> list[tuple[datetime, datetime]]:
    spans = (_datetime_span(c, hours.zone) for c in hours.conditions)
    return [span for span in spans if span is not None]


def _spans_around(hours: Hours, moment: datetime) -> Iterable[tuple[datetime, datetime]]:
    """Every span that may hold `moment`: those of its local day and the days beside it
    (a repeated midnight puts a moment of one local date in the next day's span)."""
    today = moment.astimezone(hours.zone).date()
    for day in (today - _DAY, today, today + _DAY):
        yield from _spans_of_day(hours, day)
    yield from _fixed_spans(hours)


def _holding(hours: Hours, moment: datetime) -> datetime | None:
    """The latest end of the spans that hold `moment`, None if none does."""
    ends = [end for start, end in _spans_around(hours, moment) if start <= moment < end]
    return max(ends, default=None)


def is_open(hours: Hours, moment: datetime) -> bool:
    """Whether any condition matches at `moment`; an interval without conditions is
    always open."""
    return not hours.conditions or _holding(hours, moment) is not None


def next_opening(hours: Hours, moment: datetime) -> datetime | None:
    """The first instant at or after `moment` at which the interval is open (`moment`
    itself when open); None when it does not open within HORIZON."""
    if is_open(hours, moment):
        return moment
    limit = moment + HORIZON
    best = min((s for s, e in _fixed_spans(hours) if e > moment), default=None)
    best = max(best, moment) if best is not None else None
    day = moment.astimezone(hours.zone).date() - _DAY
    while instant(datetime.combine(day, time()), hours.zone) <= min(best or limit, limit):
        for start, end in _spans_of_day(hours, day):
            if end > moment and (best is None or start < best):
                best = max(start, moment)
        day += _DAY
    return best if best is not None and best <= limit else None


def next_closing(hours: Hours, moment: datetime) -> datetime | None:
    """The first instant at or after `moment` at which the interval is closed, spans
    that touch or overlap taken together; None when it stays open through HORIZON."""
    if not hours.conditions:
        return None
    limit = moment + HORIZON
    at = moment
    while at <= limit:
        end = _holding(hours, at)
        if end is None:
            return at
        at = end
    return None


def state(hours: Hours, moment: datetime) -> State:
    """Open or closed at `moment` and when that changes next."""
    if is_open(hours, moment):
        return State(True, next_closing(hours, moment))
    return State(False, next_opening(hours, moment))
