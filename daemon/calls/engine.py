"""The call engine: puts the parts of following calls together and runs them. One
consumer reads the AMI event queue in arrival order and routes each event to its call;
beside it, the event flusher and the watchdog. After every (re)login the dialplan is
checked and the calls are reconciled with Asterisk before any attempt starts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import structlog

from ami.client import AmiClient, AmiError
from ami.events import AmiEvent, ConnectionChange
from config import Settings
from daemon import notify
from daemon.calls.active import Calls
from daemon.calls.ending import CallEnder
from daemon.calls.gate import OriginateGate
from daemon.calls.listener import AttemptListener, AttemptListeners
from daemon.calls.placing import Placer
from daemon.calls.reconcile import Reconciler
from daemon.calls.routing import EventRouter
from daemon.calls.writes import EVENT_FLUSH_INTERVAL, CallWrites
from daemon.clock import Clock
from daemon.metrics import Metrics
from daemon.store.attempts import AttemptRepository, TaskRecord
from daemon.store.db import StoreUnavailable

log = structlog.get_logger("callbackd.engine")

WATCHDOG_INTERVAL = 5.0


class CallEngine:
    def __init__(
        self,
        ami: AmiClient,
        attempts: AttemptRepository,
        clock: Clock,
        settings: Callable[[], Settings],
        listener: AttemptListener | None = None,
        metrics: Metrics | None = None,
        may_dial: Callable[[], bool] = lambda: True,
    ) -> None:
        """`may_dial`: whether this host may send an Originate now (on the shared
        store, while its lease runs: daemon.membership)."""
        self._ami = ami
        self._clock = clock
        self._settings = settings
        self._metrics = metrics
        # Who hears about the attempts; the parts that listen add themselves once they
        # exist (the scheduler needs the engine to be built first).
        self.listeners = AttemptListeners()
        if listener is not None:
            self.listeners.add(listener)
        self.calls: Calls = {}
        self.gate = OriginateGate()
        self._ready = asyncio.Event()
        self._looked = asyncio.Event()
        self._logins = 0
        self.writes = CallWrites(attempts, clock, self.calls)
        ender = CallEnder(self.calls, attempts, clock, self.writes, self.listeners, metrics)
        self._placer = Placer(
            ami, self.calls, attempts, clock, settings, self.gate, self.writes, ender,
            self.listeners, may_dial,
        )  # fmt: skip
        self._router = EventRouter(
            self.calls, attempts, self.writes, ender, self.listeners,
            self._placer.hang_up_channel,
        )  # fmt: skip
        self._reconciler = Reconciler(
            ami, self.calls, attempts, clock, settings, self._router, ender,
            self._placer.hang_up_channel,
        )  # fmt: skip

    # --- status -------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Logged in, reconciled, the dialplan contexts loaded, and no PBX-wide refusal
        of Originates standing (what /readyz reports)."""
        return self._following and self.gate.open

    @property
    def may_start(self) -> bool:
        """Whether the scheduler may start attempts now: as `ready`, except that after
        a PBX-wide refusal the next ones are tried once its pause is over."""
        return self._following and self.gate.may_start

    @property
    def _following(self) -> bool:
        """Logged in and reconciled: the calls in progress are followed by their events."""
        return self._ready.is_set() and self._ami.logged_in

    @property
    def logged_in(self) -> bool:
        return self._ami.logged_in

    @property
    def last_error(self) -> str | None:
        if self.gate.error is not None:
            return self.gate.error
        if self._ami.logged_in and not self._ready.is_set():
            return "reconciling calls after login"
        return self._ami.last_error

    @property
    def originating(self) -> set[int]:
        """Tasks whose Originate is on its way (the outbox holds their webhooks)."""
        return self._placer.originating

    async def wait_following(self, timeout: float) -> bool:  # noqa: ASYNC109 - bounded waiting is the point
        """Whether the engine is logged in and has reconciled its calls within
        `timeout`, ready or not (`last_error` then says why not)."""
        try:
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        except TimeoutError:
            return False
        return True

    async def wait_ready(self, timeout: float) -> bool:  # noqa: ASYNC109 - bounded waiting is the point
        """Whether the engine is `ready` within `timeout`: logged in, and then the
        dialplan found (a PBX just restarted may let the login in before it)."""
        try:
            async with asyncio.timeout(timeout):
                await self._ready.wait()
                while not self.ready:
                    await self._looked.wait()
        except TimeoutError:
            return False
        return True

    def _have_looked(self) -> None:
        """Wake `wait_ready`: the link or the dialplan was looked at again."""
        self._looked.set()
        self._looked = asyncio.Event()

    # --- placing and hanging up ----------------------------------------------------

    async def place(self, record: TaskRecord) -> str | None:
        """Start the task's next attempt; see `place_many`."""
        started = await self.place_many([record])
        return started.get(record.id)

    async def place_many(self, records: Sequence[TaskRecord]) -> dict[int, str]:
        """Start the next attempt of each task: claim them and write their attempt rows
        in one transaction, then send each one Originate (all in flight together).
        Returns task id -> call uuid of what started; a task that is no longer waiting,
        or all of them while the PBX cannot take calls, start nothing and use no
        attempt."""
        if not self.may_start or not records:
            return {}
        return await self._placer.place_many(records)

    async def hang_up_task(self, task_id: int) -> bool:
        """Hang up every channel of the task's call in progress; False if it has none."""
        return await self._placer.hang_up_task(task_id)

    # --- the event consumer ----------------------------------------------------------

    async def run(self) -> None:
        """Consume AMI events until cancelled, with the event flusher and the watchdog
        beside it. If any of them dies, the engine stops loudly."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._consume())
            group.create_task(self._every(EVENT_FLUSH_INTERVAL, self.writes.flush_events))
            group.create_task(self._every(WATCHDOG_INTERVAL, self.watch))

    async def _consume(self) -> None:
        events_counter = self._metrics.ami_events if self._metrics is not None else None
        queue = self._ami.events
        while True:
            item = await queue.get()
            # What is queued already came in with it (one read carries many events):
            # they share one reading of the clock.
            at = self._clock.now()
            while True:
                if isinstance(item, ConnectionChange):
                    await self._on_connection_change(item)
                    at = self._clock.now()
                else:
                    if events_counter is not None:
                        events_counter.inc()
                    self.route(item, at)
                if queue.empty():
                    break
                item = queue.get_nowait()

    def route(self, ev: AmiEvent, at: datetime) -> None:
        self._router.route(ev, at)

    async def _on_connection_change(self, change: ConnectionChange) -> None:
        if self._metrics is not None:
            self._metrics.ami_connected.set(1 if change.logged_in else 0)
        if not change.logged_in:
            self._ready.clear()
            notify.status(f"AMI disconnected ({change.reason}); no call starts")
            log.warning("AMI link down; no attempt starts until it is back", reason=change.reason)
            return
        if self._logins and self._metrics is not None:
            self._metrics.ami_reconnects.inc()
        self._logins += 1
        try:
            await self._check_dialplan()
            await self._reconciler.reconcile()
        except AmiError as exc:
            log.warning("reconcile after login failed; waiting for the next login", error=str(exc))
            return
        self._ready.set()
        self._announce(calls_followed=len(self.calls))
        self._have_looked()

    def _announce(self, **fields: int) -> None:
        """Say "ready" only when it is true: logged in, reconciled and the gate open."""
        if self.ready:
            notify.status(f"AMI ready; following {len(self.calls)} call(s)")
            log.info("AMI ready", **fields)
            self.listeners.ready_to_place()
        else:
            log.warning("AMI logged in but not ready", error=self.last_error, **fields)

    async def _check_dialplan(self) -> None:
        if self._settings().ami.check_dialplan:
            await self.gate.check_dialplan(self._ami)

    async def reconcile(self, only: set[str] | None = None) -> None:
        """Match the attempts that are in a call with the channels Asterisk has."""
        await self._reconciler.reconcile(only)

    async def watch(self) -> None:
        """Calls whose events stopped coming are checked against Asterisk; a missing
        dialplan is looked for again, so loading it needs no restart of callbackd."""
        if self.gate.error is not None and self._ami.logged_in:
            could_start = self.may_start
            if self.gate.dialplan_missing:
                with contextlib.suppress(AmiError):
                    await self._check_dialplan()
            if self.gate.try_again(self._clock.now()) or (self.may_start and not could_start):
                if self.gate.open:
                    log.info("dialplan contexts found; ready")
                    notify.status(f"AMI ready; following {len(self.calls)} call(s)")
                self.listeners.ready_to_place()
            self._have_looked()
        await self.check_silent_calls()

    async def check_silent_calls(self) -> None:
        """See `Reconciler.check_silent_calls`."""
        await self._reconciler.check_silent_calls(self._following)

    async def _every(self, seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except StoreUnavailable as exc:
                # A full disk or a locked file passes; the job runs again next tick.
                log.error("store refused a write; trying again", job=job.__name__, error=str(exc))

    async def drain(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - the shutdown grace
        """Wait for the store writes in flight (shutdown, tests); see `CallWrites.drain`."""
        await self.writes.drain(timeout)
