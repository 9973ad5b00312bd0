"""The test PBX (tools/testpbx) as the PBX benchmarks see it: its AMI address, secret
and chroot (from the same CALLBACKD_TESTPBX_* variables as the script), Asterisk's CPU
time, and `CallWatcher`, an AMI connection of its own that follows calls by their
channels."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ami.client import ConnectionSettings
from ami.events import AmiEvent, header, name
from ami.protocol import FrameDecoder, encode_frame

REPO = Path(__file__).resolve().parents[1]
PHONES = "Local/{number}@phones"
# Sees every call event (no event filter); may also hang channels up.
OBSERVER = "callbackd-unfiltered"


@dataclass(frozen=True)
class TestPbx:
    host: str
    port: int
    secret: str
    directory: Path

    @classmethod
    def from_env(cls) -> TestPbx:
        env = os.environ
        return cls(
            host="127.0.0.1",
            port=int(env.get("CALLBACKD_TESTPBX_AMI_PORT", "5038")),
            secret=env.get("CALLBACKD_TESTPBX_SECRET", "callbackd-test"),
            directory=Path(env.get("CALLBACKD_TESTPBX_DIR", REPO / ".testpbx")),
        )

    @property
    def root(self) -> Path:
        return self.directory / "root"

    @property
    def spool(self) -> Path:
        """Asterisk's /var/spool/asterisk, seen from outside the chroot."""
        return self.root / "var" / "spool" / "asterisk"

    def ami(self, user: str = "callbackd") -> ConnectionSettings:
        return ConnectionSettings(self.host, self.port, user, self.secret)

    def version(self) -> str:
        built = self.directory / "built"
        return built.read_text().strip() if built.is_file() else ""

    def asterisk_pid(self) -> int | None:
        try:
            return int((self.root / "run" / "asterisk" / "asterisk.pid").read_text())
        except (OSError, ValueError):
            return None

    def asterisk_cpu_seconds(self) -> float | None:
        """User + system time of the Asterisk process, all threads; None if unknown."""
        pid = self.asterisk_pid()
        if pid is None:
            return None
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        # Fields after the command name (which may hold spaces): state is the first,
        # utime the 12th, stime the 13th.
        fields = stat.rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def unquoted(value: str) -> str:
    """A PhoneReport value as the dialplan's QUOTE() wrote it, without the quotes."""
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


class CallWatcher:
    """Follows every call on the PBX by its Linkedid (all channels of one callback share
    it). A call becomes one of ours when one of its phones raises `UserEvent:
    PhoneReport` and `claim` accepts the report; it is complete once the last of its
    channels has hung up, which is how the raw AMI client counts its own calls.
    `b_leg` (e.g. "Local/1000@phones-") names the B channels whose time in a bridge
    tells that a callback is up."""

    def __init__(
        self,
        claim: Callable[[AmiEvent], bool],
        on_complete: Callable[[str], None] = lambda linkedid: None,
        b_leg: str = "",
    ) -> None:
        self.claim = claim
        self.on_complete = on_complete
        self.b_leg = b_leg
        self.channels: dict[str, dict[str, str]] = {}  # linkedid -> uniqueid -> name
        self.ours: set[str] = set()
        self.completed = 0
        self.b_in_bridge: dict[str, set[str]] = {}  # our linkedid -> its B legs bridged
        self.lost = False  # the connection ended (Asterisk restarted, say)
        self._changed = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None

    @property
    def live(self) -> int:
        """Calls of ours with a channel still up."""
        return sum(1 for linkedid in self.ours if self.channels.get(linkedid))

    @property
    def bridged(self) -> int:
        """Calls of ours whose B leg is in a bridge now."""
        return sum(1 for legs in self.b_in_bridge.values() if legs)

    async def connect(self, pbx: TestPbx, user: str = OBSERVER) -> None:
        reader, self._writer = await asyncio.open_connection(pbx.host, pbx.port)
        await reader.readline()  # the banner
        self._writer.write(
            encode_frame({"Action": "Login", "Username": user, "Secret": pbx.secret})
        )
        decoder = FrameDecoder()
        answer = None
        async with asyncio.timeout(10):
            while answer is None:
                data = await reader.read(65536)
                if not data:
                    raise SystemExit(f"AMI closed the connection before the login as {user}")
                # The first frame that is not an event answers the login.
                frames = [f.headers for f in decoder.feed(data) if f.headers is not None]
                answer = next((f for f in frames if name(f) is None), None)
        if answer.get("Response") != "Success":
            raise SystemExit(f"AMI login as {user} failed: {answer.get('Message')}")
        self._reading = asyncio.create_task(self._read(reader, decoder))

    async def close(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            await asyncio.gather(self._reading, return_exceptions=True)
        if self._writer is not None:
            self._writer.close()

    async def wait_until(self, condition: Callable[[], bool], within: float) -> bool:
        """True once `condition` holds (checked after every batch of events), False if
        it still does not after `within` seconds."""
        deadline = time.monotonic() + within
        while not condition():
            if self.lost:
                return False
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), deadline - time.monotonic())
            except TimeoutError:
                return condition()
        return True

    async def hang_up_ours(self, settle: float = 10) -> int:
        """Hang up every channel of our calls still up; returns how many calls had one.
        Waits up to `settle` s for them to be gone. Without a connection nothing can be
        known or done (`lost` says so)."""
        left = [linkedid for linkedid in self.ours if self.channels.get(linkedid)]
        if self.lost or self._writer is None:
            return 0
        for linkedid in left:
            for channel in self.channels[linkedid].values():
                self._writer.write(encode_frame({"Action": "Hangup", "Channel": channel}))
        await self.wait_until(lambda: self.live == 0, settle)
        return len(left)

    async def _read(self, reader: asyncio.StreamReader, decoder: FrameDecoder) -> None:
        try:
            while data := await reader.read(65536):
                for frame in decoder.feed(data):
                    if frame.headers is not None:
                        self._on_event(frame.headers)
                self._changed.set()
                self._changed = asyncio.Event()
        except ConnectionError:
            pass
        self.lost = True
        self._changed.set()

    def _on_event(self, ev: AmiEvent) -> None:
        kind = name(ev)
        linkedid = header(ev, "Linkedid")
        if kind == "Newchannel":
            self.channels.setdefault(linkedid, {})[header(ev, "Uniqueid")] = header(ev, "Channel")
        elif kind == "Hangup":
            self._hung_up(linkedid, header(ev, "Uniqueid"))
        elif kind == "UserEvent" and header(ev, "UserEvent") == "PhoneReport":
            if linkedid not in self.ours and self.claim(ev):
                self.ours.add(linkedid)
                self.b_in_bridge[linkedid] = set()
        elif kind in ("BridgeEnter", "BridgeLeave") and linkedid in self.b_in_bridge:
            channel = header(ev, "Channel")
            if self.b_leg and channel.startswith(self.b_leg) and channel.endswith(";1"):
                legs = self.b_in_bridge[linkedid]
                if kind == "BridgeEnter":
                    legs.add(header(ev, "Uniqueid"))
                else:
                    legs.discard(header(ev, "Uniqueid"))

    def _hung_up(self, linkedid: str, uniqueid: str) -> None:
        channels = self.channels.get(linkedid)
        if channels is None:
            return
        channels.pop(uniqueid, None)
        self.b_in_bridge.get(linkedid, set()).discard(uniqueid)
        if channels:
            return
        del self.channels[linkedid]
        if linkedid in self.ours:
            self.ours.discard(linkedid)
            self.b_in_bridge.pop(linkedid, None)
            self.completed += 1
            self.on_complete(linkedid)
