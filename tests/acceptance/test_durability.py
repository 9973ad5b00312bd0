"""A 2xx to a write means it is on disk (docs/api.md, "Durability"). The real daemon is
killed with SIGKILL the moment it answers, restarted on the same store, and must still
have every change."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.acceptance.conftest import DaemonStarter, answer

QUEUES = "/client/acme/task_scheduler/"


def _tasks(batch: int, size: int) -> list[dict[str, Any]]:
    return [
        {"name": f"batch-{batch}", "a_number": f"+7495{batch:03d}{i:04d}", "b_number": "101"}
        for i in range(size)
    ]


async def _get(session: aiohttp.ClientSession, url: str, **params: str) -> tuple[int, Any]:
    async with session.get(url, params=params) as response:
        return await answer(response)


async def _new_queue(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with session.post(base + QUEUES, json={"name": "durable"}) as response:
        status, queue = await answer(response)
    assert status == 201, queue
    return queue  # type: ignore[no-any-return]


async def test_accepted_tasks_survive_kill_9_right_after_the_answer(
    start_daemon: DaemonStarter, session: aiohttp.ClientSession
) -> None:
    daemon = await start_daemon()
    queue = await _new_queue(session, daemon.url)
    tasks_url = f"{daemon.url}{QUEUES}{queue['id']}/tasks/"

    async with session.post(tasks_url, json={"tasks": _tasks(1, 500)}) as response:
        assert response.status == 201
        accepted = (await response.json())["tasks"]
        await daemon.kill()

    await start_daemon()
    status, stored = await _get(session, tasks_url, per_page="1000")
    assert status == 200
    assert stored == accepted


async def test_every_acknowledged_batch_survives_a_kill_during_a_stream_of_writes(
    start_daemon: DaemonStarter, session: aiohttp.ClientSession
) -> None:
    daemon = await start_daemon()
    queue = await _new_queue(session, daemon.url)
    tasks_url = f"{daemon.url}{QUEUES}{queue['id']}/tasks/"
    acknowledged: dict[int, list[dict[str, Any]]] = {}
    enough = asyncio.Event()

    async def writer(first_batch: int) -> None:
        for batch in range(first_batch, first_batch + 1000, 4):
            try:
                async with session.post(tasks_url, json={"tasks": _tasks(batch, 40)}) as response:
                    if response.status == 201:
                        acknowledged[batch] = (await response.json())["tasks"]
            except aiohttp.ClientError:
                return  # the daemon died under this request
            if len(acknowledged) >= 12:
                enough.set()

    writers = [asyncio.create_task(writer(n)) for n in range(4)]
    async with asyncio.timeout(30):
        await enough.wait()
    await daemon.kill()
    await asyncio.gather(*writers)

    await start_daemon()
    status, stored = await _get(session, tasks_url, per_page="1000")
    assert status == 200
    by_batch: dict[str, list[dict[str, Any]]] = {}
    for task in stored:
        by_batch.setdefault(task["name"], []).append(task)
    for batch, tasks in acknowledged.items():
        assert by_batch.get(f"batch-{batch}") == tasks, f"acknowledged batch {batch} was lost"
    # A batch that was never answered is all there or not there at all.
    assert all(len(tasks) == 40 for tasks in by_batch.values())


async def test_a_created_queue_survives_kill_9(
    start_daemon: DaemonStarter, session: aiohttp.ClientSession
) -> None:
    daemon = await start_daemon()

    async with session.post(daemon.url + QUEUES, json={"name": "survivor"}) as response:
        assert response.status == 201
        await daemon.kill()
        created = await response.json()

    daemon = await start_daemon()
    status, stored = await _get(session, f"{daemon.url}{QUEUES}{created['id']}")
    assert status == 200
    assert stored == created


async def test_a_cancel_survives_kill_9(
    start_daemon: DaemonStarter, session: aiohttp.ClientSession
) -> None:
    daemon = await start_daemon()
    queue = await _new_queue(session, daemon.url)
    tasks_url = f"{daemon.url}{QUEUES}{queue['id']}/tasks/"
    async with session.post(tasks_url, json={"tasks": _tasks(7, 1)}) as response:
        [made] = (await response.json())["tasks"]

    async with session.delete(f"{tasks_url}{made['id']}") as response:
        assert response.status == 200
        await daemon.kill()
        cancelled = await response.json()

    await start_daemon()
    status, stored = await _get(session, f"{tasks_url}{made['id']}")
    assert status == 200
    assert stored == cancelled
    assert (stored["status"], stored["finish_comment"]) == ("finished", "cancelled")


async def test_sigterm_stops_the_daemon_cleanly(
    start_daemon: DaemonStarter, session: aiohttp.ClientSession
) -> None:
    daemon = await start_daemon()
    await _new_queue(session, daemon.url)

    code = await daemon.stop()

    assert code == 0, "".join(daemon.log)
    assert not any("Traceback" in line for line in daemon.log)
