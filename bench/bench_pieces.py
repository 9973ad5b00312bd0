"""Per-piece costs of a callback that whole-run figures are too noisy to show (not run
by pytest): the CPU time of one log line about a call, rendered by the daemon's JSON
pipeline to /dev/null; of taking in one call's AMI events the way the client and the
engine do (decoding the bytes into events, the routing lookups, the call's tracker);
and of storing them the way the engine does (8 calls per transaction as under load, in
a real migrated store with `synchronous=FULL`). The events are those that the AMI
user's event filter (config/asterisk/manager_callbackd.conf) lets through of a recorded
callback: of one A number (19 events, the default) or, with `--recording success.ami`,
of the Local shape that several A numbers take (25).

    .venv/bin/python -m bench.bench_pieces [--lines 20000] [--calls 4000]
                                           [--recording one_a_success.ami] [--json PATH]
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
from datetime import UTC, datetime
from pathlib import Path

from ami.events import AmiEvent, header, linkedid, name, uniqueid
from ami.outcome import CallTracker, Result
from ami.protocol import FrameDecoder, parse_frame, split_blocks
from bench.figures import add_json_option, write_json
from config.settings import LogSettings
from daemon.logsetup import call_log, configure_logging, flush_logs, reset_logging
from daemon.store.attempts import StoredEvent, _insert_events
from daemon.store.db import Database

FIXTURES = Path(__file__).resolve().parent.parent / "tests/fixtures/ami"
RECORDING = FIXTURES / "one_a_success.ami"
FILTERED_IN = {
    "Newchannel",
    "DialBegin",
    "DialEnd",
    "BridgeEnter",
    "Hangup",
    "OriginateResponse",
    "UserEvent",
    "LocalOptimizationBegin",
    "LocalOptimizationEnd",
}
CALLS_PER_TRANSACTION = 8


@dataclass
class PieceFigures:
    log_line_us: float
    events_per_call: int
    intake_cpu_ms_per_call: float
    store_events_cpu_ms_per_call: float
    store_events_wall_ms_per_call: float


def log_line_cost(lines: int) -> float:
    """CPU µs of one `info` line of a call's logger, secrets configured, its write
    included."""
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
            flush_logs(60.0)  # the writer thread's share of the work counts too
            return (time.process_time() - started) / lines * 1e6
        finally:
            reset_logging()


def _recorded_frames(recording: Path) -> list[bytes]:
    """The wire frames of a recorded callback that the event filter lets through."""
    filtered = []
    for raw in split_blocks(recording.read_text()):
        headers = parse_frame(raw).headers
        if headers is not None and name(headers) in FILTERED_IN:
            filtered.append(raw)
    return filtered


def _recorded_events(recording: Path) -> list[AmiEvent]:
    frames = [parse_frame(raw).headers for raw in _recorded_frames(recording)]
    return [headers for headers in frames if headers is not None]


def intake_cost(calls: int, recording: Path) -> float:
    """CPU ms per call of decoding its events from the bytes of one read each, the
    engine's routing lookups, and its tracker (pure: no I/O)."""
    wire = b"".join(_recorded_frames(recording))
    call_uuid = linkedid(_recorded_events(recording)[0])  # every channel's Linkedid
    at = datetime(2026, 11, 27, tzinfo=UTC)
    started = time.process_time()
    for _ in range(calls):
        decoder = FrameDecoder()
        tracker = CallTracker(call_uuid, {}, "1000")
        for frame in decoder.feed(wire):
            if frame.headers is not None:
                ev = frame.headers
                # The engine's routing lookups (daemon/calls/routing.py).
                if (
                    linkedid(ev) == call_uuid
                    or uniqueid(ev).removesuffix("-a") == call_uuid
                    or header(ev, "DestLinkedid") == call_uuid
                ):
                    tracker.feed(ev, at)
        if tracker.outcome().result is not Result.SUCCESS:
            raise RuntimeError(f"the recorded call decided {tracker.outcome().result}")
    return (time.process_time() - started) / calls * 1e3


def store_events_cost(calls: int, directory: Path, recording: Path) -> tuple[float, float]:
    """CPU ms and wall ms per call of storing its events, transactions included."""
    path = directory / "pieces.db"

    async def migrated() -> None:
        await (await Database.open(path)).close()

    asyncio.run(migrated())
    events = _recorded_events(recording)
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


def measure_pieces(lines: int, calls: int, recording: Path = RECORDING) -> PieceFigures:
    with tempfile.TemporaryDirectory() as directory:
        cpu_ms, wall_ms = store_events_cost(calls, Path(directory), recording)
    events = len(_recorded_frames(recording))
    intake = intake_cost(calls, recording)
    return PieceFigures(log_line_cost(lines), events, intake, cpu_ms, wall_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=4_000)
    parser.add_argument("--recording", default=RECORDING.name, help="a file of tests/fixtures/ami")
    add_json_option(parser)
    args = parser.parse_args()
    figures = measure_pieces(args.lines, args.calls, FIXTURES / args.recording)
    print(f"$ .venv/bin/python -m bench.bench_pieces {' '.join(sys.argv[1:])}".rstrip())
    print(f"  one log line about a call:  {figures.log_line_us:6.1f} µs CPU")
    print(
        f"  taking in a call's {figures.events_per_call} AMI events: "
        f"{figures.intake_cpu_ms_per_call:.3f} ms CPU per call"
    )
    print(
        f"  storing a call's {figures.events_per_call} AMI events: "
        f"{figures.store_events_cpu_ms_per_call:.3f} ms CPU, "
        f"{figures.store_events_wall_ms_per_call:.3f} ms wall per call"
    )
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
