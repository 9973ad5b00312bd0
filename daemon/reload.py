"""Config reload (SIGHUP): read the file again and apply what can change while running.

Live: log level and format, API tokens, webhook settings, call limits, channel templates
and ring times, extension profiles. The keys in RESTART_KEYS are bound to open sockets,
files or the app's middlewares; a changed value there is logged and kept at its running
value until the next restart. A config that does not load leaves
the running one in place, and the failure is one log line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from config import ConfigError, Settings, load_settings
from daemon.logsetup import REDACTOR, secrets_of
from daemon.services import LiveSettings

log = structlog.get_logger("callbackd.reload")

# (section, key or None for the whole section) — these need a restart.
RESTART_KEYS: tuple[tuple[str, str | None], ...] = (
    ("api", "listen"),
    ("api", "cors_origins"),
    ("api", "max_body_bytes"),
    ("store", "path"),
    ("ami", None),
)

Listener = Callable[[Settings], None]


def _name(section: str, key: str | None) -> str:
    return f"{section}.*" if key is None else f"{section}.{key}"


def needs_restart(running: Settings, new: Settings) -> list[str]:
    """The restart-only keys whose value differs between the two configs."""
    changed = []
    for section, key in RESTART_KEYS:
        old_part, new_part = getattr(running, section), getattr(new, section)
        if key is not None:
            old_part, new_part = getattr(old_part, key), getattr(new_part, key)
        if old_part != new_part:
            changed.append(_name(section, key))
    return changed


def live_part(running: Settings, new: Settings) -> Settings:
    """`new` with every restart-only key kept at its running value: what the process
    actually runs with after the reload."""
    update: dict[str, Any] = {}
    for section, key in RESTART_KEYS:
        if key is None:
            update[section] = getattr(running, section)
        else:
            part = update.get(section, getattr(new, section))
            kept = getattr(getattr(running, section), key)
            update[section] = part.model_copy(update={key: kept})
    return new.model_copy(update=update)


class Reloader:
    """Re-reads `path` and makes the new settings the running ones (`live`), then tells
    the listeners."""

    def __init__(self, path: Path | None, live: LiveSettings) -> None:
        self.path = path
        self.live = live
        self.listeners: list[Listener] = []

    def on_reload(self, listener: Listener) -> None:
        """Call `listener(settings)` after each successful reload."""
        self.listeners.append(listener)

    def apply(self, new: Settings) -> list[str]:
        """Make `new` the running config; returns the keys that still need a restart."""
        restart = needs_restart(self.live.settings, new)
        effective = live_part(self.live.settings, new)
        self.live.settings = effective
        for listener in self.listeners:
            listener(effective)
        return restart

    async def reload(self) -> bool:
        """Load and apply the config file; False (and the old config kept) on error."""
        try:
            new = await asyncio.to_thread(load_settings, self.path)
        except ConfigError as exc:
            log.error("config reload failed, keeping the running config", error=str(exc))
            return False
        # Before anything is logged: a new secret is a secret even where it is not live.
        REDACTOR.add(secrets_of(new))
        restart = self.apply(new)
        if restart:
            log.warning("config reloaded; these keys need a restart", keys=restart)
        else:
            log.info("config reloaded")
        return True
