"""The project's real test PBX (tools/testpbx) and its SIP far end (tools/sipfarend) as
seen by the tests.

`TestPbx` runs the script (build if needed, start, stop, restart) and carries the AMI
address and credentials of the `callbackd` user. `SipFarEnd` starts the SIPp far end
of the PBX's PJSIP trunk and reads the INVITEs it received. `ami_action` is a tiny
raw-AMI client for tests that must not depend on the code under test, and
`fully_booted` catches Asterisk's own signal that a start is complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.tool_scripts import ToolScriptError, check_script, run_script

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "tools" / "testpbx"
FAREND_SCRIPT = REPO / "tools" / "sipfarend"

# A first start builds the chroot (a download of Asterisk); later ones take a second.
START_TIMEOUT = 600.0
STOP_TIMEOUT = 60.0
RESTART_TIMEOUT = 120.0
AMI_TIMEOUT = 10.0
# The AMI user of tools/testpbx that may read the FullyBooted event (class "system").
BOOT_WATCH_USER = "boot-watch"
# How often fully_booted() tries to connect while nothing listens. Asterisk listens on
# AMI only a few ms before it has fully booted, and TCP has no way to tell a client
# when a port opens, so the watcher must try often to be in before the event.
BOOT_WATCH_RETRY = 0.005

AmiMessage = dict[str, str]


@dataclass
class TestPbx:
    host: str
    port: int
    username: str
    secret: str

    # The environment of tools/testpbx for this instance (None: this process's own).
    env: dict[str, str] | None = None

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

    def second(self, directory: Path, port: int) -> TestPbx:
        """Another instance of the test PBX: its own chroot in `directory` and AMI
        `port`, for tests of two hosts on one machine."""
        env = {**os.environ, "CALLBACKD_TESTPBX_DIR": str(directory)}
        env["CALLBACKD_TESTPBX_AMI_PORT"] = str(port)
        return TestPbx(self.host, port, self.username, self.secret, env)

    def _run(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return run_script(SCRIPT, *args, timeout=timeout, env=self.env)

    def _check(self, *args: str, timeout: float) -> str:
        return check_script(SCRIPT, *args, timeout=timeout, env=self.env)

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

    async def stop_async(self) -> None:
        await asyncio.to_thread(self.stop)

    async def start_async(self) -> None:
        await asyncio.to_thread(self.start)

    async def restart(self) -> None:
        """Stop and start Asterisk (calls in progress are cut); returns when it is up."""
        proc = await asyncio.create_subprocess_exec(
            str(SCRIPT),
            "restart",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self.env,  # a second instance restarts itself, not the first
        )
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), RESTART_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise ToolScriptError(
                f"tools/testpbx restart: no result in {RESTART_TIMEOUT} s"
            ) from None
        if proc.returncode != 0:
            raise ToolScriptError(f"tools/testpbx restart failed: {output.decode().strip()}")


PORT_NAMES = ("AMI_PORT", "SIP_PORT", "FAREND_PORT", "FAREND_MEDIA_PORT", "FAREND_CTRL_PORT")


def pbx_ports(env: Mapping[str, str]) -> dict[str, int]:
    """The ports tools/testpbx-env.bash gives a test PBX in that environment."""
    script = f"source {REPO / 'tools' / 'testpbx-env.bash'}; " + "; ".join(
        f'echo "{name}=${name}"' for name in (*PORT_NAMES, "RTP_START", "RTP_END")
    )
    done = subprocess.run(
        ["bash", "-c", script], env=dict(env), capture_output=True, text=True, check=True
    )
    return {k: int(v) for k, v in (line.split("=") for line in done.stdout.splitlines())}


@dataclass(frozen=True)
class Invite:
    """One INVITE the far end received, as its log line tells (tools/sipp/farend.xml)."""

    user: str  # the dialled number (user part of the Request-URI)
    call_id: str
    from_header: str
    pai_header: str

    @property
    def caller_number(self) -> str:
        return _identity(self.from_header)[1]

    @property
    def caller_name(self) -> str:
        return _identity(self.from_header)[0]

    @property
    def asserted_number(self) -> str:
        return _identity(self.pai_header)[1]


# `"Display name" <sip:user@host>;params`, the display name optional and quoted with
# backslash escapes (RFC 3261 name-addr).
_NAME_ADDR = re.compile(r'^\s*(?:"((?:[^"\\]|\\.)*)"\s*)?<sip:([^@>;]*)')


def _identity(value: str) -> tuple[str, str]:
    match = _NAME_ADDR.match(value)
    if match is None:
        return "", ""
    name = re.sub(r"\\(.)", r"\1", match.group(1) or "")
    return name, match.group(2)


@dataclass
class SipFarEnd:
    """The SIPp UAS that the test PBX's PJSIP trunk `farend` dials (tools/sipfarend)."""

    invites_log: Path

    # PJSIP/{number}@farend: the channel template that reaches it.
    CHANNEL = "PJSIP/{number}@farend"

    @classmethod
    def from_env(cls) -> SipFarEnd:
        pbx_dir = Path(os.environ.get("CALLBACKD_TESTPBX_DIR", REPO / ".testpbx"))
        return cls(invites_log=pbx_dir / "farend" / "invites.log")

    def is_running(self) -> bool:
        return run_script(FAREND_SCRIPT, "status", timeout=30).returncode == 0

    def start(self) -> None:
        """Install SIPp if missing and start it; returns once it listens."""
        check_script(FAREND_SCRIPT, "start", timeout=START_TIMEOUT)

    def stop(self) -> None:
        check_script(FAREND_SCRIPT, "stop", timeout=STOP_TIMEOUT)

    def invites(self) -> list[Invite]:
        """Every INVITE received since the far end started, in order. The far end logs
        an INVITE before it answers it, so once Asterisk reported a call's end, its
        INVITEs are here."""
        found = []
        for line in self.invites_log.read_text(encoding="utf-8", errors="replace").splitlines():
            fields = line.split("\t")
            if len(fields) != 4 or not fields[0].startswith("INVITE sip:"):
                continue
            request, call_id, from_field, pai_field = fields
            user = request.removeprefix("INVITE sip:").split("@", 1)[0]
            found.append(
                Invite(
                    user=user,
                    call_id=call_id,
                    from_header=from_field.removeprefix("From:"),
                    pai_header=pai_field.removeprefix("P-Asserted-Identity:"),
                )
            )
        return found

    def invites_to(self, number: str) -> list[Invite]:
        return [invite for invite in self.invites() if invite.user == number]


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


async def _read_frame(reader: asyncio.StreamReader) -> AmiMessage | None:
    """The next frame, or None once the link is closed."""
    try:
        return await _read_message(reader)
    except (ConnectionError, OSError):
        return None


async def fully_booted(pbx: TestPbx, timeout: float = RESTART_TIMEOUT) -> float:  # noqa: ASYNC109
    """The loop time at which the next Asterisk to start on `pbx` says it has fully
    booted: its FullyBooted event, read as the `boot-watch` user, which may read the
    `system` class. Call it once the previous Asterisk is gone; it connects again and
    again while nothing listens. A session that logs in after the boot gets the same
    event at once, so the time is then at most one retry late."""
    loop = asyncio.get_running_loop()
    login = _render(
        [
            ("Action", "Login"),
            ("Username", BOOT_WATCH_USER),
            ("Secret", pbx.secret),
            ("Events", "system"),
        ]
    )

    async def watch() -> float:
        while True:
            try:
                reader, writer = await asyncio.open_connection(pbx.host, pbx.port)
            except OSError:
                await asyncio.sleep(BOOT_WATCH_RETRY)
                continue
            try:
                await reader.readline()  # the banner
                writer.write(login)
                while (frame := await _read_frame(reader)) is not None:
                    if frame.get("Event") == "FullyBooted":
                        return loop.time()
            except OSError:
                pass  # an Asterisk on its way down; the next one is coming
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    return await asyncio.wait_for(watch(), timeout)
