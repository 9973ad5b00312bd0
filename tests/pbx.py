"""The project's real test PBX (tools/testpbx) as seen by the tests.

`TestPbx` runs the script (build if needed, start, stop, restart) and carries the AMI
address and credentials of the `callbackd` user. `ami_action` is a tiny raw-AMI
client for tests that must not depend on the code under test.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "tools" / "testpbx"

# A first start builds the chroot (a download of Asterisk); later ones take a second.
START_TIMEOUT = 600.0
STOP_TIMEOUT = 60.0
RESTART_TIMEOUT = 120.0
AMI_TIMEOUT = 10.0

AmiMessage = dict[str, str]


class TestPbxError(RuntimeError):
    """tools/testpbx failed; the message carries its output."""


@dataclass
class TestPbx:
    host: str
    port: int
    username: str
    secret: str

    __test__ = False  # not a test class, whatever pytest thinks of the name

    @classmethod
    def from_env(cls) -> TestPbx:
        """The PBX that tools/testpbx manages with the same environment."""
        return cls(
            host="127.0.0.1",
            port=int(os.environ.get("CALLBACKD_TESTPBX_AMI_PORT", "5038")),
            username="callbackd",
            secret=os.environ.get("CALLBACKD_TESTPBX_SECRET", "callbackd-test"),
        )

    def _run(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [str(SCRIPT), *args],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise TestPbxError(f"tools/testpbx {' '.join(args)}: no result in {timeout} s") from exc

    def _check(self, *args: str, timeout: float) -> str:
        done = self._run(*args, timeout=timeout)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()
            raise TestPbxError(f"tools/testpbx {' '.join(args)} failed: {output}")
        return done.stdout

    def is_running(self) -> bool:
        return self._run("status", timeout=30).returncode == 0

    def start(self) -> None:
        """Build if needed and start; returns once Asterisk is booted and AMI answers."""
        self._check("start", timeout=START_TIMEOUT)

    def stop(self) -> None:
        self._check("stop", timeout=STOP_TIMEOUT)

    def cli(self, command: str) -> str:
        """Output of an Asterisk CLI command."""
        return self._check("cli", command, timeout=30)

    async def restart(self) -> None:
        """Stop and start Asterisk (calls in progress are cut); returns when it is up."""
        proc = await asyncio.create_subprocess_exec(
            str(SCRIPT),
            "restart",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), RESTART_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise TestPbxError(f"tools/testpbx restart: no result in {RESTART_TIMEOUT} s") from None
        if proc.returncode != 0:
            raise TestPbxError(f"tools/testpbx restart failed: {output.decode().strip()}")


async def _read_message(reader: asyncio.StreamReader) -> AmiMessage:
    msg: AmiMessage = {}
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("AMI connection closed")
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if not text:
            if msg:
                return msg
            continue
        key, _, value = text.partition(":")
        msg.setdefault(key, value.lstrip(" "))


def _render(fields: list[tuple[str, str]]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in fields).encode() + b"\r\n"


async def ami_action(pbx: TestPbx, action: str, *fields: tuple[str, str]) -> list[AmiMessage]:
    """Log in as the PBX's callbackd user, send one action and return its response
    followed by the events of its list (if it has one), up to the list's end."""

    async def run() -> list[AmiMessage]:
        reader, writer = await asyncio.open_connection(pbx.host, pbx.port)
        try:
            banner = await reader.readline()
            if not banner.startswith(b"Asterisk Call Manager/"):
                raise ConnectionError(f"not AMI: {banner!r}")
            writer.write(
                _render(
                    [
                        ("Action", "Login"),
                        ("ActionID", "login"),
                        ("Username", pbx.username),
                        ("Secret", pbx.secret),
                    ]
                )
            )
            writer.write(_render([("Action", action), ("ActionID", "act"), *fields]))
            await writer.drain()
            replies: list[AmiMessage] = []
            while True:
                msg = await _read_message(reader)
                if msg.get("ActionID") == "login":
                    if msg.get("Response") != "Success":
                        raise PermissionError(f"AMI login refused: {msg.get('Message')}")
                    continue
                if msg.get("ActionID") != "act":
                    continue
                replies.append(msg)
                if "Event" not in msg and msg.get("EventList") != "start":
                    return replies  # a plain response, no list follows
                if msg.get("EventList") == "Complete" or msg.get("Response") == "Error":
                    return replies
        finally:
            writer.close()
            await writer.wait_closed()

    return await asyncio.wait_for(run(), AMI_TIMEOUT)
