"""The systemd notify protocol (sd_notify(3)), in a few lines of our own: READY, STATUS,
RELOADING, STOPPING and the watchdog keep-alive, sent as datagrams to $NOTIFY_SOCKET.

Outside systemd (no $NOTIFY_SOCKET) every call is a no-op, so callers never check.
Other parts report state changes with `daemon.notify.status("AMI disconnected")`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Mapping

import structlog

log = structlog.get_logger("callbackd.notify")


def _address(value: str) -> str | bytes:
    # A leading '@' names a socket in the abstract namespace (a leading NUL byte).
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


class Notifier:
    """Sends notify messages to one socket; `Notifier(None)` sends nothing."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self._address = _address(address) if address else None
        self.watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None
        self._failed = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        """The notifier systemd set up for this process, as sd_watchdog_enabled() reads
        it: the watchdog is ours only if WATCHDOG_PID is unset or names us."""
        env = os.environ if env is None else env
        usec: int | None = None
        pid = env.get("WATCHDOG_PID")
        if env.get("WATCHDOG_USEC", "").isdigit() and (pid is None or pid == str(os.getpid())):
            usec = int(env["WATCHDOG_USEC"]) or None
        return cls(env.get("NOTIFY_SOCKET") or None, usec)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_enabled(self) -> bool:
        return self.enabled and self.watchdog_usec is not None

    def send(self, **fields: str | int) -> None:
        """Send one message, e.g. `send(READY=1, STATUS="listening")`. A failure is
        logged once and never raised: notify must not take the daemon down."""
        if self._address is None:
            return
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(message, self._address)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning("systemd notify failed", error=str(exc))

    def ready(self, status: str) -> None:
        self.send(READY=1, STATUS=status)

    def status(self, text: str) -> None:
        self.send(STATUS=text)

    def reloading(self) -> None:
        # MONOTONIC_USEC lets systemd (>= 253) tell this reload from an older one.
        self.send(RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)

    def stopping(self) -> None:
        self.send(STOPPING=1)

    async def watchdog(self) -> None:
        """Ping at half the watchdog interval until cancelled. It runs on the event loop,
        so a loop blocked for longer than WATCHDOG_USEC misses its pings and systemd
        kills the process, which is the point."""
        if self.watchdog_usec is None:
            return
        interval = self.watchdog_usec / 2 / 1_000_000
        while True:
            self.send(WATCHDOG=1)
            await asyncio.sleep(interval)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


_process = Notifier(None)


def install(notifier: Notifier) -> None:
    """Make `notifier` the one `status()` reports to (the runner does this at start)."""
    global _process
    _process = notifier


def status(text: str) -> None:
    """Show `text` as the service status (`systemctl status callbackd`)."""
    _process.status(text)
