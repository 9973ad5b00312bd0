"""What a look at every queue's calling hours finds, pass after pass."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from daemon.holds import QueueHours, QueueInterval, interval_hold
from daemon.lifecycle import HoldReason

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)  # a Sunday
OFFICE = json.dumps([{"start_time": "10:00:00", "end_time": "10:59:59"}])
ALWAYS = json.dumps([])


def test_a_queue_is_looked_at_again_only_when_its_state_may_have_changed() -> None:
    hours = QueueHours()
    office = QueueInterval(1, "UTC", OFFICE)

    first = hours.look([(7, office), (8, None)], T0)
    assert (first.changed, first.closing, list(first.closed)) == ([7, 8], [7], [7])
    assert first.closed[7].until == T0 + timedelta(hours=1)

    again = hours.look([(7, office), (8, None)], T0 + timedelta(minutes=30))
    assert (again.changed, again.closing, list(again.closed)) == ([], [], [7])

    opened = hours.look([(7, office), (8, None)], T0 + timedelta(hours=1))
    assert (opened.changed, opened.closing, opened.closed) == ([], [], {})

    closed_again = hours.look([(7, office)], T0 + timedelta(hours=2))
    assert (closed_again.closing, list(closed_again.closed)) == ([7], [7])


def test_a_changed_interval_is_a_change_of_its_queue() -> None:
    hours = QueueHours()
    hours.look([(7, QueueInterval(1, "UTC", OFFICE))], T0)

    changed = hours.look([(7, QueueInterval(1, "UTC", ALWAYS))], T0)

    assert (changed.changed, changed.closed) == ([7], {})


def test_a_hold_for_calling_hours_says_until_when() -> None:
    opening = T0 + timedelta(hours=1)
    assert interval_hold(opening, "UTC").reason is HoldReason.INTERVAL
    assert interval_hold(opening, "UTC").comment == (
        "calling hours (UTC) closed until 2026-03-01 10:00:00 UTC"
    )
    assert interval_hold(None, "UTC").comment == "calling hours (UTC) do not open within 366 days"
