"""Dispatch with calling hours (not run by pytest): --queues queues, each on its own time
interval, half of them closed, with --held tasks due in the closed ones (held by the
first pass); then --rounds rounds of --due tasks coming due in the same second in the
open queues. Latency from each task's due time to its Originate being written, and this
process's CPU time per Originate over the rounds, side by side with the same queues,
tasks and rounds without intervals (the held tasks then wait a day ahead instead).
Scheduler + CallEngine + SQLite store on the system clock against the fake AMI of
bench_dispatch (answers every Originate at once, never ends a call).

    .venv/bin/python -m bench.bench_intervals [--queues 1000] [--held 100000] [--due 1000]
                                              [--rounds 10] [--spacing 12]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ami.client import ConnectionSettings
from bench.bench_ami import SECRET, server_process
from bench.bench_dispatch import (
    CLIENT,
    Daemon,
    DispatchFigures,
    Listener,
    TimedAmi,
    add_tasks,
    cpu_seconds,
    settings,
)
from bench.figures import Log, add_json_option, percentile, write_json
from config.settings import LogSettings
from daemon.calls import CallEngine
from daemon.clock import SystemClock
from daemon.logsetup import configure_logging
from daemon.models import IntervalInput, QueueInput, format_time
from daemon.scheduler import EngineEvents, Scheduler
from daemon.store.attempts import AttemptRepository
from daemon.store.db import Database
from daemon.store.intervals import IntervalRepository
from daemon.store.queues import QueueRepository


@dataclass
class Run:
    dispatch: DispatchFigures
    cpu_ms: float  # this process's CPU time per Originate over the rounds
    first_pass_s: float  # the scheduler's first pass (it holds the closed queues' tasks)


@dataclass
class IntervalFigures:
    queues: int
    held: int
    with_intervals: Run
    without: Run


async def _queues(db: Database, count: int, intervals: bool, now: datetime) -> list[int]:
    """`count` queues; with intervals, each on its own: the odd ones open (a window
    around now), the even ones closed until tomorrow."""
    repo, made = IntervalRepository(db), []
    for i in range(count):
        interval_id = None
        if intervals:
            start = now - timedelta(days=1) if i % 2 else now + timedelta(days=1)
            window = {
                "start_datetime": format_time(start),
                "end_datetime": format_time(start + timedelta(days=3 if i % 2 else 1)),
            }
            body = IntervalInput.model_validate(
                {"name": f"hours {i}", "timezone": "UTC", "conditions": [window]}
            )
            interval_id = (await repo.create(CLIENT, body, now)).id
        queue = QueueInput(
            name=f"q{i}", status="on", concurrent_task_limit=10_000, interval_id=interval_id
        )
        made.append((await QueueRepository(db).create(CLIENT, queue, format_time(now))).id)
    return made


async def measure_run(
    intervals: bool,
    queues: int,
    held: int,
    due: int,
    rounds: int,
    spacing: int,
    log: Log,
    lead: int = 30,
) -> Run:
    expected = due * rounds
    with tempfile.TemporaryDirectory(prefix="bench-intervals-") as tmp, server_process() as port:
        ami = TimedAmi(ConnectionSettings("127.0.0.1", port, "callbackd", SECRET), expected)
        config = settings(max_concurrent=expected + held)
        db = await Database.open(Path(tmp) / "cb.db")
        clock = SystemClock()
        engine = CallEngine(ami, AttemptRepository(db), clock, lambda: config)
        scheduler = Scheduler(db, engine, clock, lambda: config)
        listener = Listener(EngineEvents(scheduler, lambda: None), expected)
        engine.listeners.add(listener)
        daemon = Daemon(db, ami, engine, scheduler, listener)
        try:
            built = time.perf_counter()
            now = datetime.now(UTC)
            ids = await _queues(db, queues, intervals, now)
            closed, open_ = ids[0::2], ids[1::2]
            # Due a minute ago in the closed queues; without intervals a day ahead.
            waiting = now - timedelta(minutes=1) if intervals else now + timedelta(days=1)
            for i, queue_id in enumerate(closed):
                await add_tasks(
                    db, queue_id, held // len(closed) + (i < held % len(closed)), waiting
                )
            first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=lead)
            dues = [first + timedelta(seconds=r * spacing) for r in range(rounds)]
            due_of: dict[int, int] = {}  # task id -> round
            # A round's tasks in up to 100 of the open queues: fewer writes to store them.
            per_queue = max(1, due // min(len(open_), 100))
            for r, due_time in enumerate(dues):
                left = due
                for queue_id in open_:
                    if not left:
                        break
                    n = min(per_queue, left)
                    last = await db.fetch_value("SELECT coalesce(max(id), 0) FROM tasks")
                    await add_tasks(db, queue_id, n, due_time)
                    due_of.update((last + 1 + i, r) for i in range(n))
                    left -= n
            seconds_left = (first - datetime.now(UTC)).total_seconds()
            log(
                f"  ({'with' if intervals else 'without'} intervals: {queues:,} queues, "
                f"{held + expected:,} tasks stored in {time.perf_counter() - built:.1f} s)"
            )
            if seconds_left < 5:
                raise SystemExit("storing took too long: raise the lead")
            await daemon.start_engine()
            # The first pass, before any round is due: it holds the closed queues' tasks.
            started = time.perf_counter()
            await scheduler.dispatch_due()
            first_pass = time.perf_counter() - started
            daemon.start_scheduler()
            await asyncio.sleep((first - datetime.now(UTC)).total_seconds())
            cpu_before = cpu_seconds()
            await asyncio.wait_for(ami.all_sent.wait(), dues[-1].timestamp() - time.time() + 60)
            cpu = cpu_seconds() - cpu_before
        finally:
            await daemon.close()
    latencies: list[list[float]] = [[] for _ in dues]
    for call_uuid, sent in ami.sent:
        r = due_of[daemon.listener.task_of[call_uuid]]
        latencies[r].append(round((sent - dues[r]).total_seconds() * 1000, 2))
    figures = DispatchFigures(held, due, len(ami.sent), latencies)
    return Run(figures, round(cpu * 1000 / max(1, len(ami.sent)), 3), round(first_pass, 3))


async def measure(
    queues: int = 1000,
    held: int = 100_000,
    due: int = 1000,
    rounds: int = 10,
    spacing: int = 12,
    log: Log = print,
) -> IntervalFigures:
    with_intervals = await measure_run(True, queues, held, due, rounds, spacing, log)
    without = await measure_run(False, queues, held, due, rounds, spacing, log)
    return IntervalFigures(queues, held, with_intervals, without)


def print_figures(f: IntervalFigures) -> None:
    print(
        f"{f.queues:,} queues each on its own interval, half closed, {f.held:,} due tasks "
        f"held in the closed ones; {f.with_intervals.dispatch.due:,} due at once in the "
        f"open ones, {len(f.with_intervals.dispatch.latencies_ms)} rounds"
    )
    for name, run in (("with intervals", f.with_intervals), ("without", f.without)):
        firsts = run.dispatch.firsts
        print(
            f"  {name:15} first in line p50 {percentile(firsts, 50):6.1f} ms  p99 "
            f"{percentile(firsts, 99):6.1f} ms (target <= 50)   whole batch p99 "
            f"{run.dispatch.batch_p99_ms:7.1f} ms   CPU per Originate {run.cpu_ms:.3f} ms"
        )
    print(
        f"  the first pass held the {f.held:,} due tasks of the closed queues in "
        f"{f.with_intervals.first_pass_s:.2f} s (before the first round)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queues", type=int, default=1000)
    parser.add_argument("--held", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--spacing", type=int, default=12)
    add_json_option(parser)
    args = parser.parse_args()
    with open(os.devnull, "w") as devnull:
        configure_logging(LogSettings(level="info", format="json"), stream=devnull)
        figures = asyncio.run(measure(args.queues, args.held, args.due, args.rounds, args.spacing))
    print(f"$ {shlex.join(['.venv/bin/python', '-m', 'bench.bench_intervals', *sys.argv[1:]])}")
    print_figures(figures)
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
