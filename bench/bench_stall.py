"""How long the call engine's small writes wait while a bulk add is stored (not run by
pytest). The real API (aiohttp on 127.0.0.1) over a real SQLite file takes `--posts`
POSTs of `--tasks` tasks, one after the other, while the engine's kind of write (an
attempt's answer, through the same store object) is written back to back in the same
process; each write's latency is recorded, and the same is done with no POST running.
A write that waits behind the POST's transaction, or behind a blocked event loop, shows
in the figures.

    .venv/bin/python -m bench.bench_stall [--tasks 10000] [--posts 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web

from api.app import create_app
from bench.bench_api import _task
from bench.figures import add_json_option, percentile, write_json
from config import Settings
from daemon.models import CallPlan, QueueInput, TaskInput
from daemon.services import Services, open_services
from daemon.store.attempts import AttemptRepository, Claim

TOKEN = "bench-token"


@dataclass
class StallFigures:
    tasks_per_post: int
    posts: int
    post_seconds: list[float]
    idle_writes: int
    idle_p50_ms: float
    idle_max_ms: float
    during_writes: int
    during_p50_ms: float
    during_p99_ms: float
    during_max_ms: float


async def _live_attempt(services: Services, attempts: AttemptRepository) -> str:
    """A task with an attempt in a call, to write answers for."""
    now = datetime.now(UTC)
    queue = await services.queues.create("acme", QueueInput(name="engine"), "2026-01-01 00:00:00")
    await services.tasks.add(
        "acme", queue.id, [TaskInput(a_number="100", b_number="200")], "2026-01-01 00:00:00", str
    )
    task_id = int(await services.db.fetch_value("SELECT max(id) FROM tasks"))
    plan = CallPlan(a_numbers=["100"], b_number="200")
    claim = Claim(task_id, queue.id, "bench-call", 1, plan)
    await attempts.claim([claim], now)
    return claim.call_uuid


async def _write_answers(
    attempts: AttemptRepository, call_uuid: str, stop: asyncio.Event, into: list[float]
) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        await attempts.mark_answered(call_uuid, datetime.now(UTC), "100")
        into.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.002)  # as calls come: not a queue that is never empty


async def measure(tasks: int, posts: int) -> StallFigures:
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings(
            api={"tokens": {TOKEN: "acme"}}, store={"path": Path(directory) / "callbackd.db"}
        )
        services = await open_services(settings)
        runner = web.AppRunner(create_app(services))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        attempts = AttemptRepository(services.db)
        try:
            call_uuid = await _live_attempt(services, attempts)
            idle: list[float] = []
            stop = asyncio.Event()
            writer = asyncio.create_task(_write_answers(attempts, call_uuid, stop, idle))
            await asyncio.sleep(1.0)
            stop.set()
            await writer
            body = json.dumps({"tasks": [_task(i) for i in range(tasks)]}).encode()
            url = f"http://127.0.0.1:{port}/client/acme/task_scheduler/"
            headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
            during: list[float] = []
            seconds: list[float] = []
            async with aiohttp.ClientSession(headers=headers) as session:
                async with session.post(url, json={"name": "bulk"}) as response:
                    queue_id = (await response.json())["id"]
                for _ in range(posts):
                    stop = asyncio.Event()
                    writer = asyncio.create_task(_write_answers(attempts, call_uuid, stop, during))
                    await asyncio.sleep(0.05)
                    started = time.perf_counter()
                    async with session.post(f"{url}{queue_id}/tasks/", data=body) as response:
                        assert response.status == 201, await response.text()
                        await response.read()
                    seconds.append(time.perf_counter() - started)
                    stop.set()
                    await writer
        finally:
            await runner.cleanup()
            await services.db.close()
    return StallFigures(
        tasks_per_post=tasks,
        posts=posts,
        post_seconds=[round(s, 3) for s in seconds],
        idle_writes=len(idle),
        idle_p50_ms=round(percentile(idle, 50), 2),
        idle_max_ms=round(max(idle), 2),
        during_writes=len(during),
        during_p50_ms=round(percentile(during, 50), 2),
        during_p99_ms=round(percentile(during, 99), 2),
        during_max_ms=round(max(during), 2),
    )


def print_figures(f: StallFigures) -> None:
    print(
        f"engine write (an attempt's answer) while idle: {f.idle_writes} writes,"
        f" p50 {f.idle_p50_ms} ms, max {f.idle_max_ms} ms"
    )
    print(
        f"engine write during {f.posts} POSTs of {f.tasks_per_post:,} tasks"
        f" ({', '.join(f'{s:.3f}' for s in f.post_seconds)} s): {f.during_writes} writes,"
        f" p50 {f.during_p50_ms} ms, p99 {f.during_p99_ms} ms, max {f.during_max_ms} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--posts", type=int, default=3)
    add_json_option(parser)
    args = parser.parse_args()
    figures = asyncio.run(measure(args.tasks, args.posts))
    print_figures(figures)
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
