"""The scheduler: starts due tasks, oldest-due first, within the limits of their queue,
their extension profile and the whole PBX.

It never polls the table on a timer: it sleeps until the next due time or until woken
(a task added or changed, a slot freed, a queue switched on, the config reloaded, AMI
ready again). While AMI is not ready nothing starts and no attempt is used.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import NamedTuple, Protocol

import structlog

from ami.outcome import Outcome
from config import Settings
from daemon.asr import AsrGuard, Change, Profile, counts_as
from daemon.clock import Clock, sleep_until_woken
from daemon.holds import (
    HoursGate,
    QueueHours,
    QueueInterval,
    asr_hold,
    interval_hold,
    profile_key,
    queue_interval,
)
from daemon.limits import Running, admit, full_where
from daemon.metrics import Metrics
from daemon.models import format_time, parse_time
from daemon.plan import profile_for
from daemon.retry import NextStep
from daemon.store.attempts import TaskRecord, task_record
from daemon.store.db import Database, StoreUnavailable
from daemon.store.due import NOTHING_FULL, DueKey, DueTasks, Full
from daemon.store.queries import q

log = structlog.get_logger("callbackd.scheduler")

DUE_BATCH = 200
FULL_MARK_EVERY = timedelta(seconds=1)
STORE_RETRY = timedelta(seconds=2)
# Held tasks looked at for one probe, past those whose A number's hours are closed.
PROBE_LOOKS = 20


class Page(NamedTuple):
    """What one pass over due rows did."""

    started: int
    read: int
    more: bool  # the page was full and the PBX still has room: more may start
    after: DueKey | None  # the last row read
    held: int = 0  # rows held for their calling hours: they left the due rows
    open_queues: frozenset[int] = frozenset()  # queues on, open and not full


@dataclass(frozen=True)
class QueueView:
    """What one dispatch knows of the queues that are on."""

    queues: dict[int, int]  # id -> concurrent_task_limit
    open_limits: dict[int, int]  # the same without the queues whose hours are closed
    gate: HoursGate
    elsewhere: dict[int, int]  # id -> the other hosts' calls (a shared store's)


class Dialer(Protocol):
    """What the scheduler needs from the call engine."""

    @property
    def may_start(self) -> bool: ...

    async def place_many(self, records: Sequence[TaskRecord]) -> dict[int, str]: ...


class Scheduler:
    def __init__(
        self,
        db: Database,
        engine: Dialer,
        clock: Clock,
        settings: Callable[[], Settings],
        metrics: Metrics | None = None,
    ) -> None:
        self._db = db
        self._engine = engine
        self._clock = clock
        self._settings = settings
        self._metrics = metrics
        self._woken = asyncio.Event()
        self._paused = False
        self.running: dict[int, Running] = {}  # task id -> where its call counts
        self._ended_while_loading: set[int] | None = None
        self._due = DueTasks(db)
        self._full_marked: tuple[Full, datetime] = (NOTHING_FULL, datetime.min.replace(tzinfo=UTC))
        self._elsewhere: tuple[dict[int, int], datetime] = ({}, datetime.min.replace(tzinfo=UTC))
        self.hours = QueueHours()
        self.asr = AsrGuard(settings)
        # The profiles whose tasks the guard holds, as last acted on (None: not yet, so
        # the first pass frees whatever an earlier run held).
        self._asr_held: frozenset[Profile] | None = None
        self._asr_marked = datetime.min.replace(tzinfo=UTC)

    def wake(self) -> None:
        self._woken.set()

    def pause(self) -> None:
        """Start nothing more (shutdown); calls in progress go on."""
        self._paused = True
        self.wake()

    # --- what the engine reports --------------------------------------------------------

    def attempt_started(self, record: TaskRecord) -> None:
        self.running[record.id] = Running(record.scheduler_id, record.task.extension_id)

    def attempt_outcome(self, task_id: int, call_uuid: str, outcome: Outcome) -> None:
        """An ended attempt goes into its profile's answer-rate window."""
        running = self.running.get(task_id)
        if running is None:
            return
        ended = outcome.end_time or self._clock.now()
        counted = counts_as(outcome.result, outcome.a_answered)
        change = self.asr.record(running.extension_id, call_uuid, ended, counted)
        if change is not None:
            self._report(change)
            self.wake()

    def attempt_ended(self, task_id: int) -> None:
        self.running.pop(task_id, None)
        if self._ended_while_loading is not None:
            self._ended_while_loading.add(task_id)
        self.wake()

    # --- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        await self._load_running()
        await self.load_asr_window()
        while True:
            self._woken.clear()
            try:
                wake_at = None if self._paused else await self.dispatch_due()
            except StoreUnavailable as exc:
                # A full disk or a locked file passes; starting nothing until it does
                # is right, stopping the daemon is not.
                log.error("store refused a write; trying again shortly", error=str(exc))
                wake_at = self._clock.now() + STORE_RETRY
            await sleep_until_woken(self._clock, self._woken, wake_at)

    async def _load_running(self) -> None:
        # A call followed from before the start may end while its row is on the way
        # here; it must not come back as running and hold its slot for good.
        self._ended_while_loading = set()
        try:
            rows = await self._db.fetch_all(q("select_executing_tasks"))
            for row in rows:
                if row["id"] not in self._ended_while_loading:
                    extension_id = json.loads(row["params"]).get("extension_id")
                    self.running[row["id"]] = Running(row["scheduler_id"], extension_id)
        finally:
            self._ended_while_loading = None

    async def load_asr_window(self) -> None:
        """The answer-rate windows rebuilt from the attempts stored, so a restart does
        not forget a collapsed trunk (one read of the last window's attempts)."""
        guarded = self.asr.guarded()
        if not guarded:
            return
        windows = [self.asr.config(p).window for p in guarded]
        now = self._clock.now()
        # Started up to an hour before the window and ended in it still count.
        since = format_time(now - timedelta(seconds=max(windows) + 3600))
        for row in await self._db.fetch_all(q("select_recent_attempts"), {"since": since}):
            counted = counts_as(row["result"], row["a_answer_time"] is not None)
            self.asr.record(
                row["extension_id"], row["call_uuid"], parse_time(row["end_time"]), counted
            )
        # What the rebuilt windows say is shown, not counted again as trips or clears.
        for profile, guard in self.asr.states().items():
            if self._metrics is not None:
                name = _profile_name(profile)
                self._metrics.asr_guard_tripped.labels(profile=name).set(int(guard.tripped))
            if guard.tripped:
                log.warning(
                    "answer-rate guard tripped before the start",
                    profile=_profile_name(profile),
                    attempts=guard.attempts,
                    answered=guard.answered,
                    min_ratio=guard.min_ratio,
                )

    async def dispatch_due(self) -> datetime | None:
        """Start what is due and fits; return when to look again (None: when woken)."""
        held = await self._guard_look()
        view = await self._queue_view()
        page = Page(started=0, read=0, more=True, after=None)
        read = 0
        while self._engine.may_start and not self._paused:
            page = await self._dispatch_batch(view, page.after, whole=page.read > page.started)
            read += page.read
            # Rows held back by an extension limit are paged past, up to DUE_BATCH
            # rows a round when none of them starts; rows held for their calling hours
            # left the due rows, so the next page finds others.
            if not page.more or (not page.started and not page.held and read >= DUE_BATCH):
                break
        if not self._engine.may_start:
            return None
        next_probe = await self._guard(held, page.open_queues, view.gate)
        now = format_time(self._clock.now())
        next_due = await self._db.fetch_value(q("select_next_due_time"), {"now": now})
        wake_at = [parse_time(next_due)] if next_due else []
        return min([*wake_at, *next_probe], default=None)

    async def _guard_look(self) -> frozenset[Profile]:
        """The profiles the answer-rate guard holds now; the tasks of those that cleared
        since the last look are freed."""
        now = self._clock.now()
        tripped, changes = self.asr.held(now)
        held = frozenset(tripped)
        for change in changes:
            self._report(change)
        if held != self._asr_held:
            await self._due.free_profiles([profile_key(p) for p in held], now)
            self._asr_held = frozenset(held)
            self._asr_marked = datetime.min.replace(tzinfo=UTC)
        return held

    async def _guard(
        self, held: frozenset[Profile], open_queues: frozenset[int], gate: HoursGate
    ) -> list[datetime]:
        """The answer-rate guard's part of a pass, after the due tasks that may start
        have: hold the due tasks of the tripped profiles, start their probes; returns
        when the next probes are due."""
        if not held:
            return []
        now = self._clock.now()
        # Newly due tasks of a held profile are marked at most once a second, as the
        # tasks held back by a full limit are.
        if now - self._asr_marked >= FULL_MARK_EVERY:
            self._asr_marked = now
            holds = [(profile_key(p), asr_hold(p, self.asr.state(p))) for p in held]
            await self._due.hold_profiles(holds, open_queues, now)
        settings = self._settings()
        for profile in held:
            if (
                self.asr.may_probe(profile, now)
                and len(self.running) < settings.calls.max_concurrent
                and self._profile_has_room(profile, settings)
            ):
                await self._probe(profile, open_queues, gate)
        return [self.asr.next_probe(p, now) for p in held]

    def _profile_has_room(self, profile: Profile, settings: Settings) -> bool:
        """A probe is a call like any other: it waits while the profile's calls from
        before the trip still fill its `max_concurrent`."""
        limit = profile_for(settings, profile).max_concurrent
        in_calls = sum(1 for r in self.running.values() if r.extension_id == profile)
        return limit is None or in_calls < limit

    async def _probe(self, profile: Profile, open_queues: frozenset[int], gate: HoursGate) -> None:
        """One held task of a tripped profile tries the network."""
        record = await self._probe_candidate(profile, open_queues, gate)
        if record is None:
            return
        placed = await self._engine.place_many([record])
        if placed:
            self.asr.probed(profile, self._clock.now())
            log.info("answer-rate guard probe", profile=_profile_name(profile), task_id=record.id)

    async def _probe_candidate(
        self, profile: Profile, open_queues: frozenset[int], gate: HoursGate
    ) -> TaskRecord | None:
        """The task held longest whose calling hours are open. A probe is a call to a
        person like any other: one whose A number's own hours are closed (interval_zone
        = "destination") is held for them instead, and the next is looked at."""
        for _ in range(PROBE_LOOKS):
            row = await self._due.probe(profile_key(profile), open_queues)
            if row is None:
                return None
            hours_open, zone = gate.admit(row)
            if hours_open:
                return task_record(row, zone)
            await self._due.hold_tasks(gate.held)
            gate.held.clear()
        return None

    def _report(self, change: Change) -> None:
        name = _profile_name(change.profile)
        state = change.state
        words = "answer-rate guard tripped" if change.tripped else "answer-rate guard cleared"
        log.warning(
            words,
            profile=name,
            attempts=state.attempts,
            answered=state.answered,
            min_ratio=state.min_ratio,
        )
        if self._metrics is not None:
            counter = (
                self._metrics.asr_guard_trips if change.tripped else self._metrics.asr_guard_clears
            )
            counter.labels(profile=name).inc()
            self._metrics.asr_guard_tripped.labels(profile=name).set(1 if change.tripped else 0)

    async def _queue_view(self) -> QueueView:
        """The queues switched on, with their limits and calling hours, read once per
        dispatch: with a thousand queues on intervals, reading them for every page of
        due rows cost more CPU per call than the intervals themselves."""
        settings = self._settings()
        now = self._clock.now()
        on = [
            row
            for row in await self._db.fetch_all(q("select_queue_limits"))
            if row["status"] == "on"
        ]
        queues = {row["id"]: row["concurrent_task_limit"] for row in on}
        gate = await self._hours({row["id"]: queue_interval(row) for row in on}, settings, now)
        # A closed queue's rows are read only to be held (as they come due); its calls
        # in progress do not make it full.
        open_limits = {qid: limit for qid, limit in queues.items() if qid not in gate.closed}
        return QueueView(queues, open_limits, gate, await self._calls_elsewhere(now))

    async def _calls_elsewhere(self, now: datetime) -> dict[int, int]:
        """The other hosts' calls per queue, read at most once a second (they end
        without a word to this host; the membership's wake-up every second looks
        again). One host of its own SQLite file reads none."""
        counted, read_at = self._elsewhere
        if now - read_at >= FULL_MARK_EVERY:
            rows = await self._db.fetch_all(q("count_calls_elsewhere_by_queue"))
            counted = {row["scheduler_id"]: row["calls"] for row in rows}
            self._elsewhere = (counted, now)
        return counted

    async def _dispatch_batch(self, view: QueueView, after: DueKey | None, whole: bool) -> Page:
        """One pass over the oldest due tasks, after `after` if given; a `whole` page
        follows one whose rows were held back."""
        settings = self._settings()
        now = self._clock.now()
        queues, open_limits, gate = view.queues, view.open_limits, view.gate
        elsewhere = view.elsewhere
        room = settings.calls.max_concurrent - len(self.running)
        full = full_where(open_limits, self.running.values(), elsewhere, settings)
        skipped = [*full.extensions, *(profile_key(p) for p in self._asr_held or ())]
        # No more rows than the PBX has room for: under load an ended call frees one
        # slot, and reading a whole batch of due rows for it cost more than the call's
        # own writes. Past rows held back by a limit, the page is whole.
        limit = DUE_BATCH if whole else min(DUE_BATCH, room)
        rows = await self._due.rows(now, queues.keys() - full.queues, skipped, after, limit)
        blocked: list[int] = []
        running = self.running.values()
        admitted = admit(rows, settings, queues, running, elsewhere, blocked, gate)
        # Claims go in growing chunks, one transaction each, with the chunk's Originates
        # in flight together: the first in line waits for a small transaction, the rest
        # share the cost of large ones. Rows are validated only as their chunk comes,
        # so the first in line does not wait for the whole batch to be read either.
        started = 0
        for size in _growing_sizes():
            chunk = list(islice(admitted, size))
            if not chunk:
                break
            placed = await self._engine.place_many([record for record, _ in chunk])
            started += len(placed)
            if self._metrics is not None:
                sent_at = self._clock.now()
                for record, due in chunk:
                    if record.id in placed:
                        latency = (sent_at - due).total_seconds()
                        self._metrics.dispatch_latency.observe(max(latency, 0.0))
            if not self._engine.may_start:
                break
        # What the calls just started filled waits too, beyond the rows read.
        held = len(gate.held)
        await self._due.hold_tasks(gate.held)
        gate.held.clear()
        full = full_where(open_limits, self.running.values(), elsewhere, settings)
        await self._hold(blocked, full, set(open_limits), now)
        more = 0 < len(rows) == limit and len(self.running) < settings.calls.max_concurrent
        last = (rows[-1]["next_attempt"], rows[-1]["id"]) if rows else after
        open_queues = frozenset(open_limits.keys() - full.queues)
        return Page(started, len(rows), more, last, held, open_queues)

    async def _hours(
        self, intervals: dict[int, QueueInterval | None], settings: Settings, now: datetime
    ) -> HoursGate:
        """Calling hours now: tasks held for an interval that changed are looked at
        again, and a queue whose interval just closed has its due tasks held (one
        write); after that a closed queue costs nothing until it opens."""
        look = self.hours.look(intervals.items(), now)
        await self._due.free_queues(look.changed, now)
        by_destination = settings.calls.interval_zone == "destination"
        closed = {} if by_destination else look.closed
        with_interval = {qid: i for qid, i in intervals.items() if i is not None}
        if closed and look.closing:
            holds = [
                (qid, interval_hold(closed[qid].until, with_interval[qid].timezone))
                for qid in look.closing
            ]
            await self._due.hold_queues(holds, now)
        return HoursGate(with_interval, closed, by_destination, now)

    async def _hold(
        self, task_ids: list[int], full: Full, open_queues: set[int], now: datetime
    ) -> None:
        """Due tasks held back by a limit show `delayed_concurrent_task`. The tasks of
        full queues and full extension profiles are marked when what is full changes,
        and at most once a second otherwise (new tasks come in), not after every ended
        call."""
        marked, marked_at = self._full_marked
        if full == marked and now - marked_at < FULL_MARK_EVERY:
            full = NOTHING_FULL
        else:
            self._full_marked = (full, now)
        await self._due.hold(task_ids, full, open_queues, now)


def _profile_name(profile: Profile) -> str:
    return "default" if profile is None else str(profile)


def _growing_sizes(first: int = 4) -> Iterator[int]:
    """4, 16, 64, 256, ..."""
    size = first
    while True:
        yield size
        size *= 4


class EngineEvents:
    """Fans the engine's attempt events out to the scheduler and the webhook outbox."""

    def __init__(self, scheduler: Scheduler, outbox_wake: Callable[[], None]) -> None:
        self._scheduler = scheduler
        self._outbox_wake = outbox_wake

    async def attempt_started(self, record: TaskRecord, call_uuid: str) -> None:
        self._scheduler.attempt_started(record)
        self._outbox_wake()

    async def call_bridged(self, task_id: int, call_uuid: str) -> None:
        self._outbox_wake()

    async def attempt_withdrawn(self, task_id: int) -> None:
        self._scheduler.attempt_ended(task_id)

    async def attempt_ended(
        self, task_id: int, call_uuid: str, outcome: Outcome, step: NextStep | None
    ) -> None:
        self._scheduler.attempt_outcome(task_id, call_uuid, outcome)
        self._scheduler.attempt_ended(task_id)
        self._outbox_wake()

    def ready_to_place(self) -> None:
        self._scheduler.wake()

    def originates_answered(self) -> None:
        # The webhooks held while their Originate was out may go now.
        self._outbox_wake()
