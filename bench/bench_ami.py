"""AMI intake benchmark (not run by pytest): events/s through callbackd's whole pipeline
(AmiClient -> CallEngine.route -> CallTracker -> outcome -> attempt closed) next to
panoramisk 1.4 alone parsing the same bytes with a no-op event callback.

    .venv/bin/python -m bench.bench_ami [--calls 20000] [--repeat 3] [--store stub|real]
    .venv/bin/python -m bench.bench_ami --pbx [--calls 10]

--pbx instead places --calls real callbacks (A 1105, B 1102: the calls of the recordings)
on the test PBX through CallEngine, once as the AMI user with the shipped event filter
(callbackd) and once without it (callbackd-unfiltered), and counts the events and bytes
each callback delivered to the daemon (every event the engine's consumer took from the
queue that names the call in a *Linkedid or *Uniqueid header; bytes as on the wire,
re-rendered from the decoded headers). BridgeCreate/BridgeDestroy name no channel and
are only in the count of everything the link carried meanwhile (which also holds other
users' calls when the PBX is shared).

The recorded unfiltered success (tests/fixtures/ami/success_unfiltered.ami, 65 events,
34 KB) is rewritten into --calls calls, one per call uuid callbackd placed, and written
by a fake AMI server in a child process (so it does not share the CPU of the loop being
measured). callbackd places each call through CallEngine.place() first (not timed);
then the server streams every call and the clock runs until the engine has closed the
last attempt. --store stub replaces the SQLite writes with no-ops (the pipeline alone);
--store real uses the real store (claims, milestones, ends and events in SQLite).
Logging is the daemon's JSON pipeline at level info, written to /dev/null.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from ami.client import AmiClient, ConnectionSettings
from ami.events import AmiEvent, header
from ami.fake import FakeAmiServer, _Connection
from ami.outcome import Outcome, Result
from ami.protocol import split_blocks
from bench.figures import Log, add_json_option, write_json
from bench.pbx import TestPbx
from config import Settings
from config.settings import LogSettings
from daemon.calls import CallEngine, NoListener
from daemon.clock import SystemClock, now_text
from daemon.logsetup import configure_logging
from daemon.models import QueueInput, TaskInput, TaskStatus
from daemon.retry import NextStep
from daemon.store.attempts import (
    Answer,
    AttemptRepository,
    Claim,
    Ended,
    StoredEvent,
    TaskRecord,
)
from daemon.store.db import Database
from daemon.store.queues import QueueRepository
from daemon.store.tasks import TaskRepository

ROOT = Path(__file__).resolve().parents[1]
RECORDING = ROOT / "tests" / "fixtures" / "ami" / "success_unfiltered.ami"
SECRET = "bench-secret"
CLIENT = "bench"
BATCH_CALLS = 64  # calls per write of the streaming server


def recorded_call() -> tuple[bytes, bytes, int]:
    """(the recording's event frames as one byte string, its call uuid, event count)."""
    blocks = [b for b in split_blocks(RECORDING.read_text()) if b.startswith(b"Event:")]
    stream = b"".join(blocks)
    start = stream.index(b"Linkedid: ") + len(b"Linkedid: ")
    return stream, stream[start : stream.index(b"\r\n", start)], len(blocks)


# --- the streaming server (child process) ------------------------------------------------


class StreamingAmi(FakeAmiServer):
    """FakeAmiServer plus one action, ``BenchStream`` (header ``Calls``): write the
    recording once per call uuid originated so far (the last ``Calls`` of them; made-up
    uuids if none was), in batches, without blocking the connection's other answers."""

    def __init__(self) -> None:
        super().__init__(secret=SECRET, originate_script=lambda action: [])
        self._handlers["benchstream"] = self._bench_stream
        self.stream_tasks: set[asyncio.Task[None]] = set()

    async def _bench_stream(self, conn: _Connection, action: AmiEvent) -> None:
        calls = int(header(action, "Calls"))
        originated = [
            header(a, "ChannelId") for a in self.actions if a.get("Action") == "Originate"
        ]
        uuids = originated[-calls:] if originated else []
        uuids += [str(uuid.UUID(int=i + 1)) for i in range(calls - len(uuids))]
        await self._reply(conn, action, {"Response": "Success", "Message": "streaming"})
        task = asyncio.create_task(self._write_calls(conn, uuids))
        self.stream_tasks.add(task)
        task.add_done_callback(self.stream_tasks.discard)

    async def _write_calls(self, conn: _Connection, uuids: Sequence[str]) -> None:
        template, recorded_uuid, _ = recorded_call()
        for i in range(0, len(uuids), BATCH_CALLS):
            batch = uuids[i : i + BATCH_CALLS]
            await conn.write(
                b"".join(template.replace(recorded_uuid, u.encode()) for u in batch), None
            )


async def serve() -> None:
    async with StreamingAmi() as server:
        print(server.port, flush=True)
        # Serve until the parent closes our stdin.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


@contextlib.contextmanager
def server_process() -> Any:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_ami", "--serve"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- callbackd's side --------------------------------------------------------------------


class NoStore(AttemptRepository):
    """The attempt writes of the engine as no-ops: the pipeline without SQLite."""

    def __init__(self, records: dict[int, TaskRecord]) -> None:
        super().__init__(cast(Database, None))
        self.records = records

    async def task(self, task_id: int) -> TaskRecord | None:
        return self.records.get(task_id)

    async def claim(self, claims: Sequence[Claim], now: datetime) -> set[str]:
        return {claim.call_uuid for claim in claims}

    async def mark_answered(self, call_uuid: str, at: datetime, number: str | None) -> None:
        return None

    async def mark_bridged(
        self,
        call_uuid: str,
        task_id: int,
        at: datetime,
        answer: Answer | None = None,
        events: Sequence[StoredEvent] = (),
    ) -> None:
        return None

    async def end(self, *args: Any) -> Ended:
        return Ended(closed=True, step=None)

    async def save_events(self, events: Sequence[StoredEvent]) -> None:
        return None

    async def live(self) -> list[Any]:
        return []


@dataclass
class Tally(NoListener):
    """The engine's listener: counts closed attempts and resolves when all are."""

    expected: int
    done: asyncio.Future[None]
    results: dict[Result, int]
    # When set, each call placed gets an [events, bytes] tally here before its
    # Originate is sent (CountingEngine fills it).
    delivered: dict[str, list[int]] | None = None

    async def attempt_started(self, record: TaskRecord, call_uuid: str) -> None:
        if self.delivered is not None:
            self.delivered[call_uuid] = [0, 0]

    async def attempt_ended(
        self, task_id: int, call_uuid: str, outcome: Outcome, step: NextStep | None
    ) -> None:
        self.results[outcome.result] = self.results.get(outcome.result, 0) + 1
        if sum(self.results.values()) == self.expected and not self.done.done():
            self.done.set_result(None)


def bench_settings(max_concurrent: int = 1_000_000) -> Settings:
    return Settings(
        calls={
            "a_channel": "Local/{number}@phones",
            "b_channel": "Local/{number}@phones",
            "max_concurrent": max_concurrent,
        }
    )


def plain_record(task_id: int) -> TaskRecord:
    return TaskRecord(
        id=task_id,
        scheduler_id=1,
        status=TaskStatus.SCHEDULED,
        task=TaskInput(a_number="1105", b_number="1102"),
        attempts_made=0,
        caller_attempts=0,
        invalid_numbers=(),
    )


@contextlib.asynccontextmanager
async def attempts_store(
    kind: str, calls: int
) -> AsyncIterator[tuple[AttemptRepository, list[TaskRecord]]]:
    if kind == "stub":
        records = [plain_record(i + 1) for i in range(calls)]
        yield NoStore({r.id: r for r in records}), records
        return
    with tempfile.TemporaryDirectory(prefix="bench-ami-") as tmp:
        db = await Database.open(Path(tmp) / "cb.db")
        try:
            now = now_text(SystemClock())
            queue = await QueueRepository(db).create(CLIENT, QueueInput(name="q", status="on"), now)
            tasks = [TaskInput(a_number="1105", b_number="1102") for _ in range(calls)]
            for i in range(0, calls, 10_000):
                await TaskRepository(db).add(
                    CLIENT, queue.id, tasks[i : i + 10_000], now, render=lambda made: ""
                )
            repo = AttemptRepository(db)
            ids = [row["id"] for row in await db.fetch_all("SELECT id FROM tasks ORDER BY id")]
            records = [r for r in [await repo.task(i) for i in ids] if r is not None]
            yield repo, records
        finally:
            await db.close()


@dataclass
class Run:
    events: int
    seconds: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_rate(self) -> float:
        return self.events / self.cpu_seconds


async def run_callbackd(port: int, calls: int, store: str, per_call: int, log: Log) -> Run:
    ami = AmiClient(ConnectionSettings("127.0.0.1", port, "callbackd", SECRET))
    async with attempts_store(store, calls) as (repo, records):
        tally = Tally(calls, asyncio.get_running_loop().create_future(), {})
        settings = bench_settings()
        engine = CallEngine(ami, repo, SystemClock(), lambda: settings, tally)
        await ami.start()
        runner = asyncio.create_task(engine.run())
        try:
            if not await engine.wait_ready(10):
                raise SystemExit(f"engine not ready: {engine.last_error}")
            placing = time.perf_counter()
            for i in range(0, len(records), 500):
                placed = await asyncio.gather(*(engine.place(r) for r in records[i : i + 500]))
                assert all(placed), "a call was not placed"
            log(f"  (placed {calls:,} calls in {time.perf_counter() - placing:.1f} s)")
            received_before = ami.events_received
            cpu0, t0 = time.process_time(), time.perf_counter()
            await ami.action({"Action": "BenchStream", "Calls": str(calls)})
            await tally.done
            seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            events = ami.events_received - received_before
            assert events == calls * per_call, (events, calls * per_call)
            assert tally.results == {Result.SUCCESS: calls}, tally.results
            return Run(events, seconds, cpu)
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            await ami.stop()


# --- panoramisk's side -------------------------------------------------------------------


async def run_panoramisk(port: int, calls: int, per_call: int) -> Run:
    from panoramisk import Manager  # dev dependency, for this comparison only

    loop = asyncio.get_running_loop()
    total = calls * per_call
    seen = 0
    done = loop.create_future()

    def on_event(manager: Any, message: Any) -> None:
        nonlocal seen
        seen += 1
        if seen == total and not done.done():
            done.set_result(None)

    logged_in: asyncio.Future[None] = loop.create_future()

    def on_login(manager: Any) -> None:
        if not logged_in.done():
            logged_in.set_result(None)

    manager = Manager(
        loop=loop, host="127.0.0.1", port=port, username="callbackd", secret=SECRET,
        ping_delay=3600, reconnect_timeout=3600, on_login=on_login,
    )  # fmt: skip
    manager.connect()
    try:
        await asyncio.wait_for(logged_in, 10)
        await asyncio.sleep(0.2)  # let FullyBooted pass before the callback counts
        manager.register_event("*", on_event)
        cpu0, t0 = time.process_time(), time.perf_counter()
        await manager.send_action({"Action": "BenchStream", "Calls": str(calls)})
        await done
        return Run(total, time.perf_counter() - t0, time.process_time() - cpu0)
    finally:
        manager.close()


# --- events per callback on the real test PBX ----------------------------------------


def wire_size(ev: AmiEvent) -> int:
    """Bytes of the event as Asterisk wrote it (a repeated header holds "\\n"-joined
    values), with its blank line."""
    return 2 + sum(len(f"{k}: {v}\r\n".encode()) for k, vs in ev.items() for v in vs.split("\n"))


class CountingEngine(CallEngine):
    """A CallEngine that also counts, per call it placed, the events it was given."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delivered: dict[str, list[int]] = {}  # call uuid -> [events, bytes]

    def route(self, ev: AmiEvent, at: datetime) -> None:
        for key, value in ev.items():
            tally = self.delivered.get(value[:36])
            if tally is not None and key.lower().endswith(("uniqueid", "linkedid")):
                tally[0] += 1
                tally[1] += wire_size(ev)
                break
        super().route(ev, at)


async def pbx_events(user: str, calls: int) -> tuple[list[list[int]], int, dict[Result, int]]:
    ami = AmiClient(TestPbx.from_env().ami(user))
    async with attempts_store("real", calls) as (repo, records):
        delivered: dict[str, list[int]] = {}
        tally = Tally(calls, asyncio.get_running_loop().create_future(), {}, delivered)
        settings = bench_settings()
        engine = CountingEngine(ami, repo, SystemClock(), lambda: settings, tally)
        engine.delivered = delivered
        await ami.start()
        runner = asyncio.create_task(engine.run())
        try:
            if not await engine.wait_ready(15):
                raise SystemExit(f"AMI not ready: {engine.last_error}")
            before = ami.events_received
            for record in records:
                assert await engine.place(record) is not None
            await asyncio.wait_for(tally.done, 120)
            # The last Hangup closes the attempt; what Asterisk still sends after it
            # (nothing with the filter) is counted until the engine has drained.
            await engine.drain()
            return list(engine.delivered.values()), ami.events_received - before, tally.results
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            await ami.stop()


@dataclass
class UserEvents:
    """Events one AMI user's link delivered per callback on the test PBX."""

    user: str
    per_call: list[int]  # events that named the call, per callback
    bytes_per_call: list[int]
    carried: int  # every event the link carried meanwhile
    results: dict[str, int]

    @property
    def events_per_callback(self) -> float:
        return statistics.mean(self.per_call)

    @property
    def carried_per_callback(self) -> float:
        return self.carried / len(self.per_call)


async def measure_pbx_events(calls: int) -> list[UserEvents]:
    measured = []
    for user in ("callbackd", "callbackd-unfiltered"):
        per_call, carried, results = await pbx_events(user, calls)
        measured.append(
            UserEvents(
                user,
                [events for events, _ in per_call],
                [size for _, size in per_call],
                carried,
                {str(result): n for result, n in results.items()},
            )
        )
    return measured


def print_pbx_events(measured: list[UserEvents]) -> None:
    calls = len(measured[0].per_call)
    print(f"{calls} callbacks per AMI user (A 1105 rings 1 s, B 1102 rings 1 s, talks 2 s)")
    for each in measured:
        print(
            f"  {each.user:<22} {each.events_per_callback:5.1f} events/callback "
            f"(min {min(each.per_call)}, max {max(each.per_call)}), "
            f"{statistics.mean(each.bytes_per_call) / 1000:5.1f} KB/callback;"
            f" the link carried {each.carried_per_callback:.1f} events/callback; "
            f"results {', '.join(f'{k} {v}' for k, v in each.results.items())}"
        )


# --- main --------------------------------------------------------------------------------


@dataclass
class IntakeFigures:
    calls: int
    events_per_call: int
    megabytes: float
    store: str
    callbackd: list[Run]
    panoramisk: list[Run]

    @property
    def callbackd_rate(self) -> float:
        return statistics.median(r.rate for r in self.callbackd)

    @property
    def panoramisk_rate(self) -> float:
        return statistics.median(r.rate for r in self.panoramisk)


async def measure_intake(calls: int, repeat: int, store: str, log: Log = print) -> IntakeFigures:
    template, _, per_call = recorded_call()
    ours: list[Run] = []
    theirs: list[Run] = []
    with server_process() as port:
        for _ in range(repeat):
            ours.append(await run_callbackd(port, calls, store, per_call, log))
            theirs.append(await run_panoramisk(port, calls, per_call))
    return IntakeFigures(calls, per_call, len(template) * calls / 1e6, store, ours, theirs)


def describe(label: str, runs: Sequence[Run]) -> None:
    rate = statistics.median(r.rate for r in runs)
    cpu_rate = statistics.median(r.cpu_rate for r in runs)
    each = ", ".join(f"{r.rate:,.0f}" for r in runs)
    print(f"  {label:<34} {rate:>10,.0f} events/s  ({cpu_rate:,.0f} per CPU-s; runs: {each})")


def print_intake(figures: IntakeFigures) -> None:
    events = figures.calls * figures.events_per_call
    print(
        f"{figures.calls:,} calls x {figures.events_per_call} events = {events:,} events, "
        f"{figures.megabytes:,.0f} MB"
    )
    describe(f"callbackd pipeline (store {figures.store})", figures.callbackd)
    describe("panoramisk 1.4 parse + no-op callback", figures.panoramisk)
    ratio = figures.callbackd_rate / figures.panoramisk_rate
    print(f"  callbackd / panoramisk: {ratio:.0%} (target >= 50 %)")


async def bench(args: argparse.Namespace) -> None:
    figures: IntakeFigures | list[UserEvents]
    if args.pbx:
        figures = await measure_pbx_events(args.calls)
    else:
        figures = await measure_intake(args.calls, args.repeat, args.store)
    print(f"$ {shlex.join(['.venv/bin/python', '-m', 'bench.bench_ami', *sys.argv[1:]])}")
    if isinstance(figures, list):
        print_pbx_events(figures)
    else:
        print_intake(figures)
    write_json(args.json, figures)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=None, help="default 20000, or 10 with --pbx")
    p.add_argument("--pbx", action="store_true", help="events per callback on the test PBX")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--store", choices=["stub", "real"], default="stub")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    add_json_option(p)
    args = p.parse_args()
    if args.serve:
        asyncio.run(serve())
        return
    args.calls = args.calls or (10 if args.pbx else 20_000)
    with open(os.devnull, "w") as devnull:
        configure_logging(LogSettings(level="info", format="json"), stream=devnull)
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()
