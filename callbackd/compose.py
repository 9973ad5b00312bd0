"""The composition root: builds every part of the daemon, each given what it needs when
it is constructed, and makes each one an aiohttp cleanup context of the application.

The parts start in the order of `PARTS` and are torn down in reverse: the scheduler
stops starting attempts first, the engine stores what its calls still owe (the calls
go on inside Asterisk and are picked up at the next start), the AMI link closes, the
webhook outbox delivers what is due, and the store closes last. The engine and the
outbox share one shutdown grace (`Grace`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import suppress

from aiohttp import web

from ami.client import AmiClient, ConnectionSettings
from api.app import create_app
from config import Settings
from daemon import housekeeping
from daemon.calls import CallEngine
from daemon.clock import Clock, SystemClock
from daemon.membership import Membership
from daemon.metrics import Metrics
from daemon.outbox import WebhookOutbox
from daemon.scheduler import EngineEvents, Scheduler
from daemon.services import LiveSettings, Services, open_store
from daemon.store.attempts import AttemptRepository
from daemon.store.db import Database
from daemon.supervise import Supervisor


class Grace:
    """One shutdown grace for every part that drains: its clock starts when the first
    one asks, so a webhook receiver that hangs cannot take the time the engine's last
    writes (a bridge, an end) need, nor the other way round add up to twice the grace."""

    def __init__(self, seconds: Callable[[], float]) -> None:
        self._seconds = seconds
        self._deadline: float | None = None

    def remaining(self) -> float:
        now = asyncio.get_running_loop().time()
        if self._deadline is None:
            self._deadline = now + self._seconds()
        return max(0.0, self._deadline - now)


LIVE = web.AppKey("live_settings", LiveSettings)
CLOCK = web.AppKey("clock", Clock)
STORE = web.AppKey("store", Database)
SUPERVISOR = web.AppKey("supervisor", Supervisor)
GRACE = web.AppKey("grace", Grace)
AMI_LINK = web.AppKey("ami_link", AmiClient)
ENGINE = web.AppKey("engine", CallEngine)
OUTBOX = web.AppKey("outbox", WebhookOutbox)
SCHEDULER = web.AppKey("scheduler", Scheduler)
MEMBERSHIP: web.AppKey[Membership | None] = web.AppKey("membership")


def connection_settings(settings: Settings) -> ConnectionSettings:
    ami = settings.ami
    return ConnectionSettings(
        host=ami.host,
        port=ami.port,
        username=ami.username,
        secret=ami.secret.get_secret_value(),
        ping_interval=ami.ping_interval,
    )


async def build(settings: Settings, clock: Clock | None = None) -> web.Application:
    """Open the store and build the whole daemon over it, ready for `web.AppRunner`."""
    clock = clock or SystemClock()
    live = LiveSettings(settings)
    db = await open_store(settings)
    membership = Membership(settings, clock) if settings.store.shared else None
    if membership is not None:
        # Before the engine reconciles: a second host on one store is refused here.
        try:
            await asyncio.to_thread(membership.join)
        except BaseException:
            await db.close()
            raise
    metrics = Metrics()

    ami = AmiClient(connection_settings(settings))
    # On the shared store, Originates and webhooks go out only while this host's lease runs.
    may_act = membership.may_act if membership is not None else lambda: True
    engine = CallEngine(
        ami,
        AttemptRepository(db),
        clock,
        live,
        metrics=metrics,
        may_dial=may_act,
    )
    outbox = WebhookOutbox(
        db,
        clock,
        lambda: live().webhooks,
        metrics=metrics,
        held=engine.originating,
        may_send=may_act,
    )
    scheduler = Scheduler(db, engine, clock, live, metrics)
    # The scheduler places through the engine, and hears from it what became of each
    # attempt, as the outbox does: it listens once both exist.
    engine.listeners.add(EngineEvents(scheduler, outbox.wake))

    services = Services.over(
        live,
        db,
        clock,
        ami_status=engine,
        call_control=engine,
        scheduler=scheduler,
        outbox=outbox,
        asr=scheduler.asr,
    )
    app = create_app(services, metrics)
    app[LIVE] = live
    app[CLOCK] = clock
    app[STORE] = db
    app[SUPERVISOR] = Supervisor()
    app[GRACE] = Grace(lambda: live().shutdown_grace)
    app[AMI_LINK] = ami
    app[ENGINE] = engine
    app[OUTBOX] = outbox
    app[SCHEDULER] = scheduler
    app[MEMBERSHIP] = membership
    app.cleanup_ctx.extend(PARTS)
    return app


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


async def store_part(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[STORE].close()


async def membership_part(app: web.Application) -> AsyncIterator[None]:
    """With the shared store: heartbeats and the recovery of gone hosts."""
    membership = app[MEMBERSHIP]
    if membership is None:
        yield
        return
    scheduler, outbox = app[SCHEDULER], app[OUTBOX]

    def wake() -> None:
        scheduler.wake()
        outbox.wake()

    task = app[SUPERVISOR].watch(asyncio.create_task(membership.run(wake), name="cluster"))
    yield
    await _stop(task)


async def outbox_part(app: web.Application) -> AsyncIterator[None]:
    outbox = app[OUTBOX]
    task = app[SUPERVISOR].watch(asyncio.create_task(outbox.run(), name="webhook-outbox"))
    yield
    await outbox.drain(app[GRACE].remaining())
    await _stop(task)


async def ami_part(app: web.Application) -> AsyncIterator[None]:
    await app[AMI_LINK].start()
    yield
    await app[AMI_LINK].stop()


async def engine_part(app: web.Application) -> AsyncIterator[None]:
    engine = app[ENGINE]
    task = app[SUPERVISOR].watch(asyncio.create_task(engine.run(), name="call-engine"))
    yield
    await engine.drain(app[GRACE].remaining())
    await _stop(task)


async def scheduler_part(app: web.Application) -> AsyncIterator[None]:
    scheduler = app[SCHEDULER]
    task = app[SUPERVISOR].watch(asyncio.create_task(scheduler.run(), name="scheduler"))
    yield
    scheduler.pause()
    await _stop(task)


async def housekeeping_part(app: web.Application) -> AsyncIterator[None]:
    job = housekeeping.run(app[STORE], app[CLOCK], app[LIVE])
    task = app[SUPERVISOR].watch(asyncio.create_task(job, name="housekeeping"))
    yield
    await _stop(task)


PARTS = [
    store_part,
    membership_part,
    outbox_part,
    ami_part,
    engine_part,
    scheduler_part,
    housekeeping_part,
]
