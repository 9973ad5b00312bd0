"""The systemd notify protocol against a real AF_UNIX datagram socket, as systemd reads it."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon import notify
from daemon.notify import Notifier

WAIT = 5.0  # bound on every wait for a datagram


class Listener:
    """The systemd side: a bound datagram socket we read messages from."""

    def __init__(self, sock: socket.socket, address: str) -> None:
        self.sock = sock
        self.address = address

    async def message(self) -> dict[str, str]:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(WAIT):
            data = await loop.sock_recv(self.sock, 4096)
        return dict(line.split("=", 1) for line in data.decode().splitlines())


def _bound(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.setblocking(False)
    return sock


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    path = str(tmp_path / "notify.sock")
    with _bound(path) as sock:
        yield Listener(sock, path)


@pytest.fixture
def abstract_listener() -> Iterator[Listener]:
    name = f"callbackd-test-{uuid.uuid4().hex}"
    with _bound(b"\0" + name.encode()) as sock:
        yield Listener(sock, "@" + name)


async def test_ready_carries_the_status_text(listener: Listener) -> None:
    notifier = Notifier(listener.address)
    notifier.ready("listening on 127.0.0.1:8080")
    assert await listener.message() == {"READY": "1", "STATUS": "listening on 127.0.0.1:8080"}
    notifier.close()


async def test_status_stopping_and_reloading_are_sent_as_systemd_expects(
    listener: Listener,
) -> None:
    notifier = Notifier(listener.address)
    notifier.status("AMI disconnected")
    notifier.reloading()
    notifier.stopping()
    assert await listener.message() == {"STATUS": "AMI disconnected"}
    reloading = await listener.message()
    assert reloading["RELOADING"] == "1"
    assert int(reloading["MONOTONIC_USEC"]) > 0
    assert await listener.message() == {"STOPPING": "1"}
    notifier.close()


async def test_an_abstract_socket_name_is_reached(abstract_listener: Listener) -> None:
    notifier = Notifier(abstract_listener.address)
    notifier.ready("up")
    assert (await abstract_listener.message())["READY"] == "1"
    notifier.close()


async def test_module_status_reports_to_the_installed_notifier(listener: Listener) -> None:
    notifier = Notifier(listener.address)
    notify.install(notifier)
    try:
        notify.status("AMI logged in")
        assert await listener.message() == {"STATUS": "AMI logged in"}
    finally:
        notify.install(Notifier(None))
        notifier.close()


def test_without_notify_socket_nothing_is_sent_and_nothing_fails() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled
    assert not notifier.watchdog_enabled
    notifier.ready("up")
    notifier.stopping()


def test_a_vanished_socket_is_not_an_error(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "gone.sock"))
    notifier.ready("up")
    notifier.status("still fine")
    notifier.close()


@pytest.mark.parametrize(
    ("env", "usec"),
    [
        ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000"}, 30_000_000),
        ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "0"}, None),
        ({"NOTIFY_SOCKET": "/run/x"}, None),
    ],
    ids=["ours", "another-pid", "zero", "unset"],
)
def test_watchdog_interval_is_taken_only_when_it_is_meant_for_us(
    env: dict[str, str], usec: int | None
) -> None:
    assert Notifier.from_env(env).watchdog_usec == usec


def test_watchdog_pid_naming_us_enables_the_watchdog() -> None:
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier.from_env(env).watchdog_enabled


async def test_watchdog_pings_at_half_the_interval(listener: Listener) -> None:
    usec = 200_000  # pings every 0.1 s
    notifier = Notifier(listener.address, watchdog_usec=usec)
    pinger = asyncio.create_task(notifier.watchdog())
    try:
        stamps = []
        for _ in range(4):
            assert await listener.message() == {"WATCHDOG": "1"}
            stamps.append(time.monotonic())
    finally:
        pinger.cancel()
        notifier.close()
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    half = usec / 2 / 1e6
    assert all(gap >= half * 0.8 for gap in gaps), gaps
    assert sum(gaps) / len(gaps) < usec / 1e6, gaps  # well inside the watchdog interval


async def test_a_blocked_event_loop_stops_the_pings(listener: Listener) -> None:
    usec = 100_000
    notifier = Notifier(listener.address, watchdog_usec=usec)
    pinger = asyncio.create_task(notifier.watchdog())
    try:
        await listener.message()
        _drain(listener.sock)
        # No await from here on: the loop stays blocked for twice the watchdog interval,
        # long enough for systemd to kill us, and no ping may arrive in that time.
        time.sleep(2 * usec / 1e6)  # noqa: ASYNC251 - the blocked loop is what is tested
        with pytest.raises(BlockingIOError):
            listener.sock.recv(4096)
        # Once the loop runs again, so does the watchdog.
        assert await listener.message() == {"WATCHDOG": "1"}
    finally:
        pinger.cancel()
        notifier.close()


def _drain(sock: socket.socket) -> None:
    while True:
        try:
            sock.recv(4096)
        except BlockingIOError:
            return
