"""What fits the limits, as tables: which queues and profiles are full, and which due
rows start, with this host's calls and the other hosts' (`elsewhere`)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from config import Settings
from daemon.holds import HoursGate
from daemon.limits import Running, admit, full_where
from daemon.store.due import Full

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SETTINGS = Settings(
    calls={"a_channel": "Local/{number}@phones", "max_concurrent": 3},
    extensions={7: {"max_concurrent": 1}},
)
IN_Q1 = Running(1, None)
IN_Q2_EXT7 = Running(2, 7)


@pytest.mark.parametrize(
    ("queues", "running", "elsewhere", "full"),
    [
        # nothing running: nothing full
        ({1: 2, 2: 2}, [], {}, Full(frozenset(), frozenset())),
        # this host's calls fill queue 1
        ({1: 2, 2: 2}, [IN_Q1, IN_Q1], {}, Full(frozenset({1}), frozenset())),
        # the other hosts' calls fill queue 1
        ({1: 2, 2: 2}, [], {1: 2}, Full(frozenset({1}), frozenset())),
        # one here and one elsewhere fill queue 1
        ({1: 2, 2: 2}, [IN_Q1], {1: 1}, Full(frozenset({1}), frozenset())),
        # other hosts' calls in a queue not looked at do not matter
        ({2: 2}, [], {1: 5}, Full(frozenset(), frozenset())),
        # a profile's limit holds per host: others' calls do not fill it
        ({1: 5, 2: 5}, [IN_Q2_EXT7], {2: 3}, Full(frozenset(), frozenset({7}))),
        # the PBX's limit is this host's: others' calls do not fill it...
        ({1: 9, 2: 9}, [IN_Q1], {1: 4, 2: 4}, Full(frozenset(), frozenset())),
        # ...this host's own do, and then every queue waits
        ({1: 9, 2: 9}, [IN_Q1] * 3, {}, Full(frozenset({1, 2}), frozenset())),
    ],
)
def test_full_where(
    queues: dict[int, int], running: list[Running], elsewhere: dict[int, int], full: Full
) -> None:
    assert full_where(queues, running, elsewhere, SETTINGS) == full


def due_row(task_id: int, queue: int, extension: int | None = None, **fields: Any) -> sqlite3.Row:
    params: dict[str, Any] = {"a_number": f"10{task_id}", "b_number": "200"}
    if extension is not None:
        params["extension_id"] = extension
    row = {
        "id": task_id,
        "scheduler_id": queue,
        "params": json.dumps(params),
        "status": "scheduled",
        "next_attempt": "2026-03-01 08:59:00",
        "start_time": None,
        "attempts_made": 0,
        "caller_attempts": "{}",
        "invalid_numbers": "[]",
        **fields,
    }
    return cast(sqlite3.Row, row)


ROWS = [
    due_row(1, queue=1),
    due_row(2, queue=1),
    due_row(3, queue=2, extension=7),
    due_row(4, queue=2, extension=7),
    due_row(5, queue=1, status="delayed_concurrent_task"),
]


@pytest.mark.parametrize(
    ("running", "elsewhere", "started", "blocked"),
    [
        # room everywhere: queue 1 takes two, profile 7 one; the PBX is then full
        ([], {}, [1, 2, 3], [4]),
        # other hosts' calls fill queue 1: only queue 2 starts, 1 and 2 wait as held
        # back by a limit (5 is marked so already)
        ([], {1: 2}, [3], [1, 2, 4]),
        # one call of queue 1 elsewhere: one of its tasks starts
        ([], {1: 1}, [1, 3], [2, 4]),
        # other hosts' calls in queue 2 leave profile 7's limit to this host
        ([], {2: 1}, [1, 2, 3], [4]),
        # this host's PBX is full: nothing starts, whoever's calls fill the queues
        ([IN_Q1, IN_Q1, IN_Q2_EXT7], {}, [], [1, 2, 3, 4]),
    ],
)
def test_admit(
    running: list[Running], elsewhere: dict[int, int], started: list[int], blocked: list[int]
) -> None:
    passed_over: list[int] = []
    gate = HoursGate({}, {}, by_destination=False, now=NOW)
    limits = {1: 2, 2: 5}

    admitted = list(admit(ROWS, SETTINGS, limits, running, elsewhere, passed_over, gate))

    assert [record.id for record, _ in admitted] == started
    assert passed_over == blocked
