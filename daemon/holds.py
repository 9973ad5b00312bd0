"""Why a due task waits instead of starting: its queue's calling hours are closed
(`delayed_interval`) or the answer-rate guard of its profile tripped (`delayed_asr`).
The decisions are pure; `QueueHours` remembers each queue's open/closed state until it
changes, so a pass of the scheduler evaluates no interval that has not changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
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


@dataclass(frozen=True)
class QueueInterval:
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


def task_hours(
    interval: QueueInterval, a_number: str, by_destination: bool, now: datetime
) -> tuple[ZoneChoice, State]:
    """The zone that decides for one task and the hours' state in it."""
    choice = (
        destination_zone(a_number, interval.timezone)
        if by_destination
        else interval_zone(interval.timezone)
    )
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
