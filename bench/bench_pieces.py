"""Per-piece costs of a callback that whole-run figures are too noisy to show (not run
by pytest): the CPU time of one log line about a call, rendered by the daemon's JSON
pipeline to /dev/null, and of storing one call's AMI events the way the engine does
(25 events of a recorded call, 8 calls per transaction as under load, in a real
migrated store with `synchronous=FULL`).

    .venv/bin/python -m bench.bench_pieces [--lines 20000] [--calls 4000] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ami.protocol import parse_frame, split_blocks
from bench.figures import add_json_option, write_json
from config.settings import LogSettings
from daemon.logsetup import call_log, configure_logging, reset_logging
from daemon.store.attempts import StoredEvent, _insert_events
from daemon.store.db import Database

RECORDING = Path(__file__).resolve().parent.parent / "tests/fixtures/ami/success.ami"
EVENTS_PER_CALL = 25
CALLS_PER_TRANSACTION = 8


@dataclass
class PieceFigures:
    log_line_us: float
    events_per_call: int
    store_events_cpu_ms_per_call: float
    store_events_wall_ms_per_call: float


def log_line_cost(lines: int) -> float:
    """CPU µs of one `info` line of a call's logger, secrets configured."""
    with open("/dev/null", "w") as devnull:
        configure_logging(
            LogSettings(format="json", level="info"),
            ["an-api-token-0123456789", "whsec_c2VjcmV0", "ami-secret"],
            stream=devnull,
            env={},
        )
        try:
            log = call_log(123, 1, str(uuid.uuid4()))
            started = time.process_time()
            for _ in range(lines):
                log.info("A answered", number="1001")
            return (time.process_time() - started) / lines * 1e6
        finally:
            reset_logging()


def _recorded_events() -> list[dict[str, str]]:
    frames = [parse_frame(raw) for raw in split_blocks(RECORDING.read_text())]
    events = [frame.headers for frame in frames if frame.headers is not None]
    return (events * EVENTS_PER_CALL)[:EVENTS_PER_CALL]


def store_events_cost(calls: int, directory: Path) -> tuple[float, float]:
    """CPU ms and wall ms per call of storing its events, transactions included."""
    path = directory / "pieces.db"

    async def migrated() -> None:
        await (await Database.open(path)).close()

    asyncio.run(migrated())
    events = _recorded_events()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=FULL")
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(0, calls, CALLS_PER_TRANSACTION):
            conn.execute("BEGIN IMMEDIATE")
            for _ in range(CALLS_PER_TRANSACTION):
                call_uuid = str(uuid.uuid4())
                stamp = "2026-11-27 06:00:00.123"
                batch = [StoredEvent(call_uuid, n, stamp, e) for n, e in enumerate(events, 1)]
                _insert_events(batch, conn)
            conn.execute("COMMIT")
        return (
            (time.process_time() - cpu) / calls * 1e3,
            (time.perf_counter() - wall) / calls * 1e3,
        )
    finally:
        conn.close()


def measure_pieces(lines: int, calls: int) -> PieceFigures:
    with tempfile.TemporaryDirectory() as directory:
        cpu_ms, wall_ms = store_events_cost(calls, Path(directory))
    return PieceFigures(log_line_cost(lines), EVENTS_PER_CALL, cpu_ms, wall_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=4_000)
    add_json_option(parser)
    args = parser.parse_args()
    figures = measure_pieces(args.lines, args.calls)
    print(f"$ .venv/bin/python -m bench.bench_pieces {' '.join(sys.argv[1:])}".rstrip())
    print(f"  one log line about a call:  {figures.log_line_us:6.1f} µs CPU")
    print(
        f"  storing a call's {figures.events_per_call} AMI events: "
        f"{figures.store_events_cpu_ms_per_call:.3f} ms CPU, "
        f"{figures.store_events_wall_ms_per_call:.3f} ms wall per call"
    )
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
