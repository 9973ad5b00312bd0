"""A call engine over a real store, for tests: submit a task, place its attempt, await
how it ended (the engine reports it; nothing polls)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ami.client import AmiClient, ConnectionSettings
from ami.outcome import Outcome
from config import Settings
from daemon.calls import CallEngine, NoListener
from daemon.clock import SystemClock, now_text
from daemon.models import CallRecord, QueueInput, TaskInput
from daemon.retry import NextStep
from daemon.store.attempts import AttemptRepository, TaskRecord
from daemon.store.calls import CallRepository
from daemon.store.db import Database
from daemon.store.queues import QueueRepository
from daemon.store.tasks import TaskRepository

CLIENT = "acme"
PHONES = "Local/{number}@phones"


@dataclass
class Ended:
    outcome: Outcome
    step: NextStep | None


@dataclass
class Recorder(NoListener):
    """The engine's listener: resolves one future per task when its attempt ends."""

    ended: dict[int, asyncio.Future[Ended]] = field(default_factory=dict)
    bridged: dict[int, asyncio.Event] = field(default_factory=dict)

    def expect(self, task_id: int) -> None:
        self.ended[task_id] = asyncio.get_running_loop().create_future()
        self.bridged[task_id] = asyncio.Event()

    async def attempt_started(self, record: TaskRecord, call_uuid: str) -> None:
        return None

    async def call_bridged(self, task_id: int, call_uuid: str) -> None:
        self.bridged[task_id].set()

    async def attempt_withdrawn(self, task_id: int) -> None:
        return None

    async def attempt_ended(
        self, task_id: int, call_uuid: str, outcome: Outcome, step: NextStep | None
    ) -> None:
        future = self.ended[task_id]
        if not future.done():
            future.set_result(Ended(outcome, step))


def phone_settings(**calls: Any) -> Settings:
    defaults: dict[str, Any] = {
        "a_channel": PHONES,
        "b_channel": PHONES,
        "a_ring_timeout": 4,
        "b_ring_timeout": 4,
    }
    return Settings(calls=defaults | calls)


@dataclass
class EngineHarness:
    db: Database
    engine: CallEngine
    ami: AmiClient
    recorder: Recorder
    queue_id: int

    async def add_task(self, a_number: str, b_number: str, **fields: Any) -> int:
        task = TaskInput(a_number=a_number, b_number=b_number, **fields)
        stored = await TaskRepository(self.db).add(
            CLIENT,
            self.queue_id,
            [task],
            now_text(SystemClock()),
            render=lambda made: str(made[0]["id"]),
        )
        return int(stored.body)

    async def place(self, task_id: int) -> str:
        record = await AttemptRepository(self.db).task(task_id)
        assert record is not None
        self.recorder.expect(task_id)
        call_uuid = await self.engine.place(record)
        assert call_uuid is not None
        return call_uuid

    async def wait_end(self, task_id: int, timeout: float = 40) -> Ended:  # noqa: ASYNC109
        return await asyncio.wait_for(self.recorder.ended[task_id], timeout)

    async def call(self, a_number: str, b_number: str, **fields: Any) -> tuple[Ended, CallRecord]:
        task_id = await self.add_task(a_number, b_number, **fields)
        call_uuid = await self.place(task_id)
        ended = await self.wait_end(task_id)
        return ended, await self.record(call_uuid)

    async def record(self, call_uuid: str) -> CallRecord:
        await self.engine.drain()
        record = await CallRepository(self.db).get(CLIENT, call_uuid, with_events=True)
        assert record is not None
        return record


@asynccontextmanager
async def engine_harness(
    db_path: Path, host: str, port: int, username: str, secret: str, settings: Settings
) -> AsyncIterator[EngineHarness]:
    db = await Database.open(db_path)
    queue = await QueueRepository(db).create(
        CLIENT, QueueInput(name="test", status="on"), now_text(SystemClock())
    )
    ami = AmiClient(
        ConnectionSettings(
            host,
            port,
            username,
            secret,
            ping_interval=1.0,
            ping_timeout=2.0,
            reconnect_min=0.2,
            reconnect_max=1.0,
        )
    )
    recorder = Recorder()
    engine = CallEngine(ami, AttemptRepository(db), SystemClock(), lambda: settings, recorder)
    await ami.start()
    runner = asyncio.create_task(engine.run())
    try:
        assert await engine.wait_ready(15), engine.last_error
        yield EngineHarness(db, engine, ami, recorder, queue.id)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await ami.stop()
        await db.close()


def phone_reports(record: CallRecord) -> dict[str, dict[str, str]]:
    """What each phone reported having received, by the number it answers to."""
    return {
        ev["Number"]: ev
        for ev in record.events or []
        if ev.get("Event") == "UserEvent" and ev.get("UserEvent") == "PhoneReport"
    }
