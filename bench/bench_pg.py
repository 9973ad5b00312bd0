"""The shared PostgreSQL store beside the embedded SQLite one, at the store's interface
(not run by pytest; the throwaway PostgreSQL of tools/testpg, fsync on).

(a) one bulk add of 10,000 tasks, committed: tasks/s with COPY, beside SQLite's store
    path for the same batch (median of --repeat);
(b) the task list queries of bench_api over a store of --tasks tasks, through
    TaskRepository.list on each store: p50/p99 ms;
(c) claim latency with two hosts claiming from one queue at once (the daemon's own
    claim of 10 due tasks, each host its own connections): p99 ms, beside one alone.

    .venv/bin/python -m bench.bench_pg [--tasks 1000000] [--repeat 5] [--queries 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import psycopg
from psycopg.conninfo import make_conninfo

from bench.bench_api import NAMES, OUT, _rows, _stored_params, build_store
from bench.figures import Log, add_json_option, percentile, write_json
from daemon.models import CallPlan, TaskStatus
from daemon.store.attempts import AttemptRepository, Claim
from daemon.store.db import Database
from daemon.store.pg.backend import PgDatabase
from daemon.store.pg.connection import connect
from daemon.store.pg.dbapi import Connection
from daemon.store.pg.schema import migrate
from daemon.store.tasks import TaskFilter, TaskRepository

REPO = Path(__file__).resolve().parent.parent
BATCH = 10_000
QUEUES = 4
NOW = "2026-03-01 12:00:00"
COPY_TASKS = (
    "COPY tasks (id, scheduler_id, name, params, status, finish_result, finish_comment,"
    " next_attempt, create_date) FROM STDIN"
)


@dataclass
class ListFigures:
    p50_ms: float
    p99_ms: float


@dataclass
class PgFigures:
    tasks: int
    copy_rates: list[float] = field(default_factory=list)
    sqlite_rates: list[float] = field(default_factory=list)
    lists: dict[str, ListFigures] = field(default_factory=dict)
    sqlite_lists: dict[str, ListFigures] = field(default_factory=dict)
    claim_p99_ms: float = 0.0
    claim_alone_p99_ms: float = 0.0

    @property
    def copy_rate(self) -> float:
        return statistics.median(self.copy_rates)

    @property
    def sqlite_rate(self) -> float:
        return statistics.median(self.sqlite_rates)


def database(name: str) -> str:
    """A new, empty database `name` on the throwaway PostgreSQL, migrated."""
    admin = subprocess.run(
        [str(REPO / "tools" / "testpg"), "start"], capture_output=True, text=True, check=True
    ).stdout.strip()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(admin, dbname=name)
    with connect(url) as conn:
        migrate(conn)
    return url


def _queues(conn: Connection, limit: int = 10) -> None:
    for q in range(1, QUEUES + 1):
        conn.execute(
            "INSERT INTO queues (id, client_id, name, status, concurrent_task_limit, create_date)"
            " VALUES (?, 'acme', ?, 'on', ?, ?)",
            (q, f"queue-{q}", limit, NOW),
        )


def _new_rows(first_id: int, count: int) -> list[tuple[Any, ...]]:
    return [
        (i, 1, "", _stored_params(i), "scheduled", None, "", NOW, NOW)
        for i in range(first_id, first_id + count)
    ]


def bench_copy(url: str, repeat: int) -> list[float]:
    conn = Connection.open(url, 10)
    _queues(conn)
    rates = []
    for n in range(repeat):
        rows = _new_rows(1 + n * BATCH, BATCH)  # prepared first, as the API validates first
        started = time.perf_counter()
        conn.execute("BEGIN")
        conn.copy_rows(COPY_TASKS, rows)
        conn.execute("COMMIT")
        rates.append(BATCH / (time.perf_counter() - started))
    conn.close()
    return rates


async def bench_sqlite_add(directory: Path, repeat: int) -> list[float]:
    """The SQLite store's own bulk add of the same batch (no HTTP, no validation)."""
    path = directory / "bench-pg-sqlite-add.db"
    await asyncio.to_thread(_remove, directory, path.name)
    db = await Database.open(path)
    await db.write(
        lambda conn: conn.execute(
            "INSERT INTO queues (id, client_id, name, status, create_date)"
            " VALUES (1, 'acme', 'q', 'on', ?)",
            (NOW,),
        )
    )
    tasks = TaskRepository(db)
    rates = []
    for _ in range(repeat):
        batch = [json.loads(_stored_params(i)) for i in range(BATCH)]
        started = time.perf_counter()
        await tasks.add_fields("acme", 1, batch, NOW, lambda answers: "")
        rates.append(BATCH / (time.perf_counter() - started))
    await db.close()
    return rates


def _remove(directory: Path, name: str) -> None:
    for leftover in directory.glob(f"{name}*"):
        leftover.unlink()


def build_pg_store(url: str, count: int) -> None:
    conn = Connection.open(url, 10)
    conn.execute("BEGIN")
    _queues(conn)
    conn.execute("COMMIT")
    step = 100_000
    for first in range(1, count + 1, step):
        conn.execute("BEGIN")
        conn.copy_rows(COPY_TASKS, list(_rows(min(step, count + 1 - first), first, [1, 2, 3, 4])))
        conn.execute("COMMIT")
    conn.execute("VACUUM ANALYZE tasks")
    conn.close()


def list_kinds(rng: random.Random, per_queue: int) -> dict[str, Any]:
    """bench_api's list queries, as (filter, limit, offset)."""
    return {
        "status=scheduled, page 1-50": lambda: (
            TaskFilter(statuses=(TaskStatus.SCHEDULED,)),
            100,
            rng.randint(0, 49) * 100,
        ),
        "status=delayed&status=executed": lambda: (
            TaskFilter(statuses=(TaskStatus.DELAYED, TaskStatus.EXECUTED)),
            100,
            rng.randint(0, 4) * 100,
        ),
        "name=campaign-N": lambda: (TaskFilter(name=f"campaign-{rng.randrange(NAMES)}"), 100, 0),
        "deep page (last 10% of the queue)": lambda: (
            TaskFilter(),
            100,
            rng.randint(per_queue * 9 // 10, per_queue - 100),
        ),
    }


async def bench_lists(db: Any, count: int, queries: int) -> dict[str, ListFigures]:
    tasks = TaskRepository(db)
    rng = random.Random(7)
    results = {}
    for kind, query in list_kinds(rng, count // QUEUES).items():
        samples = []
        for n in range(queries + 20):
            where, limit, offset = query()
            started = time.perf_counter()
            await tasks.list(rng.randint(1, QUEUES), where, limit, offset)
            if n >= 20:  # the first few warm the caches
                samples.append((time.perf_counter() - started) * 1000)
        results[kind] = ListFigures(percentile(samples, 50), percentile(samples, 99))
    return results


async def bench_claims(url: str, hosts: int, claims_per_host: int) -> float:
    """p99 ms of one claim of 10 due tasks (AttemptRepository.claim, the daemon's own),
    with `hosts` hosts, each its own connections, claiming from one queue at once: each
    reads the oldest due tasks, as its scheduler does, so they contend for the same."""
    with connect(url) as conn:
        conn.execute("TRUNCATE attempts, outbox, tasks, task_counts, queues CASCADE")
        conn.execute(
            "INSERT INTO queues (id, client_id, name, status, concurrent_task_limit, create_date)"
            " VALUES (1, 'acme', 'q', 'on', 1000000, %s)",
            (NOW,),
        )
        conn.execute(
            "INSERT INTO tasks (id, scheduler_id, params, status, next_attempt, create_date)"
            " SELECT i, 1, %s, 'scheduled', %s, %s FROM generate_series(1, %s) i",
            (_stored_params(1), NOW, NOW, hosts * claims_per_host * 10),
        )
        conn.commit()
    now = datetime(2026, 3, 1, 12, 0, 1, tzinfo=UTC)
    plan = CallPlan(a_numbers=["1001"], b_number="1002")
    dbs = [await PgDatabase.open(url, f"pbx-{n}") for n in range(hosts)]
    samples: list[float] = []

    async def host(db: PgDatabase) -> None:
        attempts = AttemptRepository(cast(Database, db))
        for _ in range(claims_per_host):
            due = await db.fetch_all(
                "SELECT id FROM tasks WHERE status = 'scheduled' ORDER BY id LIMIT 10"
            )
            claims = [Claim(row[0], 1, str(uuid.uuid4()), 1, plan) for row in due]
            began = time.perf_counter()
            await attempts.claim(claims, now)
            samples.append((time.perf_counter() - began) * 1000)

    await asyncio.gather(*(host(db) for db in dbs))
    for db in dbs:
        await db.close()
    return percentile(samples, 99)


async def measure(tasks: int, repeat: int, queries: int, log: Log = print) -> PgFigures:
    OUT.mkdir(exist_ok=True)
    figures = PgFigures(tasks)
    log(f"bulk add: {repeat} x {BATCH:,} tasks, COPY into PostgreSQL and SQLite's add")
    figures.copy_rates = bench_copy(database("bench_copy"), repeat)
    figures.sqlite_rates = await bench_sqlite_add(OUT, repeat)
    log(f"lists: building {tasks:,} tasks in PostgreSQL (and SQLite, if not kept)")
    url = database("bench_lists")
    build_pg_store(url, tasks)
    pg = await PgDatabase.open(url)
    figures.lists = await bench_lists(pg, tasks, queries)
    await pg.close()
    sqlite_path = OUT / f"bench-{tasks}.db"
    if not sqlite_path.exists():
        build_store(sqlite_path, tasks)
    lite = await Database.open(sqlite_path)
    figures.sqlite_lists = await bench_lists(lite, tasks, queries)
    await lite.close()
    log("claims: two hosts at once, then one alone")
    claims = database("bench_claims")
    figures.claim_p99_ms = await bench_claims(claims, 2, max(queries, 100))
    figures.claim_alone_p99_ms = await bench_claims(claims, 1, max(queries, 100))
    return figures


def print_figures(f: PgFigures) -> None:
    print(f"bulk add of {BATCH:,}: PostgreSQL COPY {f.copy_rate:,.0f} tasks/s,")
    print(f"  SQLite store {f.sqlite_rate:,.0f} tasks/s")
    for kind, found in f.lists.items():
        lite = f.sqlite_lists[kind]
        print(
            f"list at {f.tasks:,} {kind}: PostgreSQL p50 {found.p50_ms:.1f} p99 "
            f"{found.p99_ms:.1f} ms; SQLite p50 {lite.p50_ms:.1f} p99 {lite.p99_ms:.1f} ms"
        )
    print(f"claim p99, two hosts: {f.claim_p99_ms:.1f} ms (one host: {f.claim_alone_p99_ms:.1f})")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--queries", type=int, default=300)
    add_json_option(parser)
    args = parser.parse_args()
    figures = await measure(args.tasks, args.repeat, args.queries)
    print_figures(figures)
    write_json(args.json, figures)


if __name__ == "__main__":
    asyncio.run(main())
