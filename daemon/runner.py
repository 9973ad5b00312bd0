"""Runs the daemon: opens the store, serves the API, starts the background parts, and
shuts down in order on SIGTERM/SIGINT (each part is an aiohttp cleanup context, torn
down in reverse)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import suppress

import structlog
from aiohttp import web

from api.app import create_app
from api.routing import SERVICES
from config import Settings
from daemon.clock import Clock, SystemClock
from daemon.services import Services
from daemon.store.db import Database

log = structlog.get_logger("callbackd")

Part = Callable[[web.Application], AsyncIterator[None]]


async def open_services(settings: Settings, clock: Clock | None = None) -> Services:
    db = await Database.open(settings.store.path)
    return Services.over(settings, db, clock or SystemClock())


async def serve(settings: Settings, parts: list[Part] | None = None) -> None:
    """Serve until SIGTERM or SIGINT. `parts` are extra cleanup contexts (call engine,
    scheduler, webhooks), started after the store and stopped before it."""
    services = await open_services(settings)
    app = create_app(services)

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        yield
        await app[SERVICES].db.close()

    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.extend(parts or [])

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.api.host, settings.api.port)
    await site.start()
    log.info("listening", listen=settings.api.listen, store=str(settings.store.path))
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        with suppress(Exception):
            await runner.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("stopped")
