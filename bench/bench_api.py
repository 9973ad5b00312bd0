"""API benchmarks against the real `callbackd run` process (not run by pytest).

(a) one POST of 10,000 tasks, validated and durable: tasks/s, median of --repeat runs;
(b) filtered, paged list queries over a store of --tasks tasks: p50/p99 latency;
(c) the daemon's resident memory (VmRSS, VmHWM) with that store, after the queries.

    .venv/bin/python -m bench.bench_api [--tasks 1000000] [--repeat 5] [--queries 300]

The big store is built with direct SQL inserts through the same schema (migrations and
triggers included) and kept in bench/out/ for the next run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import signal
import socket
import sqlite3
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.figures import Log, add_json_option, memory_kb, percentile, write_json
from daemon.models import TaskInput
from daemon.store.queries import migrations

OUT = Path(__file__).resolve().parent / "out"
TOKEN = "bench-token-acme"
QUEUE_COUNT = 4
NAMES = 1000
# status, finish_result, share of the store
MIX = [
    ("finished", "success", 0.40),
    ("finished", "failed", 0.25),
    ("scheduled", None, 0.25),
    ("delayed", None, 0.06),
    ("delayed_concurrent_task", None, 0.03),
    ("executed", None, 0.01),
]


def _callbackd() -> list[str]:
    script = Path(sys.executable).with_name("callbackd")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from callbackd.cli import main; main()"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _config(directory: Path, db: Path, port: int, ami: str | None, extra: str) -> Path:
    """`ami` is the body of the [ami] section (default: a port nobody listens on, so the
    API benchmarks run without a PBX); `extra` more sections."""
    path = directory / f"bench-{port}.toml"
    ami = f"port = {_free_port()}\n" if ami is None else ami
    path.write_text(
        f'[api]\nlisten = "127.0.0.1:{port}"\n[api.tokens]\n"{TOKEN}" = "acme"\n'
        f'[store]\npath = "{db}"\n[ami]\n{ami}{extra}'
        '[log]\nlevel = "warning"\nformat = "json"\n'
    )
    return path


class Daemon:
    """`callbackd run` in a child process, on its own port and config in bench/out."""

    def __init__(self, db: Path, ami: str | None = None, extra: str = "") -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        OUT.mkdir(exist_ok=True)
        self.config = _config(OUT, db, self.port, ami, extra)
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Daemon:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLBACKD_")}
        self.proc = await asyncio.create_subprocess_exec(
            *_callbackd(), "run", "--config", str(self.config), env=env
        )
        async with aiohttp.ClientSession() as session, asyncio.timeout(60):
            while True:
                try:
                    async with session.get(self.url + "/healthz") as response:
                        if response.status == 200:
                            return self
                except aiohttp.ClientConnectionError:
                    if self.proc.returncode is not None:
                        raise SystemExit(f"callbackd exited with {self.proc.returncode}") from None
                # Startup poll only; nothing is measured here.
                await asyncio.sleep(0.05)

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        await self.proc.wait()

    def memory_kb(self) -> dict[str, int]:
        assert self.proc is not None
        return memory_kb(self.proc.pid)


def _task(i: int) -> dict[str, Any]:
    return {
        "name": f"campaign-{i % NAMES}",
        "a_number": f"+7495{i:07d}",
        "b_number": f"{100 + i % 900}",
        "try_count": 3,
        "try_again_pause": "120",
        "url_after": "https://panel.example.com/hooks/after",
        "callback_params": {"caller_id_name": "Sales", "extended_a_numbers": ["+15550000001"]},
        "variables": {"ORDER_ID": str(i)},
    }


def _remove_store(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


async def bench_post(repeat: int) -> list[float]:
    """(a) tasks/s of one POST of 10,000 tasks, each run on a fresh store."""
    body = json.dumps({"tasks": [_task(i) for i in range(10_000)]}).encode()
    rates = []
    for run in range(repeat):
        db = OUT / f"post-{run}.db"
        _remove_store(db)
        async with Daemon(db) as daemon, aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with session.post(
                f"{daemon.url}/client/acme/task_scheduler/", json={"name": "q"}, headers=headers
            ) as response:
                queue = await response.json()
            url = f"{daemon.url}/client/acme/task_scheduler/{queue['id']}/tasks/"
            headers["Content-Type"] = "application/json"
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                answer = await response.read()
                elapsed = time.perf_counter() - started
            assert response.status == 201, answer[:300]
            rates.append(10_000 / elapsed)
    return rates


def _stored_params(i: int) -> str:
    """The params column exactly as the API stores task `i` (checked against the model
    for a sample, since validating a million tasks would take most of a minute)."""
    task = {k: v for k, v in _task(i).items() if k != "name"}
    task["try_again_pause"] = int(task["try_again_pause"])
    text = json.dumps(task, separators=(",", ":"))
    if i % 100_000 == 1:
        assert text == TaskInput.model_validate(_task(i) | {"name": ""}).stored_params(), text
    return text


def _rows(count: int, first_id: int, queue_ids: list[int]) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(first_id)
    weights = [share for _, _, share in MIX]
    for n in range(count):
        i = first_id + n
        status, result, _ = rng.choices(MIX, weights)[0]
        params = _stored_params(i)
        next_attempt = None if status == "finished" else "2024-06-01 10:00:00"
        comment = {"success": "A and B talked", "failed": "A busy"}.get(result or "", "")
        yield (
            i,
            queue_ids[(i // 7) % len(queue_ids)],
            f"campaign-{i % NAMES}",
            params,
            status,
            result,
            comment,
            next_attempt,
            "2024-05-01 10:00:00",
        )


def build_store(path: Path, count: int) -> None:
    """The big store, written the fast way: same schema and triggers, big transactions,
    durability off while building (it is a throwaway file until it is complete)."""
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    conn = sqlite3.connect(partial, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    for version, script in migrations():
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;")
    conn.execute("BEGIN")
    queue_ids = []
    for q in range(QUEUE_COUNT):
        cursor = conn.execute(
            "INSERT INTO queues (client_id, name, create_date) VALUES ('acme', ?, ?)",
            (f"queue-{q}", "2024-05-01 10:00:00"),
        )
        assert cursor.lastrowid is not None
        queue_ids.append(cursor.lastrowid)
    conn.execute("COMMIT")
    step = 100_000
    for first in range(1, count + 1, step):
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO tasks (id, scheduler_id, name, params, status, finish_result,"
            " finish_comment, next_attempt, create_date) VALUES (?,?,?,?,?,?,?,?,?)",
            _rows(min(step, count + 1 - first), first, queue_ids),
        )
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()
    partial.rename(path)


async def bench_lists(daemon: Daemon, queries: int) -> dict[str, ListFigures]:
    """(b) p50/p99 in ms and the typical X-Total-Count of each kind of list query."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    base = f"{daemon.url}/client/acme/task_scheduler/"
    rng = random.Random(7)
    results = {}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(base) as response:
            queue_ids = [q["id"] for q in await response.json()]
            per_queue = (await _total(session, f"{base}{queue_ids[0]}/tasks/", {})) or 1
        kinds: dict[str, Any] = {
            "status=scheduled, page 1-50": lambda: {
                "status": "scheduled",
                "page": str(rng.randint(1, 50)),
            },
            "status=delayed&status=executed": lambda: [
                ("status", "delayed"),
                ("status", "executed"),
                ("page", str(rng.randint(1, 5))),
            ],
            "finish_result=failed, page 1-50": lambda: {
                "finish_result": "failed",
                "page": str(rng.randint(1, 50)),
            },
            "name=campaign-N": lambda: {"name": f"campaign-{rng.randrange(NAMES)}"},
            "deep page (last 10% of the queue)": lambda: {
                "page": str(rng.randint(per_queue // 100 * 9 // 10, per_queue // 100)),
            },
            "per_page=1000, page 1-20": lambda: {
                "per_page": "1000",
                "page": str(rng.randint(1, 20)),
            },
        }
        for kind, params in kinds.items():
            samples, totals = [], []
            for n in range(queries + 20):
                url = f"{base}{rng.choice(queue_ids)}/tasks/"
                started = time.perf_counter()
                async with session.get(url, params=params()) as response:
                    await response.read()
                    elapsed = time.perf_counter() - started
                    assert response.status == 200
                    totals.append(int(response.headers["X-Total-Count"]))
                if n >= 20:  # the first few warm the caches
                    samples.append(elapsed * 1000)
            results[kind] = ListFigures(
                percentile(samples, 50), percentile(samples, 99), int(statistics.median(totals))
            )
    return results


async def _total(session: aiohttp.ClientSession, url: str, params: dict[str, str]) -> int:
    async with session.get(url, params={**params, "per_page": "1"}) as response:
        return int(response.headers["X-Total-Count"])


@dataclass
class ListFigures:
    p50_ms: float
    p99_ms: float
    total: int  # the typical X-Total-Count


@dataclass
class ApiFigures:
    """What one run measured; `post_rates` is empty when the POST was skipped."""

    tasks: int
    post_rates: list[float] = field(default_factory=list)
    lists: dict[str, ListFigures] = field(default_factory=dict)
    memory_idle_kb: dict[str, int] = field(default_factory=dict)
    memory_kb: dict[str, int] = field(default_factory=dict)
    store_build_seconds: float | None = None

    @property
    def post_rate(self) -> float:
        return statistics.median(self.post_rates)


async def measure(
    tasks: int, repeat: int, queries: int, skip_post: bool = False, log: Log = print
) -> ApiFigures:
    """(a), (b) and (c); builds the big store first when it is not in bench/out yet."""
    OUT.mkdir(exist_ok=True)
    figures = ApiFigures(tasks)
    if not skip_post:
        figures.post_rates = await bench_post(repeat)
    store = OUT / f"tasks-{tasks}.db"
    if not store.exists():
        log(f"# building {store.name} (reused by later runs)")
        started = time.perf_counter()
        build_store(store, tasks)
        figures.store_build_seconds = time.perf_counter() - started
    async with Daemon(store) as daemon:
        figures.memory_idle_kb = daemon.memory_kb()
        figures.lists = await bench_lists(daemon, queries)
        figures.memory_kb = daemon.memory_kb()
    return figures


def print_figures(figures: ApiFigures) -> None:
    if figures.post_rates:
        print(
            f"(a) POST 10,000 tasks: median {figures.post_rate:,.0f} tasks/s "
            f"(runs: {', '.join(f'{r:,.0f}' for r in figures.post_rates)}; target >= 50,000)"
        )
    if figures.store_build_seconds is not None:
        print(f"# built tasks-{figures.tasks}.db in {figures.store_build_seconds:.1f} s")
    print(f"(b) list queries over {figures.tasks:,} tasks in {QUEUE_COUNT} queues, per_page 100")
    print("    (target p99 <= 20 ms):")
    for kind, found in figures.lists.items():
        shown = f"p50 {found.p50_ms:6.2f} ms  p99 {found.p99_ms:6.2f} ms"
        print(f"    {kind:<36} {shown}  (X-Total-Count ~{found.total:,})")
    memory, idle = figures.memory_kb, figures.memory_idle_kb
    print(
        f"(c) daemon memory with {figures.tasks:,} tasks: VmRSS {memory['VmRSS'] / 1024:.0f} MB "
        f"after the queries (peak VmHWM {memory['VmHWM'] / 1024:.0f} MB, "
        f"{idle['VmRSS'] / 1024:.0f} MB at start; target <= 150 MB)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000, help="tasks in the big store")
    parser.add_argument("--repeat", type=int, default=5, help="runs of the 10,000-task POST")
    parser.add_argument("--queries", type=int, default=300, help="measured queries per kind")
    parser.add_argument("--skip-post", action="store_true")
    add_json_option(parser)
    args = parser.parse_args()
    print(f"# {shlex.join(['.venv/bin/python', '-m', 'bench.bench_api', *sys.argv[1:]])}")
    print(f"# python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    figures = await measure(args.tasks, args.repeat, args.queries, args.skip_post)
    print_figures(figures)
    write_json(args.json, figures)


if __name__ == "__main__":
    asyncio.run(main())
