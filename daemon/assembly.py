"""Puts the background parts together: AMI link, call engine, webhook outbox, scheduler.

Each part is an aiohttp cleanup context: started in this order after the store, torn
down in reverse. On shutdown the scheduler stops starting attempts first, the outbox
delivers what is due within the grace time, and the engine lets go of the calls in
progress: they go on inside Asterisk and are picked up again at the next start.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import suppress

from aiohttp import web

from ami.client import AmiClient, AmiSettings
from api.routing import METRICS
from daemon import housekeeping
from daemon.engine import CallEngine
from daemon.outbox import WebhookOutbox
from daemon.runner import SUPERVISOR, Part
from daemon.scheduler import EngineEvents, Scheduler
from daemon.services import Services
from daemon.store.attempts import AttemptRepository


def ami_settings(services: Services) -> AmiSettings:
    ami = services.settings.ami
    return AmiSettings(
        host=ami.host,
        port=ami.port,
        username=ami.username,
        secret=ami.secret.get_secret_value(),
        ping_interval=ami.ping_interval,
    )


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


def build_parts(services: Services) -> Sequence[Part]:
    ami = AmiClient(ami_settings(services))

    async def engine_part(app: web.Application) -> AsyncIterator[None]:
        metrics = app[METRICS]
        engine = CallEngine(
            ami,
            AttemptRepository(services.db),
            services.clock,
            lambda: services.settings,
            metrics=metrics,
        )
        outbox = WebhookOutbox(
            services.db,
            services.clock,
            lambda: services.settings.webhooks,
            metrics=metrics,
            held=engine.originating,
        )
        scheduler = Scheduler(
            services.db, engine, services.clock, lambda: services.settings, metrics
        )
        engine.listener = EngineEvents(scheduler, outbox.wake)
        engine.on_ready = scheduler.wake
        engine.on_originates_answered = outbox.wake
        services.ami = engine
        services.call_control = engine
        services.scheduler = scheduler
        services.asr = scheduler.asr
        services.outbox = outbox
        supervisor = app[SUPERVISOR]
        await ami.start()
        tasks = [
            supervisor.watch(asyncio.create_task(engine.run(), name="call-engine")),
            supervisor.watch(asyncio.create_task(outbox.run(), name="webhook-outbox")),
            supervisor.watch(asyncio.create_task(scheduler.run(), name="scheduler")),
            supervisor.watch(
                asyncio.create_task(
                    housekeeping.run(services.db, services.clock, lambda: services.settings),
                    name="housekeeping",
                )
            ),
        ]
        yield
        await _cancel(tasks[3])
        scheduler.pause()
        await _cancel(tasks[2])
        # One grace for the whole stop, shared: a receiver that hangs must not leave the
        # engine's last writes (a bridge, an end) without time to be stored.
        grace = services.settings.shutdown_grace
        await asyncio.gather(outbox.drain(grace), engine.drain(grace))
        await _cancel(tasks[1])
        await _cancel(tasks[0])
        await ami.stop()

    return [engine_part]
