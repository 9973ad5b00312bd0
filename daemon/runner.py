"""Runs the daemon: opens the store, serves the API, starts the background parts, tells
systemd how it is doing, reloads the config on SIGHUP, and shuts down in order on
SIGTERM/SIGINT (each part is an aiohttp cleanup context, torn down in reverse)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import suppress
from pathlib import Path

import structlog
from aiohttp import web

from api.app import create_app
from api.routing import SERVICES
from api.tokens import TOKENS
from config import Settings
from daemon import notify
from daemon.clock import Clock, SystemClock
from daemon.logsetup import configure_logging, secrets_of
from daemon.metrics import Metrics
from daemon.notify import Notifier
from daemon.reload import Reloader
from daemon.services import Services
from daemon.store.db import Database, StoreError
from daemon.supervise import Supervisor

log = structlog.get_logger("callbackd")
SUPERVISOR = web.AppKey("supervisor", Supervisor)

Part = Callable[[web.Application], AsyncIterator[None]]
# Builds the background parts (call engine, scheduler, webhook outbox) over the
# services; `daemon.assembly.build_parts` is one.
PartsFactory = Callable[[Services], Sequence[Part]]


async def open_services(settings: Settings, clock: Clock | None = None) -> Services:
    if settings.store.shared:
        # Never the SQLite file behind the back of an operator who asked for the shared
        # store: the hosts would each work queues of their own.
        raise StoreError(
            "store.url: this version of callbackd migrates the shared PostgreSQL store"
            " (callbackd migrate) but runs calls on the SQLite store only; unset store.url"
        )
    db = await Database.open(settings.store.path)
    return Services.over(settings, db, clock or SystemClock())


async def serve(
    settings: Settings,
    parts: Sequence[Part] | PartsFactory | None = None,
    *,
    config_path: Path | None = None,
    notifier: Notifier | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT.

    `parts` are extra cleanup contexts (call engine, scheduler, webhooks), started after
    the store and stopped before it: either a list, or a function that builds them from
    the `Services`. SIGHUP re-reads `config_path` (see daemon.reload). `notifier`
    defaults to the one systemd set up through the environment."""
    notifier = notifier or Notifier.from_env()
    supervisor = Supervisor()
    notify.install(notifier)
    services = await open_services(settings)
    metrics = Metrics()
    app = create_app(services, metrics)
    app[SUPERVISOR] = supervisor

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        yield
        await app[SERVICES].db.close()

    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.extend(parts(services) if callable(parts) else parts or [])

    reloader = Reloader(config_path, services)
    reloader.on_reload(lambda new: app[TOKENS].replace(new.api.tokens))
    reloader.on_reload(lambda new: configure_logging(new.log, secrets_of(new)))
    reloader.on_reload(lambda new: services.scheduler.wake())  # limits may have grown

    stop = supervisor.stop
    hup = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, hup.set)

    listening = f"listening on {settings.api.listen}"

    async def reload_on_hup() -> None:
        while True:
            await hup.wait()
            hup.clear()
            notifier.reloading()
            ok = await reloader.reload()
            metrics.config_reloads.labels(result="ok" if ok else "failed").inc()
            notifier.ready(f"{listening}; " + ("config reloaded" if ok else "reload failed"))

    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    side_tasks: list[asyncio.Task[None]] = []
    try:
        await runner.setup()
        site = web.TCPSite(runner, settings.api.host, settings.api.port)
        await site.start()
        side_tasks.append(asyncio.create_task(reload_on_hup(), name="reload"))
        if notifier.watchdog_enabled:
            side_tasks.append(asyncio.create_task(notifier.watchdog(), name="watchdog"))
        for task in side_tasks:
            supervisor.watch(task)
        log.info("listening", listen=settings.api.listen, store=str(settings.store.path))
        notifier.ready(listening)
        await stop.wait()
    finally:
        notifier.stopping()
        log.info("stopping")
        with suppress(Exception):
            await runner.cleanup()
        for task in side_tasks:
            task.cancel()
        await asyncio.gather(*side_tasks, return_exceptions=True)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        notifier.close()
    log.info("stopped")
    if supervisor.failed:
        raise SystemExit(1)
