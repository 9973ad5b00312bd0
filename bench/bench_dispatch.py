"""Dispatch benchmarks (not run by pytest).

fake: latency from a task's due time to its Originate being written, with --pending
      tasks in a real SQLite store of which --due come due in the same second, once per
      round (--rounds rounds, --spacing seconds apart); Scheduler + CallEngine on the
      system clock against a fake AMI in a child process that answers Originate at once
      (and never ends the call, so only dispatching is measured). Limits are high.

pbx:  --calls short callbacks (A 1001: answers at once, talks 1 s; B 1000: answers and
      hangs up at once) on the real test PBX, --concurrent at a time, through callbackd
      (Scheduler + CallEngine + SQLite store, the daemon's JSON logging to /dev/null):
      completed callbacks/s and the process CPU time per completed callback; then a
      minimal raw AMI client on one connection sending the same Originate, keeping
      --concurrent calls in flight and counting a call complete once every channel of
      it has hung up. Alternated --repeat times.

    .venv/bin/python -m bench.bench_dispatch fake [--pending 100000] [--due 1000] [--rounds 10]
    .venv/bin/python -m bench.bench_dispatch pbx [--calls 1000] [--concurrent 200] [--repeat 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ami.client import AmiClient, AmiSettings, Fields, OriginateSent
from ami.events import name
from ami.originate import CallRequest, originate_fields
from ami.outcome import Outcome, Result
from ami.protocol import FrameDecoder, encode_frame
from bench.bench_ami import SECRET, server_process
from config import Settings
from config.settings import LogSettings
from daemon.clock import SystemClock
from daemon.engine import CallEngine
from daemon.logsetup import configure_logging
from daemon.models import QueueInput, TaskInput, format_time
from daemon.retry import NextStep
from daemon.scheduler import EngineEvents, Scheduler
from daemon.store.attempts import AttemptRepository, TaskRecord
from daemon.store.db import Database
from daemon.store.queues import QueueRepository
from daemon.store.tasks import TaskRepository

CLIENT = "bench"
PBX = ("127.0.0.1", 5038, "callbackd", "callbackd-test")
A_NUMBER, B_NUMBER = "1001", "1000"
PHONES = "Local/{number}@phones"


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def cpu_seconds() -> float:
    """CPU time of this process, all threads (the store's SQLite thread included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def settings(max_concurrent: int) -> Settings:
    return Settings(
        calls={
            "a_channel": PHONES,
            "b_channel": PHONES,
            "a_ring_timeout": 10,
            "b_ring_timeout": 10,
            "max_concurrent": max_concurrent,
        }
    )


async def add_tasks(
    db: Database, queue_id: int, count: int, start: datetime | None, chunk: int = 10_000
) -> None:
    when = format_time(start) if start else None
    for i in range(0, count, chunk):
        tasks = [
            TaskInput(a_number=A_NUMBER, b_number=B_NUMBER, start_time_utc=when)
            for _ in range(min(chunk, count - i))
        ]
        await TaskRepository(db).add(
            CLIENT, queue_id, tasks, format_time(datetime.now(UTC)), render=lambda made: ""
        )


@dataclass
class Listener:
    """Passes the engine's reports to the scheduler and counts ended attempts."""

    inner: EngineEvents
    expected: int
    done: asyncio.Event = field(default_factory=asyncio.Event)
    results: dict[Result, int] = field(default_factory=dict)
    task_of: dict[str, int] = field(default_factory=dict)  # call uuid -> task id

    async def attempt_started(self, record: TaskRecord, call_uuid: str) -> None:
        self.task_of[call_uuid] = record.id
        await self.inner.attempt_started(record, call_uuid)

    async def call_bridged(self, task_id: int, call_uuid: str) -> None:
        await self.inner.call_bridged(task_id, call_uuid)

    async def attempt_withdrawn(self, task_id: int) -> None:
        await self.inner.attempt_withdrawn(task_id)

    async def attempt_ended(
        self, task_id: int, call_uuid: str, outcome: Outcome, step: NextStep | None
    ) -> None:
        await self.inner.attempt_ended(task_id, call_uuid, outcome, step)
        self.results[outcome.result] = self.results.get(outcome.result, 0) + 1
        if sum(self.results.values()) >= self.expected:
            self.done.set()


class TimedAmi(AmiClient):
    """Notes when each Originate is written: the write happens in the same step as the
    call to originate(), before its first await."""

    def __init__(self, ami: AmiSettings, expected: int) -> None:
        super().__init__(ami)
        self.sent: list[tuple[str, datetime]] = []  # (call uuid, when)
        self.expected = expected
        self.all_sent = asyncio.Event()

    async def originate(self, fields: Fields) -> OriginateSent:
        self.sent.append((str(fields["ChannelId"]), datetime.now(UTC)))
        if len(self.sent) >= self.expected:
            self.all_sent.set()
        return await super().originate(fields)


@dataclass
class Daemon:
    db: Database
    ami: AmiClient
    engine: CallEngine
    scheduler: Scheduler
    listener: Listener
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def open(
        cls, path: Path, ami: AmiClient, config: Settings, expected: int, queue_limit: int
    ) -> tuple[Daemon, int]:
        db = await Database.open(path)
        queue = await QueueRepository(db).create(
            CLIENT,
            QueueInput(name="bench", status="on", concurrent_task_limit=queue_limit),
            format_time(datetime.now(UTC)),
        )
        clock = SystemClock()
        engine = CallEngine(ami, AttemptRepository(db), clock, lambda: config)
        scheduler = Scheduler(db, engine, clock, lambda: config)
        listener = Listener(EngineEvents(scheduler, lambda: None), expected)
        engine.listener = listener
        engine.on_ready = scheduler.wake
        return cls(db, ami, engine, scheduler, listener), queue.id

    async def start_engine(self) -> None:
        await self.ami.start()
        self.tasks.append(asyncio.create_task(self.engine.run()))
        if not await self.engine.wait_ready(15):
            raise SystemExit(f"AMI not ready: {self.engine.last_error}")

    def start_scheduler(self) -> None:
        self.tasks.append(asyncio.create_task(self.scheduler.run()))

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.engine.drain()
        await self.ami.stop()
        await self.db.close()


# --- fake: dispatch latency ---------------------------------------------------------------


async def bench_fake(args: argparse.Namespace) -> None:
    expected = args.due * args.rounds
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp, server_process() as port:
        ami = TimedAmi(AmiSettings("127.0.0.1", port, "callbackd", SECRET), expected)
        config = settings(max_concurrent=args.pending)
        daemon, queue_id = await Daemon.open(
            Path(tmp) / "cb.db", ami, config, expected, queue_limit=10_000
        )
        try:
            built = time.perf_counter()
            await add_tasks(
                daemon.db, queue_id, args.pending - expected, datetime.now(UTC) + timedelta(days=1)
            )
            # Due times are whole seconds; the first round leaves time to start up.
            first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=args.lead)
            dues = [first + timedelta(seconds=r * args.spacing) for r in range(args.rounds)]
            due_of: dict[int, int] = {}  # task id -> round
            for r, due in enumerate(dues):
                last = await daemon.db.fetch_value("SELECT coalesce(max(id), 0) FROM tasks")
                await add_tasks(daemon.db, queue_id, args.due, due)
                due_of.update((last + 1 + i, r) for i in range(args.due))
            lead = (first - datetime.now(UTC)).total_seconds()
            print(f"  ({args.pending:,} tasks stored in {time.perf_counter() - built:.1f} s)")
            if lead < 2:
                raise SystemExit(f"storing took too long: raise --lead (first due in {lead:.1f} s)")
            await daemon.start_engine()
            daemon.start_scheduler()
            await asyncio.wait_for(ami.all_sent.wait(), dues[-1].timestamp() - time.time() + 60)
        finally:
            await daemon.close()

    rounds: list[list[float]] = [[] for _ in dues]
    for call_uuid, sent in ami.sent:
        r = due_of[daemon.listener.task_of[call_uuid]]
        rounds[r].append((sent - dues[r]).total_seconds() * 1000)
    firsts = [min(ms) for ms in rounds]
    batch = [ms for r in rounds for ms in r]
    spans = [max(ms) - min(ms) for ms in rounds]
    print(f"$ {shlex.join(['.venv/bin/python', '-m', 'bench.bench_dispatch', *sys.argv[1:]])}")
    print(
        f"{args.pending:,} pending tasks, {args.due:,} due in the same second, "
        f"{args.rounds} rounds; Originates counted: {len(ami.sent):,}"
    )
    print(
        f"  first in line:  p50 {percentile(firsts, 50):7.1f} ms  p99 {percentile(firsts, 99):7.1f}"
        f" ms  max {max(firsts):7.1f} ms  (target p99 <= 50 ms)"
    )
    print(
        f"  whole batch:    p50 {percentile(batch, 50):7.1f} ms  p99 {percentile(batch, 99):7.1f}"
        f" ms  max {max(batch):7.1f} ms"
    )
    rate = statistics.median(len(r) / (s / 1000) for r, s in zip(rounds, spans, strict=True) if s)
    span = statistics.median(spans)
    print(f"  one batch of {args.due:,} takes {span:,.0f} ms: {rate:,.0f} Originates/s")
    each = ", ".join(f"{min(ms):.0f}/{max(ms):.0f}" for ms in rounds)
    print(f"  per round, first/last in ms: {each}")


# --- pbx: callbacks/s and CPU per callback ------------------------------------------------


@dataclass
class PbxRun:
    label: str
    calls: int
    seconds: float
    cpu: float
    results: dict[str, int]

    @property
    def rate(self) -> float:
        return self.calls / self.seconds


async def run_callbackd(calls: int, concurrent: int) -> PbxRun:
    with tempfile.TemporaryDirectory(prefix="bench-pbx-") as tmp:
        host, port, user, secret = PBX
        ami = AmiClient(AmiSettings(host, port, user, secret))
        daemon, queue_id = await Daemon.open(
            Path(tmp) / "cb.db", ami, settings(concurrent), calls, queue_limit=concurrent
        )
        try:
            await add_tasks(daemon.db, queue_id, calls, None)
            await daemon.start_engine()
            cpu0, t0 = cpu_seconds(), time.perf_counter()
            daemon.start_scheduler()
            await asyncio.wait_for(daemon.listener.done.wait(), calls + 60)
            seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        finally:
            await daemon.close()
    results = {str(k): v for k, v in daemon.listener.results.items()}
    return PbxRun("callbackd (Scheduler + CallEngine + SQLite)", calls, seconds, cpu, results)


async def run_raw(calls: int, concurrent: int) -> PbxRun:
    """One connection, the same Originate, ``concurrent`` calls in flight; a call is
    complete when every channel of it has hung up."""
    host, port, user, secret = PBX
    reader, writer = await asyncio.open_connection(host, port)
    await reader.readline()
    writer.write(encode_frame({"Action": "Login", "Username": user, "Secret": secret}))
    live: dict[str, set[str]] = {}
    completed = 0
    sent = 0
    done = asyncio.Event()

    def originate() -> None:
        nonlocal sent
        call_uuid = str(uuid.uuid4())
        live[call_uuid] = set()
        request = CallRequest(
            call_uuid, [A_NUMBER], B_NUMBER, PHONES, PHONES, a_ring_timeout=10, b_ring_timeout=10
        )
        fields: dict[str, Any] = {**originate_fields(request), "ActionID": call_uuid}
        writer.write(encode_frame(fields))
        sent += 1

    async def read() -> None:
        nonlocal completed
        decoder = FrameDecoder()
        while data := await reader.read(65536):
            for frame in decoder.feed(data):
                ev = frame.headers
                if ev is None or name(ev) not in ("Newchannel", "Hangup"):
                    continue
                channels = live.get(ev.get("Linkedid", ""))
                if channels is None:
                    continue
                if name(ev) == "Newchannel":
                    channels.add(ev.get("Uniqueid", ""))
                    continue
                channels.discard(ev.get("Uniqueid", ""))
                if not channels:
                    del live[ev["Linkedid"]]
                    completed += 1
                    if sent < calls:
                        originate()
                    elif completed == calls:
                        done.set()

    cpu0, t0 = cpu_seconds(), time.perf_counter()
    reading = asyncio.create_task(read())
    for _ in range(min(concurrent, calls)):
        originate()
    try:
        await asyncio.wait_for(done.wait(), calls + 60)
    finally:
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        reading.cancel()
        writer.close()
    return PbxRun("raw AMI client (one connection)", calls, seconds, cpu, {"completed": completed})


async def bench_pbx(args: argparse.Namespace) -> None:
    runs: dict[str, list[PbxRun]] = {}
    runners: list[Callable[[int, int], Any]] = [run_callbackd, run_raw]
    for _ in range(args.repeat):
        for runner in runners:
            run = await runner(args.calls, args.concurrent)
            runs.setdefault(run.label, []).append(run)
            print(f"  {run.label}: {run.rate:,.1f} callbacks/s, {run.results}")
    print(f"$ {shlex.join(['.venv/bin/python', '-m', 'bench.bench_dispatch', *sys.argv[1:]])}")
    print(
        f"{args.calls:,} callbacks (A {A_NUMBER}, B {B_NUMBER}) per run, "
        f"{args.concurrent} at a time, real test PBX"
    )
    rates = {}
    for label, each in runs.items():
        rates[label] = statistics.median(r.rate for r in each)
        cpu_ms = statistics.median(r.cpu / r.calls * 1000 for r in each)
        listed = ", ".join(f"{r.rate:.1f}" for r in each)
        print(
            f"  {label:<44} {rates[label]:6.1f} callbacks/s  {cpu_ms:5.2f} ms CPU per callback"
            f"  (runs: {listed})"
        )
    ours, raw = rates.values()
    print(f"  callbackd / raw ceiling: {ours / raw:.0%} (target >= 90 %)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    fake = sub.add_parser("fake", help="dispatch latency against the fake AMI")
    fake.add_argument("--pending", type=int, default=100_000)
    fake.add_argument("--due", type=int, default=1_000)
    fake.add_argument("--rounds", type=int, default=10)
    fake.add_argument("--spacing", type=int, default=12, help="seconds between rounds")
    fake.add_argument("--lead", type=int, default=10, help="seconds until the first round")
    pbx = sub.add_parser("pbx", help="callbacks/s and CPU per callback on the test PBX")
    pbx.add_argument("--calls", type=int, default=1_000)
    pbx.add_argument("--concurrent", type=int, default=200)
    pbx.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    with open(os.devnull, "w") as devnull:
        configure_logging(LogSettings(level="info", format="json"), stream=devnull)
        asyncio.run(bench_fake(args) if args.what == "fake" else bench_pbx(args))


if __name__ == "__main__":
    main()
