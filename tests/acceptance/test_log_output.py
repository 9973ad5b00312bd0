"""`callbackd run` whose log output nobody reads any more: a pipe closed by its reader
(`callbackd run 2>&1 | head -1`) or a pipe that is full and never read. Logging then
costs lines, never the daemon: it keeps serving and stops on SIGTERM within its grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.acceptance.conftest import (
    NotifySocket,
    callbackd_command,
    free_port,
    write_config,
)

GRACE = 2.0
# The grace, plus the process's own start of Python and its exit around it.
STOP_BOUND = GRACE + 5.0

Process = asyncio.subprocess.Process
# Starts `callbackd run` with stdout and stderr on the given file descriptor.
Spawn = Callable[[int], Awaitable[tuple[Process, str]]]


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    """A pipe (read end, write end); whatever end a test leaves open is closed after."""
    ends = os.pipe()
    yield ends
    for fd in ends:
        with contextlib.suppress(OSError):
            os.close(fd)


@pytest.fixture
async def spawn(tmp_path: Path, notify_socket: NotifySocket) -> AsyncIterator[Spawn]:
    """Starts `callbackd run` (its process and the base URL of its API), reporting to
    `notify_socket`; whatever is still running at the end is killed."""
    started: list[Process] = []

    async def start(output: int) -> tuple[Process, str]:
        port = free_port()
        config = write_config(tmp_path, port, top=f"shutdown_grace = {GRACE}")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CALLBACKD_", "JOURNAL_"))}
        env["NOTIFY_SOCKET"] = notify_socket.path
        process = await asyncio.create_subprocess_exec(
            *callbackd_command(),
            "run",
            "--config",
            str(config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            env=env,
        )
        started.append(process)
        return process, f"http://127.0.0.1:{port}"

    yield start
    for process in started:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def stop_within_grace(process: Process, notify: NotifySocket) -> int:
    process.send_signal(signal.SIGTERM)
    assert await notify.next_message() == {"STOPPING": "1"}
    async with asyncio.timeout(STOP_BOUND):
        return await process.wait()


async def healthy(url: str) -> bool:
    async with aiohttp.ClientSession() as http, http.get(url + "/healthz") as response:
        return response.status == 200


async def test_a_closed_log_pipe_never_stops_sigterm(
    spawn: Spawn, pipe: tuple[int, int], notify_socket: NotifySocket
) -> None:
    read_end, write_end = pipe
    process, url = await spawn(write_end)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:  # `| head -1`: one line, then gone
        first = await asyncio.to_thread(reader.readline)
    assert json.loads(first)["timestamp"]
    assert (await notify_socket.next_message())["READY"] == "1"

    # Lines logged after the reader went: a reload logs, and so does the stop.
    process.send_signal(signal.SIGHUP)
    assert (await notify_socket.next_message())["RELOADING"] == "1"
    assert (await notify_socket.next_message())["READY"] == "1"
    assert await healthy(url)
    assert await stop_within_grace(process, notify_socket) == 0


async def test_a_full_log_pipe_never_read_blocks_neither_the_api_nor_sigterm(
    spawn: Spawn, pipe: tuple[int, int], notify_socket: NotifySocket
) -> None:
    write_end = pipe[1]  # its read end stays open, and nobody reads it
    # Fill the pipe before the daemon writes to it: its first line already waits.
    flags = fcntl.fcntl(write_end, fcntl.F_GETFL)
    fcntl.fcntl(write_end, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(write_end, b"x" * 4096)
    fcntl.fcntl(write_end, fcntl.F_SETFL, flags)
    process, url = await spawn(write_end)
    os.close(write_end)

    # "listening" is logged before READY is sent: READY means the log did not block.
    assert (await notify_socket.next_message())["READY"] == "1"
    assert await healthy(url)
    assert await stop_within_grace(process, notify_socket) == 0
