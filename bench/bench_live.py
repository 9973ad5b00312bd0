"""Memory of the real `callbackd run` process with many callbacks up at once on the test
PBX (not run by pytest).

--calls tasks (A 8000 answers at once and talks for an hour; B 8001 the same) are POSTed
into a queue that is switched on once the daemon's idle memory has been read. When the
daemon counts them all in progress (/metrics) and an AMI observer connection of this
script sees every B leg in a bridge, VmRSS and VmHWM are read from /proc/PID/status.
Then every task is cancelled through the API (which hangs its call up); whatever of
these calls is still up on the PBX after that is hung up by the observer.

    .venv/bin/python -m bench.bench_live [--calls 500]
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from ami.events import AmiEvent, header
from bench.bench_api import TOKEN, Daemon
from bench.figures import Log, add_json_option, memory_kb, write_json
from bench.pbx import PHONES, CallWatcher, TestPbx, unquoted

A_NUMBER, B_NUMBER = "8000", "8001"  # 8Nxx: rings N s, answers, talks for an hour
CANCEL_AT_ONCE = 20
# How long the ramp may take: this much per call, plus a minute.
RAMP_PER_CALL_S = 0.2


@dataclass
class LiveFigures:
    calls: int
    idle_kb: dict[str, int] = field(default_factory=dict)  # the daemon before the calls
    memory_kb: dict[str, int] = field(default_factory=dict)  # ... with all calls up
    asterisk_kb: dict[str, int] = field(default_factory=dict)  # Asterisk then (shared)
    ramp_seconds: float = 0.0  # queue switched on -> all calls bridged
    in_progress: int = 0  # the daemon's /metrics then
    bridged: int = 0  # the observer's count then
    cancel_answers: dict[str, int] = field(default_factory=dict)  # HTTP status -> DELETEs
    left_after_cancel: int = 0  # calls still up after the cancels (waited up to 60 s)
    hung_up_by_observer: int = 0  # ... which the observer then hung up
    observer_lost: bool = False  # its AMI connection ended: the counts above are unsure


def _config(pbx: TestPbx, calls: int) -> tuple[str, str]:
    """The [ami] section's body and the [calls] section for the daemon."""
    ami = (
        f'host = "{pbx.host}"\nport = {pbx.port}\nusername = "callbackd"\nsecret = "{pbx.secret}"\n'
    )
    extra = (
        f'[calls]\na_channel = "{PHONES}"\nb_channel = "{PHONES}"\n'
        f"a_ring_timeout = 10\nb_ring_timeout = 10\nmax_concurrent = {calls}\n"
    )
    return ami, extra


async def _api(
    session: aiohttp.ClientSession, method: str, url: str, body: Any = None
) -> tuple[int, Any]:
    async with session.request(method, url, json=body) as response:
        return response.status, await response.json(content_type=None)


async def _poll(session: aiohttp.ClientSession, url: str, ok: Any, within: float) -> str:
    """GET `url` until `ok(status, text)`; returns the last text. The daemon is another
    process, so polling is the only way to ask it."""
    deadline = time.monotonic() + within
    while True:
        async with session.get(url) as response:
            text = await response.text()
            if ok(response.status, text) or time.monotonic() > deadline:
                return text
        await asyncio.sleep(0.25)


def _calls_in_progress(metrics: str) -> int:
    for line in metrics.splitlines():
        if line.startswith("callbackd_calls_in_progress "):
            return int(float(line.split()[1]))
    return -1


async def _ramp(
    daemon: Daemon,
    session: aiohttp.ClientSession,
    watcher: CallWatcher,
    tag: str,
    figures: LiveFigures,
) -> tuple[str, list[int]]:
    """Stores the tasks, reads the idle memory, switches the queue on and waits until
    every call is up; returns the queue's tasks URL and the task ids."""
    base = f"{daemon.url}/client/acme/task_scheduler/"
    limit = {"concurrent_task_limit": figures.calls}
    _, queue = await _api(session, "POST", base, {"name": "live", **limit})
    tasks_url = f"{base}{queue['id']}/tasks/"
    task = {"a_number": A_NUMBER, "b_number": B_NUMBER, "variables": {"ORDER_ID": tag}}
    status, made = await _api(session, "POST", tasks_url, {"tasks": [task] * figures.calls})
    assert status == 201, made
    await _poll(session, f"{daemon.url}/readyz", lambda status, _: status == 200, 30)
    figures.idle_kb = daemon.memory_kb()
    started = time.perf_counter()
    await _api(session, "PUT", f"{base}{queue['id']}", {"status": "on"})
    within = figures.calls * RAMP_PER_CALL_S + 60
    if not await watcher.wait_until(lambda: watcher.bridged >= figures.calls, within):
        raise SystemExit(f"only {watcher.bridged} of {figures.calls} calls bridged in {within} s")
    metrics = await _poll(
        session,
        f"{daemon.url}/metrics",
        lambda _, text: _calls_in_progress(text) >= figures.calls,
        30,
    )
    figures.ramp_seconds = time.perf_counter() - started
    figures.in_progress = _calls_in_progress(metrics)
    figures.bridged = watcher.bridged
    return tasks_url, [t["id"] for t in made["tasks"]]


async def _cancel(
    session: aiohttp.ClientSession, tasks_url: str, task_ids: list[int]
) -> dict[str, int]:
    """DELETE every task (a task in a call has its call hung up); returns how many
    answers of each HTTP status came back."""
    gate = asyncio.Semaphore(CANCEL_AT_ONCE)

    async def cancel(task_id: int) -> int:
        async with gate:
            status, _ = await _api(session, "DELETE", f"{tasks_url}{task_id}")
            return status

    answers = await asyncio.gather(*(cancel(i) for i in task_ids))
    return {str(status): answers.count(status) for status in sorted(set(answers))}


async def measure(calls: int, log: Log = print) -> LiveFigures:
    pbx = TestPbx.from_env()
    # Every phone reports the task's ORDER_ID: it tells these calls from other runs'.
    tag = f"bench-live-{uuid.uuid4().hex[:12]}"
    figures = LiveFigures(calls)

    def ours(report: AmiEvent) -> bool:
        return unquoted(header(report, "ORDER_ID")) == tag

    watcher = CallWatcher(ours, b_leg=PHONES.format(number=B_NUMBER) + "-")
    await watcher.connect(pbx)
    ami, extra = _config(pbx, calls)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    finished = False
    try:
        with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
            async with (
                Daemon(Path(tmp) / "cb.db", ami, extra) as daemon,
                aiohttp.ClientSession(headers=headers) as session,
            ):
                tasks_url, task_ids = await _ramp(daemon, session, watcher, tag, figures)
                figures.memory_kb = daemon.memory_kb()
                pid = pbx.asterisk_pid()
                figures.asterisk_kb = memory_kb(pid) if pid else {}
                log(f"  {figures.bridged} calls up after {figures.ramp_seconds:.1f} s")
                figures.cancel_answers = await _cancel(session, tasks_url, task_ids)
                await watcher.wait_until(lambda: watcher.live == 0, 60)
                figures.left_after_cancel = watcher.live
        finished = True
    finally:
        if not finished:
            # The daemon may have sent Originates whose calls have not reported yet.
            await asyncio.sleep(3)
        figures.hung_up_by_observer = await watcher.hang_up_ours()
        figures.observer_lost = watcher.lost
        await watcher.close()
    return figures


def print_figures(figures: LiveFigures) -> None:
    mb = {key: kb / 1024 for key, kb in figures.memory_kb.items()}
    print(
        f"{figures.calls} callbacks up at once (A {A_NUMBER}, B {B_NUMBER}, both talk for an "
        f"hour), all bridged {figures.ramp_seconds:.1f} s after the queue was switched on"
    )
    print(
        f"  daemon VmRSS {mb['VmRSS']:.0f} MB (peak VmHWM {mb['VmHWM']:.0f} MB; "
        f"{figures.idle_kb['VmRSS'] / 1024:.0f} MB before the calls; target <= 150 MB)"
    )
    if figures.asterisk_kb:
        print(f"  Asterisk VmRSS {figures.asterisk_kb['VmRSS'] / 1024:.0f} MB then (shared PBX)")
    print(
        f"  tasks cancelled (DELETE answers by status: {figures.cancel_answers}); calls still"
        f" up after that (waited up to 60 s):"
        f" {figures.left_after_cancel}; hung up by the observer: {figures.hung_up_by_observer}"
    )
    if figures.observer_lost:
        print("  the observer's AMI connection ended (Asterisk restarted?): calls unchecked")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    add_json_option(parser)
    args = parser.parse_args()
    figures = await measure(args.calls)
    print(f"$ {shlex.join(['.venv/bin/python', '-m', 'bench.bench_live', *sys.argv[1:]])}")
    print_figures(figures)
    write_json(args.json, figures)


if __name__ == "__main__":
    asyncio.run(main())
