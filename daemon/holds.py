"""Why a due task waits instead of starting: its queue's calling hours are closed
(`delayed_interval`) or the answer-rate guard of its profile tripped (`delayed_asr`).
The decisions are pure; `QueueHours` remembers each queue's open/closed state until it
changes, so a pass of the scheduler evaluates no interval that has not changed, and
`HoursGate` sorts the due rows of one pass into those whose hours are open and those
to hold.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo

from daemon.asr import GuardState, Profile
from daemon.destination_zone import ZoneChoice, destination_zone, interval_zone
from daemon.intervals import Hours, State, state
from daemon.lifecycle import Held, HoldReason
from daemon.models import format_time
from daemon.store.intervals import stored_hours


def interval_hold(opening: datetime | None, zone: str) -> Held:
    """Closed calling hours: due again at the opening (never: until the interval
    changes)."""
    if opening is None:
        comment = f"calling hours ({zone}) do not open within 366 days"
    else:
        comment = f"calling hours ({zone}) closed until {format_time(opening)} UTC"
    return Held(HoldReason.INTERVAL, opening, comment)


def asr_hold(profile: Profile, guard: GuardState) -> Held:
    """A tripped answer-rate guard: held until it clears (probes excepted)."""
    name = "the default profile" if profile is None else f"extension profile {profile}"
    comment = (
        f"held by the answer-rate guard of {name}: {guard.answered} of {guard.attempts} "
        f"attempts answered, below {guard.min_ratio:.0%}"
    )
    return Held(HoldReason.ASR, None, comment)


def profile_key(profile: Profile) -> int | str:
    """A profile as the store matches it against a task's extension_id ('' = none)."""
    return "" if profile is None else profile


class QueueInterval(NamedTuple):
    """A queue's calling hours as the scheduler reads them with the queue limits."""

    interval_id: int
    timezone: str
    conditions: str  # as stored: a change of the interval is a change of this text


@dataclass
class _Seen:
    interval: QueueInterval | None
    state: State


@lru_cache(maxsize=4096)
def _hours_in(timezone: str, conditions: str, zone: str) -> Hours:
    return Hours(ZoneInfo(zone), stored_hours(timezone, conditions).conditions)


def destination_hours(
    interval: QueueInterval, a_number: str, now: datetime
) -> tuple[ZoneChoice, State]:
    """The zone that decides for a task by its A number, and the hours' state in it."""
    choice = destination_zone(a_number, interval.timezone)
    hours = _hours_in(interval.timezone, interval.conditions, choice.zone)
    return choice, state(hours, now)


@dataclass(frozen=True)
class HoursLook:
    """What a look at every queue's interval found."""

    closed: dict[int, State]  # queue id -> its state; `until` is the opening
    changed: list[int]  # interval new or changed (a PUT, a restart): held tasks are freed
    closing: list[int]  # closed now, open (or unknown) at the last look


class QueueHours:
    """The open/closed state of every queue's interval, kept until it changes."""

    def __init__(self) -> None:
        self._seen: dict[int, _Seen] = {}

    def look(self, queues: Iterable[tuple[int, QueueInterval | None]], now: datetime) -> HoursLook:
        closed: dict[int, State] = {}
        changed: list[int] = []
        closing: list[int] = []
        present = set()
        for queue_id, interval in queues:
            present.add(queue_id)
            seen = self._seen.get(queue_id)
            if seen is None or seen.interval != interval:
                changed.append(queue_id)
                seen = None
            was_open = seen is None or seen.state.open
            if seen is None or (seen.state.until is not None and now >= seen.state.until):
                current = (
                    State(True, None)
                    if interval is None
                    else state(stored_hours(interval.timezone, interval.conditions), now)
                )
                seen = self._seen[queue_id] = _Seen(interval, current)
            if not seen.state.open:
                closed[queue_id] = seen.state
                if was_open:
                    closing.append(queue_id)
        for gone in self._seen.keys() - present:
            del self._seen[gone]
        return HoursLook(closed, changed, closing)


@dataclass
class HoursGate:
    """Calling hours at the moment rows would be claimed: the queues' intervals, which
    of them are closed, and the rows held for them in this pass."""

    intervals: dict[int, QueueInterval]
    closed: dict[int, State]
    by_destination: bool
    now: datetime
    held: list[tuple[int, Held]] = field(default_factory=list)

    def admit(self, row: sqlite3.Row) -> tuple[bool, ZoneChoice | None]:
        """Whether the row's calling hours are open (else it is held), and the zone
        that decided and why (None for a queue without an interval)."""
        queue_id = row["scheduler_id"]
        interval = self.intervals.get(queue_id)
        if interval is None:
            return True, None
        closed = self.closed.get(queue_id)
        if closed is not None:
            self.held.append((row["id"], interval_hold(closed.until, interval.timezone)))
            return False, None
        if not self.by_destination:
            return True, interval_zone(interval.timezone)
        a_number = json.loads(row["params"])["a_number"]
        choice, hours = destination_hours(interval, a_number, self.now)
        if not hours.open:
            self.held.append((row["id"], interval_hold(hours.until, choice.zone)))
        return hours.open, choice


def queue_interval(row: sqlite3.Row) -> QueueInterval | None:
    """A queue's interval from a row of select_queue_limits."""
    if row["interval_id"] is None:
        return None
    return QueueInterval(row["interval_id"], row["interval_timezone"], row["interval_conditions"])
