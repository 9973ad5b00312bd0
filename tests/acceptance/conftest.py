"""The real `callbackd run` as a subprocess, signalled the way systemd would."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

TOKEN = "acceptance-token-acme"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0


def callbackd_command() -> list[str]:
    """The installed `callbackd` console script of this venv, or the same entry point."""
    script = Path(sys.executable).with_name("callbackd")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from callbackd.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(
    directory: Path, port: int, ami: str | None = None, extra: str = "", top: str = ""
) -> Path:
    """The daemon's config: API on `port` with the acme token, the store in `directory`,
    JSON logs; `ami` is the [ami] section (default: a port nobody listens on), `extra`
    more sections and `top` keys outside any section."""
    if ami is None:
        ami = f'host = "127.0.0.1"\nport = {free_port()}\nsecret = "unused"\n'
    path = directory / "callbackd.toml"
    path.write_text(
        f"""{top}
[api]
listen = "127.0.0.1:{port}"
[api.tokens]
"{TOKEN}" = "acme"

[store]
path = "{directory / "callbackd.db"}"

[ami]
{ami}
{extra}
[log]
level = "info"
format = "json"
"""
    )
    return path


class Daemon:
    """One run of the daemon; `stop`/`kill` end it, `url` reaches its API."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.log: list[str] = []
        self._drain: asyncio.Task[None] | None = None

    async def wait_ready(self, session: aiohttp.ClientSession) -> None:
        """Wait until /healthz answers. Each try follows a new log line of the daemon, and
        it logs when it starts listening; if it exits first, say what it wrote."""
        assert self.process.stderr is not None
        async with asyncio.timeout(START_TIMEOUT):
            while not await self._healthy(session):
                line = await self.process.stderr.readline()
                if not line:
                    await self.process.wait()
                    raise AssertionError(
                        f"callbackd exited with {self.process.returncode}:\n" + "".join(self.log)
                    )
                self.log.append(line.decode(errors="replace"))
        self._drain = asyncio.create_task(self._keep_reading())

    async def _healthy(self, session: aiohttp.ClientSession) -> bool:
        try:
            async with session.get(self.url + "/healthz") as response:
                return response.status == 200
        except aiohttp.ClientConnectionError:
            return False

    async def _keep_reading(self) -> None:
        # A full stderr pipe would block the daemon; keep the lines for failure messages.
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.log.append(line.decode(errors="replace"))

    async def kill(self) -> None:
        """kill -9: no cleanup, no flush, exactly like a crash or a power cut."""
        self.process.send_signal(signal.SIGKILL)
        await self.wait_exit()

    async def stop(self) -> int:
        """SIGTERM, as systemd stops it; the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return await self.wait_exit()

    async def wait_exit(self) -> int:
        async with asyncio.timeout(STOP_TIMEOUT):
            code = await self.process.wait()
        if self._drain is not None:
            await self._drain
        return code


DaemonStarter = Callable[[], Awaitable[Daemon]]


class NotifySocket:
    """The $NOTIFY_SOCKET of a daemon under test, as systemd reads it."""

    def __init__(self, sock: socket.socket, path: str) -> None:
        self.sock = sock
        self.path = path
        self.messages: list[dict[str, str]] = []

    async def next_message(self) -> dict[str, str]:
        """The next notify message other than a watchdog ping (those are kept too)."""
        loop = asyncio.get_running_loop()
        while True:
            async with asyncio.timeout(START_TIMEOUT):
                data = await loop.sock_recv(self.sock, 4096)
            message = dict(line.split("=", 1) for line in data.decode().splitlines())
            self.messages.append(message)
            if message != {"WATCHDOG": "1"}:
                return message


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.setblocking(False)
        yield NotifySocket(sock, path)


async def launch(config: Path, port: int, session: aiohttp.ClientSession) -> Daemon:
    """`callbackd run --config` as a subprocess (no CALLBACKD_* variables or systemd
    credentials of the test run leak into it), returned once /healthz answers."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("CALLBACKD_")}
    env.pop("CREDENTIALS_DIRECTORY", None)
    process = await asyncio.create_subprocess_exec(
        *callbackd_command(),
        "run",
        "--config",
        str(config),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    daemon = Daemon(process, port)
    try:
        await daemon.wait_ready(session)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    return daemon


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as client:
        yield client


@pytest.fixture
async def start_daemon(
    tmp_path: Path, session: aiohttp.ClientSession
) -> AsyncIterator[DaemonStarter]:
    """Start `callbackd run` on one config and store; call again to restart it there."""
    port = free_port()
    config = write_config(tmp_path, port)
    started: list[Daemon] = []

    async def start() -> Daemon:
        daemon = await launch(config, port, session)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.process.returncode is None:
            await daemon.kill()


async def answer(response: aiohttp.ClientResponse) -> tuple[int, Any]:
    return response.status, await response.json(content_type=None)
