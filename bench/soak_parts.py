"""What the soak (`bench/soak.py`) runs and watches, apart from the scenario itself:

- `DaemonProcess`: the real `callbackd run` (the venv's console script) as a
  subprocess, its log appended to a file, killable and restartable on the same store;
- `SoakProxy`: a TCP forwarder for the daemon's AMI link that the soak can cut;
- `SoakMonitor`: the soak's own AMI connection to the test PBX (user without event
  filter), keeping only what the checks need so that hours of events stay small;
- `Tmpfs`: the store on a small tmpfs, so the disk can be made full for a moment;
- small readers: VmRSS of a pid, Prometheus text, histogram quantiles.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from ami.outcome import dial_side
from bench.figures import code_version
from tests.acceptance.lifecycle_helpers import AmiMonitor
from tests.pbx import TestPbx, _read_message
from tests.tcp_proxy import TcpProxy

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def callbackd_command() -> list[str]:
    script = Path(sys.executable).with_name("callbackd")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from callbackd.cli import main; main()"]


class DaemonProcess:
    """One `callbackd run --config FILE` at a time; `start()` again runs a new process on
    the same config and store. Every process appends its stderr to `log_path`."""

    def __init__(self, config: Path, port: int, log_path: Path) -> None:
        self.config = config
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0
        # the code each start ran: the daemon runs from the working tree, which other
        # work may change while the soak runs
        self.versions: list[str] = []

    @property
    def pid(self) -> int | None:
        if self.process is None or self.process.returncode is not None:
            return None
        return self.process.pid

    async def start(self, session: aiohttp.ClientSession) -> float:
        """Spawn and wait for /healthz; the seconds it took."""
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("CALLBACKD_")}
        env.pop("CREDENTIALS_DIRECTORY", None)
        began = time.monotonic()
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts + 1} at {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            self.process = await asyncio.create_subprocess_exec(
                *callbackd_command(),
                "run",
                "--config",
                str(self.config),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
            )
        self.starts += 1
        self.versions.append(code_version())
        async with asyncio.timeout(START_TIMEOUT):
            while not await self.healthy(session):
                if self.process.returncode is not None:
                    raise RuntimeError(
                        f"callbackd exited with {self.process.returncode}: {self.log_tail()}"
                    )
                await asyncio.sleep(0.1)
        return time.monotonic() - began

    async def healthy(self, session: aiohttp.ClientSession) -> bool:
        try:
            async with session.get(
                self.url + "/healthz", timeout=aiohttp.ClientTimeout(total=2)
            ) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def kill(self) -> int:
        """SIGKILL: no cleanup at all, like a crash."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        return await self.process.wait()

    async def terminate(self) -> int:
        """SIGTERM, as systemd stops it; SIGKILL if it does not exit in time."""
        assert self.process is not None
        if self.process.returncode is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                return await self.process.wait()
        except TimeoutError:
            return await self.kill()

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "".join(text.splitlines(keepends=True)[-lines:])


class SoakProxy(TcpProxy):
    """tests/tcp_proxy.py, but a client whose upstream cannot be reached (Asterisk is
    restarting) is closed at once instead of left hanging."""

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._links.update({writer, up_writer})
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )


class SoakMonitor(AmiMonitor):
    """The AmiMonitor of the acceptance tests, keeping only A-side DialBegins and the
    PhoneReports of this run's calls (ORDER_ID starts with `tag`)."""

    def __init__(self, pbx: TestPbx, tag: str) -> None:
        super().__init__(pbx)
        self.tag = tag
        self.seen = 0
        # (Linkedid = call uuid, DialString) of every A-side DialBegin on the PBX
        self.a_dials: list[tuple[str, str]] = []
        # (CallUUID, Number, ORDER_ID) of every phone that rang for this run
        self.phone_reports: list[tuple[str, str, str]] = []
        self.gaps: list[float] = []  # wall-clock times of lost connections

    async def _take_events(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                msg = await _read_message(reader)
                kind = msg.get("Event")
                if kind is None:
                    continue
                self.seen += 1
                call = msg.get("Linkedid") or msg.get("DestLinkedid", "")
                if kind == "DialBegin" and dial_side(msg, call) == "A":
                    self.a_dials.append((call, msg.get("DialString", "")))
                elif (
                    kind == "UserEvent"
                    and msg.get("UserEvent") == "PhoneReport"
                    and msg.get("ORDER_ID", "").startswith(self.tag)
                ):
                    self.phone_reports.append(
                        (msg.get("CallUUID", ""), msg.get("Number", ""), msg["ORDER_ID"])
                    )
        finally:
            self.gaps.append(time.time())


class Tmpfs:
    """A tmpfs of `size_mb` on `path` (root only); `fill()` takes every free byte."""

    def __init__(self, path: Path, size_mb: int) -> None:
        self.path = path
        self.size_mb = size_mb
        self.mounted = False
        self.filler = path / "filler.bin"

    def mount(self) -> str | None:
        """None when mounted, else why not."""
        self.path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return "not root"
        done = subprocess.run(
            [
                "mount",
                "-t",
                "tmpfs",
                "-o",
                f"size={self.size_mb}m,mode=0755",
                "soakstore",
                self.path,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            return (done.stdout + done.stderr).strip()
        self.mounted = True
        return None

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self) -> int:
        """Write zeros until the file system is full; the bytes written."""
        written = 0
        chunk = b"\0" * (1 << 20)
        with self.filler.open("wb", buffering=0) as f:
            while True:
                try:
                    n = f.write(chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    chunk = b"\0" * 4096
                    try:
                        n = f.write(chunk)
                    except OSError:
                        break
                written += n or 0
        return written

    def unfill(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> str | None:
        if not self.mounted:
            return None
        done = subprocess.run(["umount", self.path], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return (done.stdout + done.stderr).strip()
        self.mounted = False
        return None


def vm_rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {'name{labels}': value} (comments dropped)."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        with contextlib.suppress(ValueError):
            samples[key] = float(value)
    return samples


@dataclass
class Histogram:
    """Cumulative buckets of one Prometheus histogram, summed over daemon processes."""

    buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count
    count: float = 0.0
    total: float = 0.0

    def add(self, samples: dict[str, float], name: str) -> None:
        for key, value in samples.items():
            if key.startswith(name + "_bucket{"):
                le_text = key.split('le="', 1)[1].split('"', 1)[0]
                le = math.inf if le_text == "+Inf" else float(le_text)
                self.buckets[le] = self.buckets.get(le, 0.0) + value
        self.count += samples.get(name + "_count", 0.0)
        self.total += samples.get(name + "_sum", 0.0)

    def quantile(self, q: float) -> float | None:
        """Linear interpolation inside the bucket holding the q-th observation (as
        Prometheus' histogram_quantile does); None without observations."""
        if self.count <= 0:
            return None
        rank = q * self.count
        lower, below = 0.0, 0.0
        for le in sorted(self.buckets):
            cum = self.buckets[le]
            if cum >= rank:
                if math.isinf(le):
                    return lower
                if cum == below:
                    return le
                return lower + (le - lower) * (rank - below) / (cum - below)
            lower, below = le, cum
        return lower


def percentile(values: Iterable[float], q: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def slope_per_minute(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per minute."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 60.0
