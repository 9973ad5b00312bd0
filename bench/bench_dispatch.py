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
      minimal raw AMI client on one connection placing the same A->B call the minimal
      way (`Originate Channel=<A> Application=Dial Data=<B>`, not through callbackd's
      dialplan), keeping --concurrent calls in flight and counting a call complete once
      every channel of it has hung up; then Asterisk call files: that minimal Originate
      written into the PBX's spool (/var/spool/asterisk/outgoing in the chroot), --concurrent in the
      spool or in a call at a time, completions counted the same way by an AMI
      observer connection. Alternated --repeat times. Asterisk's CPU time per callback
      is read from /proc for each contender (it includes whatever else the shared PBX
      did meanwhile).

    .venv/bin/python -m bench.bench_dispatch fake [--pending 100000] [--due 1000] [--rounds 10]
    .venv/bin/python -m bench.bench_dispatch pbx [--calls 1000] [--concurrent 200] [--repeat 2]
                                                 [--contenders callbackd,raw,callfiles]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from ami.client import AmiClient, ConnectionSettings, Fields, OriginateSent
from ami.events import AmiEvent, header, name
from ami.originate import channel
from ami.outcome import Outcome, Result
from ami.protocol import FrameDecoder, encode_frame
from bench.bench_ami import SECRET, server_process
from bench.figures import Log, add_json_option, percentile, write_json
from bench.pbx import PHONES, CallWatcher, TestPbx, unquoted
from config import Settings
from config.settings import LogSettings
from daemon.calls import CallEngine
from daemon.clock import SystemClock
from daemon.logsetup import configure_logging
from daemon.models import QueueInput, TaskInput, format_time
from daemon.retry import NextStep
from daemon.scheduler import EngineEvents, Scheduler
from daemon.store.attempts import AttemptRepository, TaskRecord
from daemon.store.db import Database
from daemon.store.queues import QueueRepository
from daemon.store.tasks import TaskRepository

CLIENT = "bench"
A_NUMBER, B_NUMBER = "1001", "1000"
RING_TIMEOUT = 10


def cpu_seconds() -> float:
    """CPU time of this process, all threads (the store's SQLite thread included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def settings(max_concurrent: int) -> Settings:
    return Settings(
        calls={
            "a_channel": PHONES,
            "b_channel": PHONES,
            "a_ring_timeout": RING_TIMEOUT,
            "b_ring_timeout": RING_TIMEOUT,
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

    def ready_to_place(self) -> None:
        self.inner.ready_to_place()

    def originates_answered(self) -> None:
        self.inner.originates_answered()


class TimedAmi(AmiClient):
    """Notes when each Originate is written: the write happens in the same step as the
    call to originate(), before its first await."""

    def __init__(self, ami: ConnectionSettings, expected: int) -> None:
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
        cls, db: Database, ami: AmiClient, config: Settings, expected: int, queue_limit: int
    ) -> tuple[Daemon, int]:
        queue = await QueueRepository(db).create(
            CLIENT,
            QueueInput(name="bench", status="on", concurrent_task_limit=queue_limit),
            format_time(datetime.now(UTC)),
        )
        clock = SystemClock()
        engine = CallEngine(ami, AttemptRepository(db), clock, lambda: config)
        scheduler = Scheduler(db, engine, clock, lambda: config)
        listener = Listener(EngineEvents(scheduler, lambda: None), expected)
        engine.listeners.add(listener)
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


@dataclass
class DispatchFigures:
    pending: int
    due: int
    originates: int
    latencies_ms: list[list[float]]  # per round, due time to Originate, in sending order

    @property
    def firsts(self) -> list[float]:
        return [min(ms) for ms in self.latencies_ms]

    @property
    def first_p50_ms(self) -> float:
        return percentile(self.firsts, 50)

    @property
    def first_p99_ms(self) -> float:
        return percentile(self.firsts, 99)

    @property
    def batch_p99_ms(self) -> float:
        return percentile([ms for r in self.latencies_ms for ms in r], 99)

    @property
    def batch_span_ms(self) -> float:
        return statistics.median(max(ms) - min(ms) for ms in self.latencies_ms)

    @property
    def originates_per_s(self) -> float:
        spans = [(len(ms), (max(ms) - min(ms)) / 1000) for ms in self.latencies_ms]
        return statistics.median(n / s for n, s in spans if s)


async def measure_fake(
    pending: int, due: int, rounds: int, spacing: int = 12, lead: int = 10, log: Log = print
) -> DispatchFigures:
    expected = due * rounds
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp, server_process() as port:
        ami = TimedAmi(ConnectionSettings("127.0.0.1", port, "callbackd", SECRET), expected)
        config = settings(max_concurrent=pending)
        db = await Database.open(Path(tmp) / "cb.db")
        daemon, queue_id = await Daemon.open(db, ami, config, expected, queue_limit=10_000)
        try:
            built = time.perf_counter()
            await add_tasks(
                daemon.db, queue_id, pending - expected, datetime.now(UTC) + timedelta(days=1)
            )
            # Due times are whole seconds; the first round leaves time to start up.
            first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=lead)
            dues = [first + timedelta(seconds=r * spacing) for r in range(rounds)]
            due_of: dict[int, int] = {}  # task id -> round
            for r, due_time in enumerate(dues):
                last = await daemon.db.fetch_value("SELECT coalesce(max(id), 0) FROM tasks")
                await add_tasks(daemon.db, queue_id, due, due_time)
                due_of.update((last + 1 + i, r) for i in range(due))
            left = (first - datetime.now(UTC)).total_seconds()
            log(f"  ({pending:,} tasks stored in {time.perf_counter() - built:.1f} s)")
            if left < 2:
                raise SystemExit(f"storing took too long: raise --lead (first due in {left:.1f} s)")
            await daemon.start_engine()
            daemon.start_scheduler()
            await asyncio.wait_for(ami.all_sent.wait(), dues[-1].timestamp() - time.time() + 60)
        finally:
            await daemon.close()

    latencies: list[list[float]] = [[] for _ in dues]
    for call_uuid, sent in ami.sent:
        r = due_of[daemon.listener.task_of[call_uuid]]
        latencies[r].append(round((sent - dues[r]).total_seconds() * 1000, 2))
    return DispatchFigures(pending, due, len(ami.sent), latencies)


def print_fake(figures: DispatchFigures) -> None:
    rounds = figures.latencies_ms
    batch = [ms for r in rounds for ms in r]
    firsts = figures.firsts
    print(
        f"{figures.pending:,} pending tasks, {figures.due:,} due in the same second, "
        f"{len(rounds)} rounds; Originates counted: {figures.originates:,}"
    )
    print(
        f"  first in line:  p50 {percentile(firsts, 50):7.1f} ms  p99 {percentile(firsts, 99):7.1f}"
        f" ms  max {max(firsts):7.1f} ms  (target p99 <= 50 ms)"
    )
    print(
        f"  whole batch:    p50 {percentile(batch, 50):7.1f} ms  p99 {percentile(batch, 99):7.1f}"
        f" ms  max {max(batch):7.1f} ms"
    )
    print(
        f"  one batch of {figures.due:,} takes {figures.batch_span_ms:,.0f} ms: "
        f"{figures.originates_per_s:,.0f} Originates/s"
    )
    each = ", ".join(f"{min(ms):.0f}/{max(ms):.0f}" for ms in rounds)
    print(f"  per round, first/last in ms: {each}")


# --- pbx: callbacks/s and CPU per callback ------------------------------------------------


@dataclass
class Snapshot:
    wall: float
    cpu: float  # this process
    asterisk_cpu: float | None

    @classmethod
    def take(cls, pbx: TestPbx) -> Snapshot:
        return cls(time.perf_counter(), cpu_seconds(), pbx.asterisk_cpu_seconds())


@dataclass
class PbxRun:
    label: str
    calls: int
    seconds: float
    cpu: float  # this process: the daemon's parts, or the contender's client
    asterisk_cpu: float | None  # the whole PBX, other users' calls included
    results: dict[str, int]

    @classmethod
    def between(
        cls, label: str, calls: int, start: Snapshot, end: Snapshot, results: dict[str, int]
    ) -> PbxRun:
        asterisk = None
        if start.asterisk_cpu is not None and end.asterisk_cpu is not None:
            asterisk = end.asterisk_cpu - start.asterisk_cpu
        return cls(label, calls, end.wall - start.wall, end.cpu - start.cpu, asterisk, results)

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    @property
    def cpu_ms(self) -> float:
        return self.cpu / self.calls * 1000

    @property
    def asterisk_cpu_ms(self) -> float | None:
        return None if self.asterisk_cpu is None else self.asterisk_cpu / self.calls * 1000


def minimal_originate(call_uuid: str) -> dict[str, str]:
    """The same A->B call as the alternatives place it: the least a script would send,
    A's channel straight into Dial() of B, no dialplan and no variables. ChannelId only
    names the call (every channel's Linkedid)."""
    return {
        "Action": "Originate",
        "Channel": channel(PHONES, A_NUMBER),
        "Application": "Dial",
        "Data": f"{channel(PHONES, B_NUMBER)},{RING_TIMEOUT}",
        "ChannelId": call_uuid,
        "Timeout": str(RING_TIMEOUT * 1000),
        "Async": "true",
    }


async def sqlite_store(directory: Path) -> Database:
    return await Database.open(directory / "cb.db")


async def pg_store(directory: Path) -> Database:
    """A fresh database on tools/testpg's throwaway PostgreSQL (started if it is not),
    opened the way the daemon opens the shared store."""
    from bench.bench_pg import database  # psycopg only when it is used
    from daemon.store.pg.backend import PgDatabase

    url = await asyncio.to_thread(database, "bench_pbx")
    # The same interface (daemon/store/backend.py), as daemon.services.open_store says.
    return cast(Database, await PgDatabase.open(url, "bench"))


async def run_callbackd(
    calls: int,
    concurrent: int,
    pbx: TestPbx,
    contender: str = "callbackd",
    open_store: Callable[[Path], Awaitable[Database]] = sqlite_store,
) -> PbxRun:
    """The CPU counted is this whole process's, all threads: the SQLite store's
    threads, or the PostgreSQL store's (its driver's work on this side of the socket;
    the PostgreSQL server's own processes are not counted, as Asterisk's are not)."""
    with tempfile.TemporaryDirectory(prefix="bench-pbx-") as tmp:
        ami = AmiClient(pbx.ami())
        db = await open_store(Path(tmp))
        daemon, queue_id = await Daemon.open(
            db, ami, settings(concurrent), calls, queue_limit=concurrent
        )
        try:
            await add_tasks(daemon.db, queue_id, calls, None)
            await daemon.start_engine()
            start = Snapshot.take(pbx)
            daemon.start_scheduler()
            await asyncio.wait_for(daemon.listener.done.wait(), calls + 60)
            end = Snapshot.take(pbx)
        finally:
            await daemon.close()
    results = {str(k): v for k, v in daemon.listener.results.items()}
    return PbxRun.between(CONTENDERS[contender], calls, start, end, results)


async def run_callbackd_pg(calls: int, concurrent: int, pbx: TestPbx) -> PbxRun:
    return await run_callbackd(calls, concurrent, pbx, "callbackd-pg", pg_store)


async def run_raw(calls: int, concurrent: int, pbx: TestPbx) -> PbxRun:
    """One connection, the same Originate, ``concurrent`` calls in flight; a call is
    complete when every channel of it has hung up."""
    reader, writer = await asyncio.open_connection(pbx.host, pbx.port)
    await reader.readline()
    writer.write(encode_frame({"Action": "Login", "Username": "callbackd", "Secret": pbx.secret}))
    live: dict[str, set[str]] = {}
    completed = 0
    sent = 0
    done = asyncio.Event()

    def originate() -> None:
        nonlocal sent
        call_uuid = str(uuid.uuid4())
        live[call_uuid] = set()
        fields: dict[str, Any] = {**minimal_originate(call_uuid), "ActionID": call_uuid}
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

    start = Snapshot.take(pbx)
    reading = asyncio.create_task(read())
    for _ in range(min(concurrent, calls)):
        originate()
    try:
        await asyncio.wait_for(done.wait(), calls + 60)
    finally:
        end = Snapshot.take(pbx)
        reading.cancel()
        writer.close()
    return PbxRun.between(CONTENDERS["raw"], calls, start, end, {"completed": completed})


def call_file(call_uuid: str) -> str:
    """`minimal_originate()` as an Asterisk call file. A call file cannot name its
    channels, so it sets CBD_CALL_UUID, which the test phones report instead."""
    fields = minimal_originate(call_uuid)
    lines = [
        f"Channel: {fields['Channel']}",
        f"WaitTime: {RING_TIMEOUT}",
        "MaxRetries: 0",
        f"Application: {fields['Application']}",
        f"Data: {fields['Data']}",
        f"Setvar: CBD_CALL_UUID={call_uuid}",
    ]
    return "\n".join(lines) + "\n"


def spool_call_file(staging: Path, outgoing: Path, call_uuid: str) -> None:
    """Written elsewhere on the same filesystem, dated now, then renamed into the spool,
    so Asterisk never reads half a file (the way the Asterisk docs ask for)."""
    path = staging / f"bench-{call_uuid}.call"
    path.write_text(call_file(call_uuid))
    now = time.time()
    os.utime(path, (now, now))
    path.rename(outgoing / path.name)


async def run_callfiles(calls: int, concurrent: int, pbx: TestPbx) -> PbxRun:
    """``concurrent`` call files in the spool or in a call at a time; completions are
    counted by an AMI observer connection the same way the raw client counts its own."""
    outgoing = pbx.spool / "outgoing"
    if not outgoing.is_dir():
        raise SystemExit(f"no call-file spool at {outgoing}")
    staging = Path(tempfile.mkdtemp(prefix="bench-callfiles-", dir=pbx.spool))
    unclaimed: set[str] = set()  # call uuids of files whose call has not shown up yet
    sent = 0

    def place() -> None:
        nonlocal sent
        call_uuid = str(uuid.uuid4())
        unclaimed.add(call_uuid)
        spool_call_file(staging, outgoing, call_uuid)
        sent += 1

    def claim(report: AmiEvent) -> bool:
        call_uuid = unquoted(header(report, "CallUUID"))
        if call_uuid not in unclaimed:
            return False
        unclaimed.discard(call_uuid)
        return True

    def completed(linkedid: str) -> None:
        if sent < calls:
            place()

    watcher = CallWatcher(claim, completed)
    await watcher.connect(pbx)
    try:
        start = Snapshot.take(pbx)
        for _ in range(min(concurrent, calls)):
            place()
        if not await watcher.wait_until(lambda: watcher.completed >= calls, calls + 60):
            lost = " (the observer's AMI connection ended)" if watcher.lost else ""
            raise SystemExit(f"call files: {watcher.completed} of {calls} complete{lost}")
        end = Snapshot.take(pbx)
    finally:
        await _clean_spool(watcher, unclaimed, outgoing, staging)
    results = {"completed": watcher.completed}
    return PbxRun.between(CONTENDERS["callfiles"], calls, start, end, results)


async def _clean_spool(
    watcher: CallWatcher, unclaimed: set[str], outgoing: Path, staging: Path
) -> None:
    """After a failed run: no file of ours left in the spool, no call of ours left up."""
    if unclaimed:
        for call_uuid in unclaimed:
            (outgoing / f"bench-{call_uuid}.call").unlink(missing_ok=True)
        # A file Asterisk had already taken shows its call's PhoneReport within a
        # second or two; give those the chance to be claimed and hung up below.
        await watcher.wait_until(lambda: not unclaimed, 3)
    await watcher.hang_up_ours()
    await watcher.close()
    shutil.rmtree(staging, ignore_errors=True)


CONTENDERS = {
    "callbackd": "callbackd (Scheduler + CallEngine + SQLite)",
    "callbackd-pg": "callbackd on PostgreSQL (the shared store)",
    "raw": "raw AMI client (one connection)",
    "callfiles": "Asterisk call files (spool)",
}
RUNNERS: dict[str, Callable[[int, int, TestPbx], Awaitable[PbxRun]]] = {
    "callbackd": run_callbackd,
    "callbackd-pg": run_callbackd_pg,
    "raw": run_raw,
    "callfiles": run_callfiles,
}


@dataclass
class PbxFigures:
    calls: int
    concurrent: int
    runs: dict[str, list[PbxRun]]  # contender -> its runs, in order

    def rate(self, contender: str) -> float:
        return statistics.median(r.rate for r in self.runs[contender])

    def cpu_ms(self, contender: str) -> float:
        return statistics.median(r.cpu_ms for r in self.runs[contender])

    def asterisk_cpu_ms(self, contender: str) -> float | None:
        known = [r.asterisk_cpu_ms for r in self.runs[contender] if r.asterisk_cpu_ms is not None]
        return statistics.median(known) if known else None


async def measure_pbx(
    calls: int,
    concurrent: int,
    repeat: int,
    contenders: Sequence[str] = tuple(RUNNERS),
    log: Log = print,
) -> PbxFigures:
    """The contenders in turn, --repeat times, so that load from elsewhere on the box
    spreads over all of them."""
    pbx = TestPbx.from_env()
    figures = PbxFigures(calls, concurrent, {c: [] for c in contenders})
    for _ in range(repeat):
        for contender in contenders:
            run = await RUNNERS[contender](calls, concurrent, pbx)
            figures.runs[contender].append(run)
            log(f"  {run.label}: {run.rate:,.1f} callbacks/s, {run.results}")
    return figures


def print_pbx(figures: PbxFigures) -> None:
    print(
        f"{figures.calls:,} callbacks (A {A_NUMBER}, B {B_NUMBER}) per run, "
        f"{figures.concurrent} at a time, real test PBX"
    )
    for contender, runs in figures.runs.items():
        listed = ", ".join(f"{r.rate:.1f}" for r in runs)
        asterisk = figures.asterisk_cpu_ms(contender)
        shown = "" if asterisk is None else f", Asterisk {asterisk:5.2f} ms"
        print(
            f"  {CONTENDERS[contender]:<44} {figures.rate(contender):6.1f} callbacks/s  "
            f"CPU per callback: {figures.cpu_ms(contender):5.2f} ms{shown}  (runs: {listed})"
        )
    if {"callbackd", "raw"} <= figures.runs.keys():
        ratio = figures.rate("callbackd") / figures.rate("raw")
        print(f"  callbackd / raw ceiling: {ratio:.0%} (target >= 95 %)")
        ours, theirs = figures.asterisk_cpu_ms("callbackd"), figures.asterisk_cpu_ms("raw")
        if ours is not None and theirs:
            print(f"  Asterisk CPU, callbackd / raw: {ours / theirs:.2f} x (target <= 1.1 x)")
    if {"callbackd", "callfiles"} <= figures.runs.keys():
        ratio = figures.rate("callbackd") / figures.rate("callfiles")
        print(f"  callbackd / call files: {ratio:.0%} (target >= 100 %)")


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
    pbx.add_argument(
        "--contenders",
        default=",".join(RUNNERS),
        help=f"comma-separated, of: {', '.join(RUNNERS)}",
    )
    for each in (fake, pbx):
        add_json_option(each)
    args = p.parse_args()
    with open(os.devnull, "w") as devnull:
        configure_logging(LogSettings(level="info", format="json"), stream=devnull)
        asyncio.run(bench(args))


async def bench(args: argparse.Namespace) -> None:
    figures: DispatchFigures | PbxFigures
    if args.what == "fake":
        figures = await measure_fake(args.pending, args.due, args.rounds, args.spacing, args.lead)
    else:
        contenders = [c for c in args.contenders.split(",") if c]
        unknown = set(contenders) - RUNNERS.keys()
        if unknown:
            raise SystemExit(f"unknown contender(s): {', '.join(sorted(unknown))}")
        figures = await measure_pbx(args.calls, args.concurrent, args.repeat, contenders)
    print(f"$ {shlex.join(['.venv/bin/python', '-m', 'bench.bench_dispatch', *sys.argv[1:]])}")
    if isinstance(figures, DispatchFigures):
        print_fake(figures)
    else:
        print_pbx(figures)
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
