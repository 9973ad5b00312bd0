"""What fits the limits now: the PBX's `calls.max_concurrent`, each queue's
`concurrent_task_limit` and each extension profile's `max_concurrent`.

The PBX's limit and a profile's hold per host (each protects the PBX it dials through)
and count this host's calls. A queue's limit holds over every host of a shared store:
it counts this host's calls and the other hosts' (`elsewhere`, none on SQLite). The claim
counts the queue again under its row's lock, so the limit holds even when `elsewhere` is
a second old; what these decisions add is that a task held back by other hosts' calls
shows `delayed_concurrent_task` and is not claimed in vain.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from config import Settings
from daemon.holds import HoursGate
from daemon.models import TaskStatus, parse_time
from daemon.plan import profile_for
from daemon.store.attempts import TaskRecord, task_record
from daemon.store.due import Full


@dataclass(frozen=True)
class Running:
    """Where a call of this host counts."""

    scheduler_id: int
    extension_id: int | None


def calls_per_queue(running: Collection[Running], elsewhere: Mapping[int, int]) -> Counter[int]:
    """Each queue's calls: this host's and the other hosts'."""
    counted = Counter(r.scheduler_id for r in running)
    counted.update(elsewhere)
    return counted


def full_where(
    queues: Mapping[int, int],
    running: Collection[Running],
    elsewhere: Mapping[int, int],
    settings: Settings,
) -> Full:
    """Where nothing more may start: which of `queues` (id -> limit), and which
    extension profiles."""
    if len(running) >= settings.calls.max_concurrent:
        return Full(frozenset(queues), frozenset())  # the PBX: every queue waits
    per_queue = calls_per_queue(running, elsewhere)
    per_extension = Counter(r.extension_id for r in running)
    return Full(
        frozenset(qid for qid, limit in queues.items() if per_queue[qid] >= limit),
        frozenset(
            ext
            for ext, n in per_extension.items()
            if ext is not None
            and (limit := profile_for(settings, ext).max_concurrent) is not None
            and n >= limit
        ),
    )


def admit(
    rows: list[sqlite3.Row],
    settings: Settings,
    queue_limits: Mapping[int, int],
    running: Collection[Running],
    elsewhere: Mapping[int, int],
    blocked: list[int],
    gate: HoursGate,
) -> Iterator[tuple[TaskRecord, datetime]]:
    """The due rows that fit the limits of the PBX, their queue and their extension, in
    order, each with its due time; the ids of those held back by a limit (and not marked
    so yet) are added to `blocked` as they are passed over, those whose calling hours
    are closed to the gate's holds."""
    if not rows:
        return
    per_queue = calls_per_queue(running, elsewhere)
    per_extension = Counter(r.extension_id for r in running)
    in_flight = len(running)
    extension_limit = cache(lambda ext: profile_for(settings, ext).max_concurrent)
    for row in rows:
        hours_open, zone = gate.admit(row)
        if not hours_open:
            continue
        # While the PBX has room: only the extension is needed to check the limits, and
        # the task is read in full (and validated) only if it starts. Once it is full,
        # no later row starts either and its params are not read: under load a pass
        # finds one or two free slots and a batch of due rows to hold back.
        if in_flight < settings.calls.max_concurrent:
            ext = json.loads(row["params"]).get("extension_id")
            ext_limit = extension_limit(ext)
            if per_queue[row["scheduler_id"]] < queue_limits[row["scheduler_id"]] and (
                ext_limit is None or per_extension[ext] < ext_limit
            ):
                in_flight += 1
                per_queue[row["scheduler_id"]] += 1
                per_extension[ext] += 1
                yield task_record(row, zone), parse_time(row["next_attempt"])
                continue
        if row["status"] != TaskStatus.DELAYED_CONCURRENT:
            blocked.append(row["id"])
