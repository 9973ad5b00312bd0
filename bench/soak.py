"""Soak test of the real daemon on the real test PBX (not run by pytest; `make soak`).

    .venv/bin/python -m bench.soak [--minutes 10] [--tasks 100000] [--rate 1.5]

1. Starts `callbackd run` with its store on a small tmpfs and its AMI link through a TCP
   forwarder, a webhook receiver (tests/webhook_receiver.py) and an AMI monitor of its
   own on the test PBX.
2. Stores --tasks tasks through the API in bulk POSTs: most start a month from now (they
   must stay untouched), the rest flow: spread over the run at --rate tasks/s (plus a
   small batch POSTed every 30 s with an Idempotency-Key, retried until taken), with a
   mix of phones: answer and talk 1-3 s, A busy, A no answer, A congestion, B busy,
   B no answer, invalid A, invalid B, 9NTT busy-once.
3. For --minutes: samples the daemon's VmRSS every 3 s, times a /healthz round trip
   every second (event-loop lag seen from outside), scrapes /metrics every 5 s, makes
   the receiver slow now and then, and injects each fault once: AMI link cut, Asterisk
   restart, daemon SIGKILL + restart on the same store, store disk full for ~20 s,
   webhook receiver down for ~2 min. A daemon that exits by itself is restarted after
   2 s, as systemd's Restart=on-failure would, and reported.
4. Waits for the flowing tasks to finish and the outbox to empty, then checks every
   task's final state against its numbers, that no task is stuck or lost, that the
   parked tasks are untouched, that no phone rang twice for one attempt, and that every
   webhook arrived exactly once after de-duplication by webhook-id.

Prints a Markdown report; the raw figures go to bench/out/soak-<timestamp>.json.
Needs root for the tmpfs (without it the store stays on disk and the disk-full fault is
skipped) and the test PBX running (`tools/testpbx start`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import shlex
import shutil
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bench.soak_parts import (
    DaemonProcess,
    Histogram,
    SoakMonitor,
    SoakProxy,
    Tmpfs,
    parse_metrics,
    percentile,
    slope_per_minute,
    vm_rss_kb,
)
from tests.pbx import TestPbx, ami_action
from tests.webhook_receiver import WebhookReceiver, free_port

OUT = Path(__file__).resolve().parent / "out"
TOKEN = "soak-token-acme-0123456789"
SECRET = "whsec_" + base64.b64encode(b"soak-webhook-signing-key-32bytes").decode()
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
PARKED_QUEUES = 4
FLOW_QUEUES = 3
FLOW_QUEUE_LIMIT = 7
MAX_CONCURRENT = 20
PARKED_PER_FLOW_QUEUE = 1000
BULK = 10_000
LIVE_EVERY = 30.0
LIVE_BATCH = 10
RING_TIMEOUT = 4
WEBHOOK_TIMEOUT = 2.0
HOLD_EVERY = 75.0
HOLD_FOR = 6.0  # longer than WEBHOOK_TIMEOUT: the held webhooks time out and are retried
RESTART_SEC = 2.0  # systemd's RestartSec of the shipped unit
TMPFS_MB = 256
FAULT_SLACK = timedelta(seconds=5)

Json = dict[str, Any]


def utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime(TIME_FORMAT)


def parse_utc(text: str) -> datetime:
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


# --- the mix of calls ------------------------------------------------------------------


def a_talker(talk: int) -> Callable[[random.Random], str]:
    """1NTT as A: rings 0-1 s, then stays `talk` s on the line (long enough for what B
    does: a 1NTT A hangs up by itself after TT s)."""
    return lambda rng: f"1{rng.randint(0, 1)}{talk:02d}"


def b_talker(rng: random.Random) -> str:
    """1NTT as B: answers at once and talks 1-3 s, then hangs up (the end of the call)."""
    return f"10{rng.randint(1, 3):02d}"


def busy_once(rng: random.Random) -> str:
    """9NTT with N = 2-3 (the acceptance tests pick N = 0-1): busy the first time it is
    called since Asterisk started, then rings N s and stays TT = 5-8 s on the line."""
    return f"9{rng.randint(2, 3)}{rng.randint(5, 8):02d}"


def phone(first: str | tuple[str, ...]) -> Callable[[random.Random], str]:
    firsts = (first,) if isinstance(first, str) else first
    return lambda rng: f"{rng.choice(firsts)}{rng.randint(0, 999):03d}"


@dataclass(frozen=True)
class Kind:
    name: str
    weight: int
    a: Callable[[random.Random], str]
    b: Callable[[random.Random], str]
    try_count: int
    result: str  # the task's finish_result
    comment: str  # its finish_comment
    attempts: tuple[int, int]  # attempts_made, least and most, without faults
    per_attempt: frozenset[str]  # the result_comment each attempt may have


CONNECTED = "A and B connected"


def kind(
    name: str,
    weight: int,
    a: Callable[[random.Random], str],
    b: Callable[[random.Random], str],
    comment: str,
    attempts: int,
) -> Kind:
    """A kind whose every attempt ends the same way; try_count 2."""
    result = "success" if comment == CONNECTED else "failed"
    return Kind(name, weight, a, b, 2, result, comment, (attempts, attempts), frozenset({comment}))


KINDS = [
    kind("answer+talk 1-3 s", 30, a_talker(6), b_talker, CONNECTED, 1),
    kind("A busy", 10, phone("2"), b_talker, "A busy", 2),
    kind("A no answer", 8, phone("3"), b_talker, "A did not answer", 2),
    kind("A congestion", 5, phone("4"), b_talker, "A congestion", 2),
    kind("B busy", 10, a_talker(6), phone("2"), "B busy", 2),
    kind("B no answer", 7, a_talker(9), phone("3"), "B did not answer", 2),
    kind("A invalid", 8, phone(("5", "6")), b_talker, "A number invalid", 1),
    kind("B invalid", 7, a_talker(6), phone(("5", "6")), "B number invalid", 1),
    Kind(
        "9NTT busy once",
        15,
        busy_once,
        b_talker,
        3,
        "success",
        CONNECTED,
        (1, 3),
        frozenset({"A busy", CONNECTED}),
    ),
]
KIND_BY_NAME = {kind.name: kind for kind in KINDS}


# --- the soak --------------------------------------------------------------------------


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.stamp = time.strftime("%Y%m%d-%H%M%S")
        self.tag = f"soak{uuid.uuid4().hex[:8]}"
        self.dir = OUT / f"soak-{self.stamp}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.duration = args.minutes * 60.0
        self.pbx = TestPbx.from_env()
        self.port = free_port()
        self.tmpfs = Tmpfs(self.dir / "store", TMPFS_MB)
        self.receiver = WebhookReceiver()
        self.proxy = SoakProxy(self.pbx.host, self.pbx.port)
        self.monitor = SoakMonitor(self.pbx, self.tag)
        self.daemon: DaemonProcess
        self.session: aiohttp.ClientSession
        self.t0 = time.monotonic()  # reset when the calls start flowing
        self.wall0 = datetime.now(UTC)
        self.flowing = True
        self.expected_exit = False
        self.restarted = asyncio.Event()  # set when the soak itself restarted the daemon
        self.flow_queues: list[int] = []
        self.probe_queue = 0  # switched off: the disk-full fault POSTs into it
        self.probe_stored = 0  # tasks the probe POSTs were answered 201 for
        self.parked_queues: list[int] = []
        self.kind_of: dict[int, str] = {}  # flowing task id -> kind name
        self.parked_count: dict[int, int] = defaultdict(int)  # queue id -> parked tasks
        self.parked_sample: list[Json] = []
        self.rss: list[tuple[float, int, int]] = []  # (t, pid, kB)
        self.health: list[tuple[float, float | None]] = []  # (t, round trip ms)
        self.ready_log: list[tuple[float, int, str]] = []  # readiness changes
        self.metrics_by_pid: dict[int, dict[str, float]] = {}
        self.faults: list[Json] = []
        self.windows: list[tuple[str, datetime, datetime]] = []  # fault windows (UTC)
        self.crashes: list[Json] = []
        self.live_posts: list[Json] = []
        self.holds: list[float] = []
        self.load: Json = {}
        self.checks: list[tuple[str, bool, str]] = []
        self.figures: Json = {}
        self.notes: list[str] = []

    # --- helpers ---

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 1)

    def say(self, text: str) -> None:
        print(f"[soak T{self.now():+7.1f}s] {text}", file=sys.stderr, flush=True)

    @property
    def base(self) -> str:
        return f"{self.daemon.url}/client/acme"

    async def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,  # noqa: ASYNC109
        params: dict[str, str] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        async with self.session.request(
            method,
            self.base + path,
            json=body,
            params=params or {},
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            data = await response.json(content_type=None)
            return response.status, data, dict(response.headers)

    async def must(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        status, data, _ = await self.api(method, path, body, params=params)
        if not 200 <= status < 300:
            raise RuntimeError(f"{method} {path}: {status} {data}")
        return data

    async def readyz(self) -> tuple[int, str]:
        try:
            async with self.session.get(
                self.daemon.url + "/readyz", timeout=aiohttp.ClientTimeout(total=5)
            ) as response:
                return response.status, (await response.text()).strip()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return 0, type(exc).__name__

    async def scrape(self) -> dict[str, float] | None:
        pid = self.daemon.pid
        if pid is None:
            return None
        try:
            async with self.session.get(
                self.daemon.url + "/metrics", timeout=aiohttp.ClientTimeout(total=10)
            ) as response:
                samples = parse_metrics(await response.text())
        except (aiohttp.ClientError, TimeoutError):
            return None
        self.metrics_by_pid[pid] = samples
        return samples

    def config_text(self, store: Path) -> str:
        return f"""
[api]
listen = "127.0.0.1:{self.port}"
[api.tokens]
"{TOKEN}" = "acme"

[store]
path = "{store}"

[ami]
host = "{self.proxy.host}"
port = {self.proxy.port}
username = "{self.pbx.username}"
secret = "{self.pbx.secret}"
ping_interval = 2.0

[calls]
max_concurrent = {MAX_CONCURRENT}
a_channel = "Local/{{number}}@phones"
b_channel = "Local/{{number}}@phones"
a_ring_timeout = {RING_TIMEOUT}
b_ring_timeout = {RING_TIMEOUT}

[webhooks]
secret = "{SECRET}"
timeout = {WEBHOOK_TIMEOUT}
max_attempts = 12
deny_networks = []

[log]
level = "info"
format = "json"
"""

    def task_input(self, kind: Kind, label: str, start: datetime | None) -> Json:
        task: Json = {
            "name": f"{self.tag}-{kind.name}",
            "a_number": kind.a(self.rng),
            "b_number": kind.b(self.rng),
            "try_count": kind.try_count,
            "try_again_pause": 5,
            "url_before": self.receiver.url("/before"),
            "url_before_again": self.receiver.url("/before_again"),
            "url_success": self.receiver.url("/success"),
            "url_after": self.receiver.url("/after"),
            "variables": {"ORDER_ID": f"{self.tag}-{label}", "CUSTOMER": kind.name},
        }
        if start is not None:
            task["start_time_utc"] = utc(start)
        return task

    def pick_kind(self) -> Kind:
        return self.rng.choices(KINDS, weights=[k.weight for k in KINDS])[0]

    # --- setup and load ---

    async def setup(self) -> None:
        if not self.pbx.is_running():
            raise SystemExit("the test PBX is not running: tools/testpbx start")
        why = self.tmpfs.mount()
        if why is not None:
            self.notes.append(f"store on disk, disk-full fault skipped: tmpfs not mounted ({why})")
        store = self.tmpfs.path / "callbackd.db"
        await self.proxy.__aenter__()
        await self.receiver.start()
        await self.monitor.start()
        config = self.dir / "callbackd.toml"
        config.write_text(self.config_text(store))
        self.daemon = DaemonProcess(config, self.port, self.dir / "daemon.log")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        self.session = aiohttp.ClientSession(headers=headers)
        took = await self.daemon.start(self.session)
        self.say(f"daemon pid {self.daemon.pid} up in {took:.1f} s; store {store}")

    async def load_tasks(self, flow_total: int) -> None:
        """Queues, then the parked tasks (a month ahead) in bulk POSTs of 10,000."""
        for i in range(PARKED_QUEUES):
            body = {"name": f"{self.tag}-parked-{i}", "status": "on", "concurrent_task_limit": 10}
            self.parked_queues.append(
                int((await self.must("POST", "/task_scheduler/", body))["id"])
            )
        body = {"name": f"{self.tag}-probe", "status": "off"}
        self.probe_queue = int((await self.must("POST", "/task_scheduler/", body))["id"])
        for i in range(FLOW_QUEUES):
            body = {
                "name": f"{self.tag}-flow-{i}",
                "status": "on",
                "concurrent_task_limit": FLOW_QUEUE_LIMIT,
            }
            self.flow_queues.append(int((await self.must("POST", "/task_scheduler/", body))["id"]))
        parked_total = self.args.tasks - flow_total
        plan: list[tuple[int, int]] = []  # (queue, how many)
        in_flow = min(PARKED_PER_FLOW_QUEUE, parked_total // (FLOW_QUEUES + PARKED_QUEUES))
        for queue in self.flow_queues:
            plan.append((queue, in_flow))
        rest = parked_total - in_flow * FLOW_QUEUES
        for i, queue in enumerate(self.parked_queues):
            plan.append((queue, rest // PARKED_QUEUES + (1 if i < rest % PARKED_QUEUES else 0)))
        month = datetime.now(UTC) + timedelta(days=30)
        began = time.monotonic()
        posts: list[float] = []
        n = 0
        for queue, count in plan:
            for offset in range(0, count, BULK):
                tasks = []
                for _ in range(min(BULK, count - offset)):
                    kind = self.pick_kind()
                    tasks.append(self.task_input(kind, f"parked-{n}", month + timedelta(seconds=n)))
                    n += 1
                sent = time.monotonic()
                key = f"{self.tag}-parked-{queue}-{offset}"
                status, data, _ = await self.api(
                    "POST",
                    f"/task_scheduler/{queue}/tasks/",
                    {"tasks": tasks},
                    headers={"Idempotency-Key": key},
                    timeout=300,
                )
                if status != 201:
                    raise RuntimeError(f"bulk POST: {status} {str(data)[:500]}")
                posts.append(time.monotonic() - sent)
                self.parked_count[queue] += len(data["tasks"])
                for made in self.rng.sample(data["tasks"], min(25, len(data["tasks"]))):
                    self.parked_sample.append(made)
        took = time.monotonic() - began
        self.load = {
            "parked_tasks": n,
            "bulk_posts": len(posts),
            "seconds": round(took, 1),
            "tasks_per_s": round(n / took) if took else None,
            "post_seconds_median": round(sorted(posts)[len(posts) // 2], 2) if posts else None,
        }
        self.say(f"stored {n} parked tasks in {took:.1f} s ({len(posts)} bulk POSTs)")

    async def post_flow(self, count: int) -> None:
        """The flowing tasks, their start times spread evenly over the run."""
        start = datetime.now(UTC) + timedelta(seconds=2)
        by_queue: dict[int, list[tuple[Kind, Json]]] = defaultdict(list)
        for i in range(count):
            kind = self.pick_kind()
            at = start + timedelta(seconds=i * self.duration / max(count, 1))
            queue = self.flow_queues[i % FLOW_QUEUES]
            by_queue[queue].append((kind, self.task_input(kind, f"flow-{i}", at)))
        for queue, items in by_queue.items():
            body = {"tasks": [task for _, task in items]}
            status, data, _ = await self.api(
                "POST",
                f"/task_scheduler/{queue}/tasks/",
                body,
                headers={"Idempotency-Key": f"{self.tag}-flow-{queue}"},
                timeout=120,
            )
            if status != 201:
                raise RuntimeError(f"flow POST: {status} {str(data)[:500]}")
            for (kind, _), made in zip(items, data["tasks"], strict=True):
                self.kind_of[int(made["id"])] = kind.name

    # --- background loops ---

    async def every(self, seconds: float, probe: Callable[[], Awaitable[None]]) -> None:
        while True:
            began = time.monotonic()
            with contextlib.suppress(Exception):
                await probe()
            await asyncio.sleep(max(0.0, seconds - (time.monotonic() - began)))

    async def sample_rss(self) -> None:
        pid = self.daemon.pid
        if pid is not None and (kb := vm_rss_kb(pid)) is not None:
            self.rss.append((self.now(), pid, kb))

    async def ping_health(self) -> None:
        if self.daemon.pid is None:
            return
        began = time.perf_counter()
        try:
            async with self.session.get(
                self.daemon.url + "/healthz", timeout=aiohttp.ClientTimeout(total=5)
            ) as response:
                await response.read()
                ok = response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        self.health.append((self.now(), (time.perf_counter() - began) * 1000 if ok else None))

    async def watch_ready(self) -> None:
        status, body = await self.readyz()
        if not self.ready_log or self.ready_log[-1][1:] != (status, body):
            self.ready_log.append((self.now(), status, body))

    async def scrape_metrics(self) -> None:
        await self.scrape()

    async def watch_daemon(self) -> None:
        """Restart a daemon that exited by itself after RESTART_SEC, as systemd would."""
        while True:
            proc = self.daemon.process
            assert proc is not None
            code = await proc.wait()
            if self.expected_exit:
                await self.restarted.wait()
                self.restarted.clear()
                continue
            crash: Json = {
                "at_s": self.now(),
                "exit_code": code,
                "log_tail": self.daemon.log_tail(8),
            }
            self.crashes.append(crash)
            self.say(f"daemon exited by itself with {code}; restarting in {RESTART_SEC:g} s")
            while True:
                await asyncio.sleep(RESTART_SEC)
                try:
                    crash["restart_s"] = round(await self.daemon.start(self.session), 1)
                    crash["restarted_at_s"] = self.now()
                    break
                except Exception as exc:
                    crash.setdefault("restart_errors", []).append(str(exc)[-300:])
                    self.say("restart failed; trying again")

    async def add_live(self) -> None:
        """Every LIVE_EVERY s a small batch of due tasks, retried with the same
        Idempotency-Key until the daemon takes it."""
        n = 0
        while self.flowing and n < int(self.duration // LIVE_EVERY):
            await asyncio.sleep(LIVE_EVERY)
            if not self.flowing:
                return
            queue = self.flow_queues[n % FLOW_QUEUES]
            kinds = [self.pick_kind() for _ in range(LIVE_BATCH)]
            body = {
                "tasks": [self.task_input(k, f"live-{n}-{i}", None) for i, k in enumerate(kinds)]
            }
            entry: Json = {"batch": n, "at_s": self.now(), "tries": []}
            self.live_posts.append(entry)
            key = f"{self.tag}-live-{n}"
            n += 1
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                try:
                    status, data, headers = await self.api(
                        "POST",
                        f"/task_scheduler/{queue}/tasks/",
                        body,
                        headers={"Idempotency-Key": key},
                        timeout=15,
                    )
                except (aiohttp.ClientError, TimeoutError) as exc:
                    entry["tries"].append([self.now(), type(exc).__name__])
                    await asyncio.sleep(3)
                    continue
                entry["tries"].append([self.now(), status])
                if status in (200, 201):
                    entry["replayed"] = headers.get("Idempotent-Replayed") == "true"
                    for kind, made in zip(kinds, data["tasks"], strict=True):
                        self.kind_of[int(made["id"])] = kind.name
                    break
                entry["problem"] = str(data)[:300]
                await asyncio.sleep(3)

    async def slow_receiver(self, quiet: list[tuple[float, float]]) -> None:
        """Hold the webhooks for HOLD_FOR s every HOLD_EVERY s, outside `quiet` spans."""
        at = 40.0
        while at + HOLD_FOR < self.duration:
            if not any(lo <= at <= hi for lo, hi in quiet):
                await asyncio.sleep(max(0.0, at - self.now()))
                self.holds.append(self.now())
                self.receiver.hold()
                await asyncio.sleep(HOLD_FOR)
                self.receiver.release()
            at += HOLD_EVERY

    # --- faults ---

    async def wait_ready(self, since: float, limit: float = 180.0) -> Json:
        """Poll /readyz every 0.25 s until 200: what it said on the way."""
        seen: list[str] = []
        while self.now() - since < limit:
            status, body = await self.readyz()
            if status == 200:
                return {"ready_after_s": round(self.now() - since, 1), "not_ready_said": seen}
            text = f"{status} {body}"[:160]
            if text not in seen:
                seen.append(text)
            await asyncio.sleep(0.25)
        return {"ready_after_s": None, "not_ready_said": seen}

    def mark(self, name: str, began: datetime, calls: bool = True) -> None:
        """A fault window; `calls`: the fault may change calls (a webhook receiver
        that is down may not: docs/webhooks.md)."""
        if calls:
            self.windows.append((name, began - FAULT_SLACK, datetime.now(UTC) + FAULT_SLACK))

    async def in_progress(self) -> float | None:
        samples = await self.scrape()
        return samples.get("callbackd_calls_in_progress") if samples else None

    async def fault_ami_cut(self) -> Json:
        before = await self.scrape() or {}
        calls = before.get("callbackd_calls_in_progress")
        began, wall = self.now(), datetime.now(UTC)
        links = self.proxy.connections
        self.proxy.cut()
        # /readyz may still say 200 before the daemon has read the EOF: first wait for
        # its new login through the forwarder
        for _ in range(1200):  # 60 s
            if self.proxy.connections > links:
                break
            await asyncio.sleep(0.05)
        relogin = round(self.now() - began, 2)
        ready = await self.wait_ready(began, 60)
        after = await self.scrape() or {}
        self.mark("AMI cut", wall)
        return {
            "calls_in_progress": calls,
            "new_ami_connection_after_s": relogin,
            "proxy_connections_after": self.proxy.connections - links,
            "ami_reconnects_metric": after.get("callbackd_ami_reconnects_total", 0)
            - before.get("callbackd_ami_reconnects_total", 0),
        } | ready

    async def fault_pbx_restart(self) -> Json:
        calls = await self.in_progress()
        began, wall = self.now(), datetime.now(UTC)
        gaps = len(self.monitor.gaps)
        before = await self.scrape() or {}
        await self.pbx.restart()
        took = self.now() - began
        ready = await self.wait_ready(began, 180)
        # the daemon may have logged in again before the first poll: its counter says
        while self.now() - began < 60:
            after = await self.scrape() or {}
            if (
                after.get("callbackd_ami_reconnects_total", 0)
                > before.get("callbackd_ami_reconnects_total", 0)
                and len(self.monitor.gaps) > gaps
            ):
                break
            await asyncio.sleep(0.5)
        self.mark("Asterisk restart", wall)
        return {
            "calls_in_progress": calls,
            "restart_took_s": round(took, 1),
            "monitor_lost_link": len(self.monitor.gaps) - gaps,
            "ami_reconnects_metric": after.get("callbackd_ami_reconnects_total", 0)
            - before.get("callbackd_ami_reconnects_total", 0),
        } | ready

    async def fault_kill(self) -> Json:
        calls = await self.in_progress()
        executed = await self.count_status("executed")
        began, wall = self.now(), datetime.now(UTC)
        old = self.daemon.pid
        self.expected_exit = True
        try:
            code = await self.daemon.kill()
            await asyncio.sleep(RESTART_SEC)
            took = await self.daemon.start(self.session)
        finally:
            self.expected_exit = False
            self.restarted.set()
        ready = await self.wait_ready(began, 120)
        self.mark("daemon SIGKILL", wall)
        return {
            "calls_in_progress": calls,
            "executed_tasks": executed,
            "old_pid": old,
            "exit_code": code,
            "new_pid": self.daemon.pid,
            "healthz_after_start_s": round(took, 1),
        } | ready

    async def fault_disk_full(self, hold: float) -> Json:
        if not self.tmpfs.mounted:
            return {"skipped": "the store is not on a tmpfs"}
        crashes = len(self.crashes)
        began, wall = self.now(), datetime.now(UTC)
        free = self.tmpfs.free_bytes()
        written = await asyncio.to_thread(self.tmpfs.fill)
        said: list[str] = []
        posts: list[str] = []
        bulk = ""
        until = time.monotonic() + hold
        while time.monotonic() < until:
            status, body = await self.readyz()
            text = f"{status} {body}"[:160]
            if text not in said:
                said.append(text)
            if len(posts) < 3 and self.daemon.pid is not None:
                posts.append(await self.probe_post(1))
            if len(posts) == 3 and not bulk and self.daemon.pid is not None:
                # small writes fit in the WAL file's old space; a bulk add needs more
                bulk = await self.probe_post(BULK)
            await asyncio.sleep(1.0)
        self.tmpfs.unfill()
        freed_at = self.now()
        ready = await self.wait_ready(freed_at, 120)
        self.mark("disk full", wall)
        return {
            "free_before_mb": round(free / 2**20, 1),
            "filled_mb": round(written / 2**20, 1),
            "held_s": round(freed_at - began, 1),
            "readyz_while_full": said,
            "one_task_post_while_full": posts,
            "bulk_post_while_full": bulk,
            "daemon_exits_during": len(self.crashes) - crashes,
            "ready_after_freed_s": ready["ready_after_s"],
            "not_ready_said_after": ready["not_ready_said"],
        }

    async def probe_post(self, n: int) -> str:
        """POST `n` tasks into the probe queue (switched off); its status and problem.
        What was stored is counted from the queue at the end."""
        tasks = [self.task_input(KINDS[0], f"probe-{i}", None) for i in range(n)]
        try:
            code, data, _ = await self.api(
                "POST", f"/task_scheduler/{self.probe_queue}/tasks/", {"tasks": tasks}, timeout=60
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"{n} tasks: {type(exc).__name__}"
        if code == 201:
            self.probe_stored += len(data["tasks"])
            return f"{n} tasks: 201"
        return f"{n} tasks: {code} {json.dumps(data)[:200]}"

    async def fault_receiver_down(self, down: float) -> Json:
        before = await self.scrape() or {}
        began, wall = self.now(), datetime.now(UTC)
        await self.receiver.stop()
        most_pending = 0.0
        until = time.monotonic() + down
        while time.monotonic() < until:
            await asyncio.sleep(5)
            samples = await self.scrape() or {}
            most_pending = max(most_pending, samples.get("callbackd_webhooks_pending", 0.0))
        await self.receiver.start()
        up = self.now()
        after = await self.scrape() or {}
        # how long until the backlog is gone
        cleared = None
        while self.now() - up < 240:
            samples = await self.scrape() or {}
            if samples.get("callbackd_webhooks_pending", 1) == 0:
                cleared = round(self.now() - up, 1)
                break
            await asyncio.sleep(2)
        self.mark("receiver down", wall, calls=False)
        same_pid = bool(before) and self.daemon.pid is not None
        return {
            "down_s": round(up - began, 1),
            "most_webhooks_pending": most_pending,
            "failed_tries_metric": (
                after.get("callbackd_webhook_failures_total", 0)
                - before.get("callbackd_webhook_failures_total", 0)
                if same_pid
                else None
            ),
            "backlog_cleared_after_up_s": cleared,
        } | await self.wait_ready(self.now(), 30)

    async def count_status(self, status: str) -> int:
        total = 0
        for queue in self.flow_queues:
            _, _, headers = await self.api(
                "GET", f"/task_scheduler/{queue}/tasks/", params={"status": status, "per_page": "1"}
            )
            total += int(headers.get("X-Total-Count", "0"))
        return total

    async def run_faults(self) -> None:
        d = self.duration
        down = min(120.0, 0.2 * d)
        full = 20.0 if d >= 300 else max(8.0, 0.05 * d)
        plan: list[tuple[str, float, str, Callable[[], Awaitable[Json]]]] = [
            ("ami", 0.12 * d, "AMI connection cut", self.fault_ami_cut),
            ("pbx", 0.27 * d, "Asterisk restarted", self.fault_pbx_restart),
            ("kill", 0.42 * d, "daemon SIGKILLed and restarted", self.fault_kill),
            (
                "disk",
                0.57 * d,
                f"store disk full for {full:g} s",
                lambda: self.fault_disk_full(full),
            ),
            (
                "receiver",
                0.70 * d,
                f"webhook receiver down for {down:g} s",
                lambda: self.fault_receiver_down(down),
            ),
        ]
        chosen = set(self.args.faults.split(",")) if self.args.faults else set()
        for key, at, name, fault in plan:
            if key not in chosen:
                self.notes.append(f"fault not injected (--faults): {name}")
                continue
            await asyncio.sleep(max(0.0, at - self.now()))
            self.say(f"fault: {name}")
            began = self.now()
            try:
                seen = await fault()
            except Exception as exc:
                seen = {"error": f"{type(exc).__name__}: {exc}"}
            seen["readyz_changes_1s"] = [
                [t, status, body[:100]]
                for t, status, body in self.ready_log
                if began <= t <= self.now() + 1
            ]
            self.faults.append({"fault": name, "at_s": began} | seen)
            self.say(f"fault done: {json.dumps(seen)[:400]}")

    def fault_quiet_spans(self) -> list[tuple[float, float]]:
        """Where the receiver must not be held: 3 min before its outage to the end (a
        held webhook retried into the outage would wait 10 min for its next try)."""
        d = self.duration
        return [(0.70 * d - 180, d)]

    # --- the run ---

    async def run(self) -> int:
        loops: list[asyncio.Task[None]] = []
        code = 1
        try:
            await self.setup()
            flow_total_planned = int(self.args.rate * self.duration)
            live_planned = int(self.duration // LIVE_EVERY) * LIVE_BATCH
            await self.load_tasks(flow_total_planned + live_planned)
            self.t0 = time.monotonic()
            self.wall0 = datetime.now(UTC)
            await self.post_flow(flow_total_planned)
            self.say(f"calls flowing: {flow_total_planned} tasks over {self.duration:g} s")
            for seconds, probe in (
                (3.0, self.sample_rss),
                (1.0, self.ping_health),
                (1.0, self.watch_ready),
                (5.0, self.scrape_metrics),
            ):
                loops.append(asyncio.create_task(self.every(seconds, probe)))
            loops.append(asyncio.create_task(self.watch_daemon()))
            live = asyncio.create_task(self.add_live())
            slow = asyncio.create_task(self.slow_receiver(self.fault_quiet_spans()))
            await self.run_faults()
            await asyncio.sleep(max(0.0, self.duration - self.now()))
            self.flowing = False
            await live
            slow.cancel()
            self.receiver.release()
            self.say("flow window over; draining")
            await self.drain()
            await self.scrape()
            await self.collect_and_check()
            code = 0 if all(ok for _, ok, _ in self.checks) else 1
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self.shutdown()
        self.report()
        return code

    async def drain(self) -> None:
        began = self.now()
        parked = {q: self.parked_count[q] for q in self.flow_queues}
        left: dict[int, int] = {}
        while self.now() - began < self.args.drain:
            left = {}
            for queue in self.flow_queues:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, RuntimeError):
                    data = await self.must("GET", f"/task_scheduler/{queue}")
                    left[queue] = int(data["sched_task_count"]) - parked[queue]
            if left and not any(left.values()):
                break
            await asyncio.sleep(2)
        self.figures["drain_tasks_s"] = round(self.now() - began, 1)
        self.figures["unfinished_after_drain"] = sum(left.values()) if left else None
        while self.now() - began < self.args.drain + 120:
            samples = await self.scrape() or {}
            if samples.get("callbackd_webhooks_pending", 1) == 0:
                break
            await asyncio.sleep(2)
        self.figures["drain_total_s"] = round(self.now() - began, 1)
        self.say(f"drained in {self.figures['drain_total_s']} s")

    async def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            if getattr(self, "daemon", None) is not None and self.daemon.process is not None:
                self.expected_exit = True
                self.figures["sigterm_exit_code"] = await self.daemon.terminate()
        with contextlib.suppress(Exception):
            await self.session.close()
        with contextlib.suppress(Exception):
            await self.monitor.stop()
        with contextlib.suppress(Exception):
            await self.receiver.stop()
        with contextlib.suppress(Exception):
            await self.proxy.__aexit__()
        if self.tmpfs.mounted:
            self.tmpfs.unfill()
            keep = self.dir / "store-copy"
            with contextlib.suppress(OSError):
                shutil.copytree(self.tmpfs.path, keep)
            why = self.tmpfs.unmount()
            if why:
                self.notes.append(f"tmpfs not unmounted: {why}")

    # --- what is checked at the end ---

    async def pages(self, path: str, **params: str) -> list[Json]:
        items: list[Json] = []
        page = 1
        while True:
            data = await self.must("GET", path, page=str(page), per_page="1000", **params)
            items.extend(data)
            if len(data) < 1000:
                return items
            page += 1

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append((name, ok, detail))

    def in_fault(self, call: Json) -> str | None:
        start = parse_utc(call["start_time_gmt"])
        end = parse_utc(call["end_time_gmt"]) if call.get("end_time_gmt") else start
        for name, lo, hi in self.windows + self.unplanned_windows():
            if start <= hi and end >= lo:
                return name
        return None

    def unplanned_windows(self) -> list[tuple[str, datetime, datetime]]:
        """Links to the PBX the monitor lost outside the planned Asterisk restart
        (another run restarting the shared PBX)."""
        planned = [lo for name, lo, _ in self.windows if name == "Asterisk restart"]
        found = []
        for gap in self.monitor.gaps:
            at = datetime.fromtimestamp(gap, UTC)
            if not any(abs((at - lo).total_seconds()) < 60 for lo in planned):
                found.append(
                    ("PBX link lost (not ours)", at - timedelta(seconds=30), at + FAULT_SLACK)
                )
        return found

    def judge(self, task: Json, calls: list[Json]) -> tuple[str, str]:
        """('ok' | 'fault' | 'wrong', why) for one flowing task."""
        kind = KIND_BY_NAME[self.kind_of[int(task["id"])]]
        comments = [c["result_comment"] for c in calls]
        why = (
            f"task {task['id']} {kind.name} A={task['a_number']} B={task['b_number']}: "
            f"{task['status']}/{task['finish_result']} {task['finish_comment']!r}, "
            f"attempts {comments}"
        )
        if task["status"] != "finished":
            return "wrong", why + " (not finished)"
        if len(calls) != task["attempts_made"]:
            return "wrong", why + f" ({task['attempts_made']} attempts made, {len(calls)} calls)"
        final_ok = (task["finish_result"], task["finish_comment"]) == (kind.result, kind.comment)
        count_ok = kind.attempts[0] <= len(calls) <= kind.attempts[1]
        odd = [c for c in calls if c["result_comment"] not in kind.per_attempt]
        if final_ok and count_ok and not odd:
            return "ok", why
        odd_outside = [c for c in odd if self.in_fault(c) is None]
        if odd and not odd_outside:
            faults = sorted({self.in_fault(c) or "" for c in odd})
            if final_ok or task["finish_comment"] in {c["result_comment"] for c in odd}:
                return "fault", why + f" (during {', '.join(faults)})"
        if kind.name == "9NTT busy once" and not odd and calls:
            # busy again after Asterisk forgot the number: a restart between attempts
            first, last = (
                parse_utc(calls[0]["start_time_gmt"]),
                parse_utc(calls[-1]["start_time_gmt"]),
            )
            restarts = [
                n
                for n, lo, hi in self.windows + self.unplanned_windows()
                if "restart" in n.lower() or "PBX" in n
                if first <= hi and last >= lo
            ]
            if restarts:
                return "fault", why + " (Asterisk restarted between its attempts)"
        return "wrong", why

    async def collect_and_check(self) -> None:
        tasks: dict[int, Json] = {}
        for queue in self.flow_queues:
            for task in await self.pages(f"/task_scheduler/{queue}/tasks/"):
                tasks[int(task["id"])] = task
        calls = await self.pages("/call_history/")
        by_task: dict[int, list[Json]] = defaultdict(list)
        for call in calls:
            by_task[int(call["task_id"])].append(call)
        for items in by_task.values():
            items.sort(key=lambda c: int(c["attempt"]))
        flow = {tid: tasks[tid] for tid in self.kind_of if tid in tasks}
        self.figures["tasks_flowing"] = len(self.kind_of)
        self.figures["calls_placed"] = len(calls)
        self.figures["outcomes"] = dict(Counter(c["result_comment"] for c in calls).most_common())
        statuses = Counter(t["status"] for t in flow.values())
        self.figures["flow_statuses"] = dict(statuses)

        # 1. every flowing task exists and ended as its numbers say
        verdicts: dict[str, list[str]] = defaultdict(list)
        per_kind: dict[str, Counter[str]] = defaultdict(Counter)
        for tid, name in self.kind_of.items():
            if tid not in flow:
                verdicts["wrong"].append(f"task {tid} ({name}) missing")
                continue
            verdict, why = self.judge(flow[tid], by_task.get(tid, []))
            verdicts[verdict].append(why)
            per_kind[name][verdict] += 1
        self.figures["per_kind"] = {k: dict(v) for k, v in per_kind.items()}
        self.figures["fault_affected_tasks"] = verdicts["fault"]
        self.figures["wrong_tasks"] = verdicts["wrong"]
        self.check(
            "every due task ended in the right final state for its numbers",
            not verdicts["wrong"],
            f"{len(verdicts['ok'])} as expected, {len(verdicts['fault'])} changed by a fault "
            f"(interrupted attempts inside a fault window), {len(verdicts['wrong'])} wrong"
            + (f"; first: {verdicts['wrong'][0]}" if verdicts["wrong"] else ""),
        )

        # 2. nothing stuck or lost
        stuck = [t for t in flow.values() if t["status"] != "finished"]
        open_calls = [c for c in calls if c["state"] != "ended"]
        live = await self.pbx_channels({c["call_uuid"] for c in calls})
        self.check(
            "no task stuck or lost after the drain",
            not stuck and not open_calls and not live and len(flow) == len(self.kind_of),
            f"{len(flow)}/{len(self.kind_of)} flowing tasks found, {len(stuck)} unfinished "
            f"({dict(Counter(t['status'] for t in stuck))}), {len(open_calls)} calls not "
            f"ended, {len(live)} channels of these calls still on the PBX",
        )

        # 3. the parked tasks are untouched
        await self.check_parked(tasks, by_task)

        # 4. nobody rang twice for one attempt
        self.check_rings(calls, flow)

        # 5. webhooks exactly once after de-duplication
        self.check_webhooks(flow, by_task)

        # 6. the daemon came back by itself after each fault
        slow = [
            f["fault"]
            for f in self.faults
            if "skipped" not in f and f.get("ready_after_s", f.get("ready_after_freed_s")) is None
        ]
        self.check(
            "ready again by itself after each fault (no exit, /readyz 200)",
            not slow and not self.crashes,
            f"{len(self.crashes)} exit(s) of the daemon by itself"
            + (f" (exit codes {[c['exit_code'] for c in self.crashes]})" if self.crashes else "")
            + (f"; not ready again: {slow}" if slow else ""),
        )

    async def pbx_channels(self, call_uuids: set[str]) -> list[str]:
        try:
            events = await ami_action(self.pbx, "CoreShowChannels")
        except Exception as exc:
            self.notes.append(f"CoreShowChannels failed: {exc}")
            return []
        return [
            ev.get("Channel", "")
            for ev in events
            if ev.get("Event") == "CoreShowChannel" and ev.get("Linkedid") in call_uuids
        ]

    async def check_parked(self, tasks: dict[int, Json], by_task: dict[int, list[Json]]) -> None:
        stored = 0
        scheduled = 0
        for queue in self.flow_queues + self.parked_queues:
            data = await self.must("GET", f"/task_scheduler/{queue}")
            stored += int(data["task_count"])
            _, _, headers = await self.api(
                "GET",
                f"/task_scheduler/{queue}/tasks/",
                params={"status": "scheduled", "per_page": "1"},
            )
            scheduled += int(headers.get("X-Total-Count", "0"))
        parked_total = sum(self.parked_count.values())
        changed = []
        keys = ("status", "attempts_made", "cdr", "next_attempt_utc", "start_time_utc", "a_number")
        for before in self.parked_sample:
            path = f"/task_scheduler/{before['scheduler_id']}/tasks/{before['id']}"
            now = await self.must("GET", path)
            if any(now[k] != before[k] for k in keys) or by_task.get(int(before["id"])):
                changed.append(before["id"])
        probe = await self.must("GET", f"/task_scheduler/{self.probe_queue}")
        self.figures["tasks_stored"] = stored
        self.figures["probe_tasks"] = int(probe["task_count"])
        self.check(
            "POSTs during the disk-full fault: all or nothing",
            int(probe["task_count"]) == self.probe_stored,
            f"probe queue holds {probe['task_count']} tasks; {self.probe_stored} were answered 201",
        )
        self.check(
            "parked (future) tasks untouched",
            scheduled == parked_total and not changed,
            f"{stored} tasks stored in {len(self.flow_queues) + len(self.parked_queues)} queues; "
            f"{scheduled} scheduled = {parked_total} parked; a sample of "
            f"{len(self.parked_sample)} read back: {len(changed)} changed",
        )

    def check_rings(self, calls: list[Json], flow: dict[int, Json]) -> None:
        ours = {c["call_uuid"]: c for c in calls}
        a_dials = Counter(uuid_ for uuid_, _ in self.monitor.a_dials if uuid_ in ours)
        twice = {u: n for u, n in a_dials.items() if n > 1}
        dialled = [c for c in calls if c["a_dial_status"]]
        unseen = [c["call_uuid"] for c in dialled if c["call_uuid"] not in a_dials]
        rings: Counter[tuple[str, str]] = Counter()
        strays = set()
        for call_uuid, number, _ in self.monitor.phone_reports:
            if call_uuid not in ours:
                strays.add(call_uuid)
            rings[(call_uuid, number)] += 1
        a_twice = [
            k
            for k, n in rings.items()
            if n > 1 and k[0] in ours and k[1] in ours[k[0]]["a_numbers"]
        ]
        b_twice = [
            k for k, n in rings.items() if n > 1 and k[0] in ours and k[1] == ours[k[0]]["b_number"]
        ]
        self.figures["monitor"] = {
            "events_seen": self.monitor.seen,
            "a_dialbegins_of_our_calls": sum(a_dials.values()),
            "phone_reports": len(self.monitor.phone_reports),
            "link_lost": len(self.monitor.gaps),
            "dialled_calls_not_seen": len(unseen),
        }
        self.check(
            "nobody called twice for one attempt",
            not twice and not a_twice and not b_twice and not strays,
            f"{len(dialled)} attempts dialled A; A-side DialBegins per call uuid: "
            f"{dict(Counter(a_dials.values()))}; {len(unseen)} not seen (monitor link down); "
            f"A phone rung twice in one call: {len(a_twice)}, B: {len(b_twice)}; "
            f"calls ringing our phones without a stored attempt: {len(strays)}",
        )

    def check_webhooks(self, flow: dict[int, Json], by_task: dict[int, list[Json]]) -> None:
        requests = list(self.receiver.requests)
        ids = Counter(r.webhook_id for r in requests)
        firsts: dict[str, Any] = {}
        for r in requests:
            if 200 <= r.status < 300 and r.webhook_id not in firsts:
                firsts[r.webhook_id] = r
        never = set(ids) - set(firsts)
        got: Counter[tuple[int, str]] = Counter()
        for r in firsts.values():
            body = r.json()
            got[(int(body["task"]["id"]), body["event"])] += 1
        wrong: list[str] = []
        expect_total: Counter[str] = Counter()
        for tid, task in flow.items():
            made = task["attempts_made"]
            want = {
                "before": 1 if made >= 1 else 0,
                "before_again": max(0, made - 1),
                "success": 1 if task["finish_result"] == "success" else 0,
                "after": 1 if task["status"] == "finished" else 0,
            }
            for event, n in want.items():
                expect_total[event] += n
                if got.get((tid, event), 0) != n:
                    wrong.append(f"task {tid} {event}: {got.get((tid, event), 0)} (want {n})")
        extra = [k for k in got if k[0] not in flow]
        given_up = sum(
            m.get("callbackd_webhooks_given_up_total", 0) for m in self.metrics_by_pid.values()
        )
        after = sum(n for (tid, event), n in got.items() if event == "after" and tid in flow)
        finished = sum(1 for t in flow.values() if t["status"] == "finished" and t["url_after"])
        self.figures["webhooks"] = {
            "requests_received": len(requests),
            "distinct_webhook_ids": len(ids),
            "repeats_deduplicated": len(requests) - len(ids),
            "never_answered_2xx": len(never),
            "delivered_by_event": dict(Counter(e for _, e in got.elements())),
            "expected_by_event": dict(expect_total),
            "given_up_metric": given_up,
        }
        self.check(
            "every webhook delivered exactly once after de-duplication",
            not wrong and not extra and not never and after == finished,
            f"`after` delivered {after} = finished tasks with url_after {finished}; "
            f"{len(requests)} requests, {len(ids)} webhook-ids ({len(requests) - len(ids)} "
            f"repeats de-duplicated), {len(never)} never answered 2xx, {len(wrong)} "
            f"task/event counts off, {len(extra)} for unknown tasks, given up {given_up:g}"
            + (f"; first: {wrong[0]}" if wrong else ""),
        )

    # --- the report ---

    def rss_segments(self) -> list[Json]:
        segments: list[Json] = []
        pids = list(dict.fromkeys(pid for _, pid, _ in self.rss))
        for pid in pids:
            points = [(t, kb / 1024) for t, p, kb in self.rss if p == pid]
            # the second half: a fresh process first fills its SQLite page caches
            # (cache_size 32 MB on each of its two connections)
            warm = points[len(points) // 2 :]
            slope = slope_per_minute(warm)
            segments.append(
                {
                    "pid": pid,
                    "from_s": points[0][0],
                    "to_s": points[-1][0],
                    "samples": len(points),
                    "first_mb": round(points[0][1], 1),
                    "last_mb": round(points[-1][1], 1),
                    "max_mb": round(max(v for _, v in points), 1),
                    "slope_mb_per_min": round(slope, 3) if slope is not None else None,
                    "slope_from_s": warm[0][0],
                }
            )
        return segments

    def report(self) -> None:
        command = " ".join(
            shlex.quote(a) for a in [".venv/bin/python", "-m", "bench.soak", *sys.argv[1:]]
        )
        histogram = Histogram()
        for samples in self.metrics_by_pid.values():
            histogram.add(samples, "callbackd_dispatch_latency_seconds")
        rtts = [ms for _, ms in self.health if ms is not None]
        segments = self.rss_segments()
        longest = max(segments, key=lambda s: s["to_s"] - s["from_s"]) if segments else None
        # A leak is growth: under 5 MB per 10 minutes over the second half of the
        # longest run. RSS that falls (a webhook backlog sent, caches given back) is not.
        flat = (
            longest is not None
            and longest["slope_mb_per_min"] is not None
            and longest["slope_mb_per_min"] * 10 < 5.0
        )
        load = os.getloadavg()

        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value * 1000:.0f} ms"

        lines = [
            f"# Soak report {self.stamp}",
            "",
            "```",
            f"# {command}",
            f"# python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
            f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end",
            "```",
            "",
            "| figure | value |",
            "|---|---|",
            f"| flow window | {self.args.minutes:g} min, then drain "
            f"{self.figures.get('drain_total_s')} s |",
            f"| tasks stored | {self.figures.get('tasks_stored')} "
            f"({self.load.get('parked_tasks')} "
            f"parked a month ahead in {self.load.get('bulk_posts')} bulk POSTs, "
            f"{self.load.get('tasks_per_s')} tasks/s; "
            f"{self.figures.get('tasks_flowing')} flowing) |",
            f"| calls placed (attempts) | {self.figures.get('calls_placed')} "
            f"({(self.figures.get('calls_placed') or 0) / max(self.duration, 1):.2f}/s) |",
            f"| attempt outcomes | {self.figures.get('outcomes')} |",
            "| RSS (longest daemon run) | "
            + (
                f"first {longest['first_mb']} MB, last {longest['last_mb']} MB, max "
                f"{longest['max_mb']} MB over {(longest['to_s'] - longest['from_s']) / 60:.1f} "
                f"min; slope over its second half {longest['slope_mb_per_min']} MB/min: "
                f"{'flat' if flat else 'NOT flat'}"
                if longest
                else "-"
            )
            + " |",
            "| RSS per daemon process | "
            + "; ".join(
                f"pid {s['pid']}: {s['first_mb']}→{s['last_mb']} MB (max {s['max_mb']}, "
                f"{s['slope_mb_per_min']} MB/min)"
                for s in segments
            )
            + " |",
            f"| event-loop lag, outside: /healthz round trip | p50 "
            f"{percentile(rtts, 0.5) or 0:.1f} ms, p99 {percentile(rtts, 0.99) or 0:.1f} ms, "
            f"max {max(rtts, default=0):.0f} ms ({len(rtts)} probes, "
            f"{sum(1 for _, m in self.health if m is None)} unanswered) |",
            f"| dispatch latency (/metrics histogram, due → Originate) | p50 "
            f"{ms(histogram.quantile(0.5))}, p99 {ms(histogram.quantile(0.99))}, mean "
            f"{ms(histogram.total / histogram.count if histogram.count else None)} "
            f"({histogram.count:.0f} dispatches) |",
            f"| webhooks | {self.figures.get('webhooks')} |",
            f"| receiver slow (held {HOLD_FOR:g} s > {WEBHOOK_TIMEOUT:g} s timeout) at | "
            f"{[round(h) for h in self.holds]} s |",
            f"| live batches POSTed during the run | {len(self.live_posts)} x {LIVE_BATCH}, "
            f"retried: {[p['tries'] for p in self.live_posts if len(p['tries']) > 1]} |",
            f"| AMI monitor | {self.figures.get('monitor')} |",
            f"| SIGTERM at the end | exit {self.figures.get('sigterm_exit_code')} |",
            f"| daemon code per start | {self.daemon.versions} |",
            "",
            "| kind of task | as expected | changed by a fault | wrong |",
            "|---|---|---|---|",
            *(
                f"| {k.name} (e.g. {k.a(random.Random(1))} -> {k.b(random.Random(1))}) | "
                f"{v.get('ok', 0)} | {v.get('fault', 0)} | {v.get('wrong', 0)} |"
                for k in KINDS
                if (v := self.figures.get("per_kind", {}).get(k.name)) is not None
            ),
            "",
            "## Faults",
            "",
            "| at | fault | observed |",
            "|---|---|---|",
        ]
        for fault in self.faults:
            seen = {k: v for k, v in fault.items() if k not in ("fault", "at_s")}
            lines.append(f"| T+{fault['at_s']:.0f} s | {fault['fault']} | {json.dumps(seen)} |")
        for crash in self.crashes:
            lines.append(
                f"| T+{crash['at_s']:.0f} s | daemon exited by itself ({crash['exit_code']}) | "
                f"restarted after {RESTART_SEC:g} s, healthy in {crash.get('restart_s')} s; "
                f"log: {json.dumps(crash['log_tail'][-600:])} |"
            )
        lines += ["", "## Checks", "", "| check | result | detail |", "|---|---|---|"]
        for name, ok, detail in self.checks:
            lines.append(f"| {name} | {'PASS' if ok else 'FAIL'} | {detail} |")
        if self.figures.get("wrong_tasks"):
            lines += ["", "Wrong tasks (first 20):", ""]
            lines += [f"- {w}" for w in self.figures["wrong_tasks"][:20]]
        if self.figures.get("fault_affected_tasks"):
            lines += ["", "Tasks changed by a fault (first 20):", ""]
            lines += [f"- {w}" for w in self.figures["fault_affected_tasks"][:20]]
        if self.notes:
            lines += ["", "Notes:", ""] + [f"- {n}" for n in self.notes]
        text = "\n".join(lines)
        print(text)
        raw = {
            "command": command,
            "stamp": self.stamp,
            "daemon_code": self.daemon.versions,
            "args": vars(self.args),
            "load": self.load,
            "figures": self.figures,
            "faults": self.faults,
            "crashes": self.crashes,
            "checks": [{"check": n, "ok": ok, "detail": d} for n, ok, d in self.checks],
            "rss_segments": segments,
            "rss_samples": self.rss,
            "healthz_ms": self.health,
            "readyz_changes": self.ready_log,
            "dispatch_latency_buckets": {str(k): v for k, v in sorted(histogram.buckets.items())},
            "live_posts": self.live_posts,
            "holds_at_s": self.holds,
            "metrics_last": {str(k): v for k, v in self.metrics_by_pid.items()},
            "notes": self.notes,
            "report_markdown": text,
        }
        path = OUT / f"soak-{self.stamp}.json"
        path.write_text(json.dumps(raw, indent=1, default=str))
        (self.dir / "report.md").write_text(text + "\n")
        print(
            f"\nraw figures: {path.relative_to(OUT.parent.parent)}; daemon log: "
            f"{self.daemon.log_path.relative_to(OUT.parent.parent)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="flow window (default 10)")
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks stored (default 100000)")
    parser.add_argument("--rate", type=float, default=1.5, help="flowing tasks per second")
    parser.add_argument("--drain", type=float, default=300.0, help="most seconds to drain")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--faults",
        default="ami,pbx,kill,disk,receiver",
        help="faults to inject, comma-separated (default: all five)",
    )
    args = parser.parse_args()
    sys.exit(asyncio.run(Soak(args).run()))


if __name__ == "__main__":
    main()
