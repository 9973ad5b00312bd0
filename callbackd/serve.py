"""Runs the daemon built by `callbackd.compose`: serves the API, tells systemd how it is
doing, reloads the config on SIGHUP, and shuts down in order on SIGTERM/SIGINT (the
parts are cleanup contexts, torn down in reverse). A part that fails to stop is logged
and makes the exit status 1."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import structlog
from aiohttp import web

from api.routing import METRICS
from api.tokens import TOKENS
from callbackd.compose import LIVE, SCHEDULER, SUPERVISOR, build
from config import Settings
from daemon import notify
from daemon.logsetup import configure_logging, secrets_of
from daemon.notify import Notifier
from daemon.reload import Reloader

log = structlog.get_logger("callbackd")


async def serve(
    settings: Settings, *, config_path: Path | None = None, notifier: Notifier | None = None
) -> None:
    """Serve until SIGTERM or SIGINT. SIGHUP re-reads `config_path` (see daemon.reload).
    `notifier` defaults to the one systemd set up through the environment."""
    notifier = notifier or Notifier.from_env()
    notify.install(notifier)
    app = await build(settings)
    supervisor = app[SUPERVISOR]
    reloader = Reloader(config_path, app[LIVE])
    reloader.on_reload(lambda new: app[TOKENS].replace(new.api.tokens))
    reloader.on_reload(lambda new: configure_logging(new.log, secrets_of(new)))
    reloader.on_reload(lambda new: app[SCHEDULER].wake())  # limits may have grown

    stop = supervisor.stop
    hup = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, hup.set)

    listening = f"listening on {settings.api.listen}"
    metrics = app[METRICS]

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
    stopped_cleanly = True
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
        stopped_cleanly = await _cleanup(runner)
        for task in side_tasks:
            task.cancel()
        await asyncio.gather(*side_tasks, return_exceptions=True)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        notifier.close()
    log.info("stopped")
    if supervisor.failed or not stopped_cleanly:
        raise SystemExit(1)


async def _cleanup(runner: web.AppRunner) -> bool:
    """Tear the parts down; False (each failure logged) if any of them failed to."""
    try:
        await runner.cleanup()
    except web.CleanupError as exc:
        for error in exc.exceptions:
            log.error("a part failed to stop", exc_info=error)
        return False
    except Exception as exc:
        log.error("a part failed to stop", exc_info=exc)
        return False
    return True
