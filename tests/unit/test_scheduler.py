"""The scheduler over a real store and a fake AMI server: what starts, when, and within
which limits. Time is a FakeClock; dispatch passes are driven explicitly."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ami.client import AmiClient, ConnectionSettings
from ami.events import AmiEvent, header
from ami.fake import FakeAmiServer
from ami.originate import REQUIRED_CONTEXTS
from config import Settings
from daemon.calls import CallEngine, NoListener
from daemon.calls.gate import REFUSAL_PAUSE
from daemon.clock import FakeClock, now_text
from daemon.models import (
    AttemptSummary,
    QueueInput,
    QueueUpdate,
    TaskInput,
    TaskOutput,
    WebhookBody,
    format_time,
)
from daemon.scheduler import EngineEvents, Scheduler
from daemon.store.attempts import AttemptRepository
from daemon.store.calls import CallRepository
from daemon.store.db import Database
from daemon.store.queries import q
from daemon.store.queues import QueueRepository
from daemon.store.tasks import TaskFilter, TaskRepository

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CLIENT = "acme"


def call_stays_up(action: AmiEvent) -> list[AmiEvent]:
    """The Local channel appears and stays until the test hangs it up."""
    return [{"Event": "Newchannel", "Channel": "Local/s@callbackd-a-1;1"}]


@dataclass
class World:
    fake: FakeAmiServer
    db: Database
    clock: FakeClock
    engine: CallEngine
    scheduler: Scheduler
    settings: Settings

    async def queue(self, **fields: Any) -> int:
        created = await QueueRepository(self.db).create(
            CLIENT, QueueInput(name="q", **fields), now_text(self.clock)
        )
        return created.id

    async def add(self, queue_id: int, count: int = 1, **fields: Any) -> None:
        tasks = [
            TaskInput.model_validate({"a_number": f"{100 + i}", "b_number": "200", **fields})
            for i in range(count)
        ]
        await TaskRepository(self.db).add(
            CLIENT, queue_id, tasks, now_text(self.clock), render=lambda made: ""
        )

    def originated(self) -> list[AmiEvent]:
        return [a for a in self.fake.actions if header(a, "Action").lower() == "originate"]

    async def statuses(self, queue_id: int) -> list[str]:
        tasks, _ = await TaskRepository(self.db).list(queue_id, TaskFilter(), 1000, 0)
        return [t["status"] for t in tasks]

    async def hang_up(self, call_uuid: str) -> None:
        """End a call the way Asterisk would, and wait until the engine closed it."""
        ended = asyncio.Event()
        self.engine.listeners.add(EndSignal(NoListener(), call_uuid, ended))
        await self.fake.push_events(
            [{"Event": "Hangup", "Uniqueid": call_uuid, "Linkedid": call_uuid, "Cause": "16"}]
        )
        async with asyncio.timeout(5):
            await ended.wait()


@dataclass
class EndSignal(NoListener):
    """Passes the engine's reports on, and sets `ended` when a call has ended (the one
    named, or any with call_uuid None)."""

    inner: Any
    call_uuid: str | None
    ended: asyncio.Event

    async def attempt_started(self, record: Any, call_uuid: str) -> None:
        await self.inner.attempt_started(record, call_uuid)

    async def call_bridged(self, task_id: int, call_uuid: str) -> None:
        await self.inner.call_bridged(task_id, call_uuid)

    async def attempt_withdrawn(self, task_id: int) -> None:
        await self.inner.attempt_withdrawn(task_id)

    async def attempt_ended(self, task_id: int, call_uuid: str, outcome: Any, step: Any) -> None:
        await self.inner.attempt_ended(task_id, call_uuid, outcome, step)
        if self.call_uuid in (None, call_uuid):
            self.ended.set()


class HeldProbe(EndSignal):
    """Notes which tasks the engine holds (`originating`) as each attempt starts, that
    is between its claim and its Originate."""

    def __init__(self, inner: Any, engine: CallEngine) -> None:
        super().__init__(inner, None, asyncio.Event())
        self.engine = engine
        self.held_at_start: list[set[int]] = []

    async def attempt_started(self, record: Any, call_uuid: str) -> None:
        self.held_at_start.append(set(self.engine.originating))
        await super().attempt_started(record, call_uuid)


def settings(**calls: Any) -> Settings:
    return Settings(
        calls={"a_channel": "Local/{number}@phones", "b_channel": "Local/{number}@phones", **calls},
        extensions={7: {"max_concurrent": 1}},
    )


@pytest.fixture
async def world(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    config = getattr(request, "param", settings())
    async with FakeAmiServer(secret="s3cret-for-tests", originate_script=call_stays_up) as fake:
        db = await Database.open(tmp_path / "cb.db")
        clock = FakeClock(T0)
        ami = AmiClient(ConnectionSettings(fake.host, fake.port, "callbackd", "s3cret-for-tests"))
        engine = CallEngine(ami, AttemptRepository(db), clock, lambda: config)
        scheduler = Scheduler(db, engine, clock, lambda: config)
        engine.listeners.add(EngineEvents(scheduler, lambda: None))
        await ami.start()
        running = asyncio.create_task(engine.run())
        try:
            assert await engine.wait_ready(5)
            yield World(fake, db, clock, engine, scheduler, config)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await ami.stop()
            await db.close()


async def test_a_queue_that_is_off_starts_nothing_until_switched_on(world: World) -> None:
    queue_id = await world.queue()
    await world.add(queue_id, 2)

    await world.scheduler.dispatch_due()
    assert world.originated() == []

    await QueueRepository(world.db).update(CLIENT, queue_id, QueueUpdate(status="on"))
    await world.scheduler.dispatch_due()
    assert len(world.originated()) == 2


async def test_queue_limit_of_two_keeps_the_rest_waiting_for_a_slot(world: World) -> None:
    queue_id = await world.queue(status="on", concurrent_task_limit=2)
    await world.add(queue_id, 6)

    await world.scheduler.dispatch_due()

    assert len(world.originated()) == 2
    assert sorted(await world.statuses(queue_id)) == sorted(
        ["executed"] * 2 + ["delayed_concurrent_task"] * 4
    )
    first_call = header(world.originated()[0], "ChannelId")
    await world.hang_up(first_call)
    await world.scheduler.dispatch_due()
    assert len(world.originated()) == 3


async def test_oldest_due_task_starts_first(world: World) -> None:
    queue_id = await world.queue(status="on", concurrent_task_limit=1)
    await world.add(queue_id, 1, a_number="111", start_time_utc="2026-03-01 08:59:30")
    await world.add(queue_id, 1, a_number="222", start_time_utc="2026-03-01 08:58:00")

    await world.scheduler.dispatch_due()

    [originate] = world.originated()
    assert header(originate, "Channel") == "Local/222@phones"


async def test_a_future_start_time_is_honoured(world: World) -> None:
    queue_id = await world.queue(status="on")
    await world.add(queue_id, 1, start_time_utc="2026-03-01 09:10:00")

    wake_at = await world.scheduler.dispatch_due()
    assert world.originated() == []
    assert wake_at == T0 + timedelta(minutes=10)

    await world.clock.advance(600)
    await world.scheduler.dispatch_due()
    assert len(world.originated()) == 1


@pytest.mark.parametrize("world", [settings(max_concurrent=3)], indirect=True)
async def test_the_pbx_limit_holds_across_queues(world: World) -> None:
    queue_ids = []
    for _ in range(2):
        queue_ids.append(await world.queue(status="on", concurrent_task_limit=10))
        await world.add(queue_ids[-1], 4)

    await world.scheduler.dispatch_due()

    assert len(world.originated()) == 3
    statuses = [s for queue_id in queue_ids for s in await world.statuses(queue_id)]
    assert sorted(statuses) == sorted(["executed"] * 3 + ["delayed_concurrent_task"] * 5)
    # Oldest due first: the first queue's tasks took the three slots.
    last_calls = [
        await world.db.fetch_value("SELECT last_call_date FROM queues WHERE id = ?", [queue_id])
        for queue_id in queue_ids
    ]
    assert last_calls == [format_time(T0), None]


@pytest.mark.parametrize("world", [settings(max_concurrent=1)], indirect=True)
async def test_a_task_that_falls_due_while_the_pbx_is_full_shows_it_waits_for_a_slot(
    world: World,
) -> None:
    queue_id = await world.queue(status="on")
    await world.add(queue_id, 1)  # takes the only slot, and talks on
    await world.add(queue_id, 1, start_time_utc="2026-03-01 09:10:00")

    # The scheduler's loop sleeps until the time dispatch_due returns: the PBX is full,
    # but the second task falls due then and must be seen waiting for a slot.
    assert await world.scheduler.dispatch_due() == T0 + timedelta(minutes=10)
    await world.clock.advance(11 * 60)
    await world.scheduler.dispatch_due()

    assert len(world.originated()) == 1
    assert sorted(await world.statuses(queue_id)) == ["delayed_concurrent_task", "executed"]


async def test_a_call_that_ends_while_the_scheduler_loads_does_not_keep_its_slot(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue_id = await world.queue(status="on")
    await world.add(queue_id, 1)
    task_id = await world.db.fetch_value("SELECT id FROM tasks")
    await world.db.write(  # a call from before the start, still followed
        lambda conn: conn.execute(
            "UPDATE tasks SET status = 'executed', next_attempt = NULL WHERE id = ?", [task_id]
        )
    )
    first_pass = asyncio.Event()  # the load is over when the first pass reads
    fetch_all = world.db.fetch_all

    async def rows_then_the_call_ends(sql: str, params: Any = ()) -> list[Any]:
        rows = await fetch_all(sql, params)
        if sql == q("select_executing_tasks"):
            world.scheduler.attempt_ended(task_id)  # while the rows are on their way
        elif sql == q("select_queue_limits"):
            first_pass.set()
        return rows

    monkeypatch.setattr(world.db, "fetch_all", rows_then_the_call_ends)
    loop = asyncio.create_task(world.scheduler.run())
    try:
        await asyncio.wait_for(first_pass.wait(), 5)
        assert world.scheduler.running == {}
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


async def test_an_extension_profile_limit_holds(world: World) -> None:
    queue_id = await world.queue(status="on")
    await world.add(queue_id, 3, extension_id=7)
    await world.add(queue_id, 1)

    await world.scheduler.dispatch_due()

    assert len(world.originated()) == 2  # one of extension 7, plus the plain task


@pytest.mark.parametrize("world", [settings(max_concurrent=3)], indirect=True)
@pytest.mark.parametrize("held", [4, 250])  # fewer, and more, than a pass reads
async def test_tasks_a_full_extension_holds_back_do_not_hide_the_tasks_behind_them(
    world: World, held: int
) -> None:
    # The first due rows are all of extension 7 (limit 1); the plain tasks behind them
    # still start, and the rest of extension 7's show they wait for a slot.
    queue_id = await world.queue(status="on")
    await world.add(queue_id, 1 + held, extension_id=7)
    await world.add(queue_id, 2)

    await world.scheduler.dispatch_due()

    assert len(world.originated()) == 3
    statuses = Counter(await world.statuses(queue_id))
    assert statuses == {"executed": 3, "delayed_concurrent_task": held}


async def test_nothing_starts_and_no_attempt_is_used_while_ami_is_not_logged_in(
    tmp_path: Path,
) -> None:
    config = settings()
    async with FakeAmiServer(secret="the-right-one") as fake:
        db = await Database.open(tmp_path / "cb.db")
        clock = FakeClock(T0)
        ami = AmiClient(ConnectionSettings(fake.host, fake.port, "callbackd", "a-wrong-secret"))
        engine = CallEngine(ami, AttemptRepository(db), clock, lambda: config)
        scheduler = Scheduler(db, engine, clock, lambda: config)
        await ami.start()
        try:
            queue = await QueueRepository(db).create(
                CLIENT, QueueInput(name="q", status="on"), now_text(clock)
            )
            task = TaskInput(a_number="100", b_number="200")
            await TaskRepository(db).add(CLIENT, queue.id, [task], now_text(clock), lambda m: "")

            assert await scheduler.dispatch_due() is None  # sleeps until woken

            assert fake.count("Originate") == 0
            tasks, _ = await TaskRepository(db).list(queue.id, TaskFilter(), 10, 0)
            assert [(t["status"], t["attempts_made"]) for t in tasks] == [("scheduled", 0)]
        finally:
            await ami.stop()
            await db.close()


@dataclass
class CancelOnStart(EndSignal):
    """Cancels the task the moment its attempt is claimed, before the Originate."""

    engine: CallEngine | None = None

    async def attempt_started(self, record: Any, call_uuid: str) -> None:
        await super().attempt_started(record, call_uuid)
        assert self.engine is not None
        await self.engine.hang_up_task(record.id)


async def test_a_cancel_before_the_originate_is_sent_rings_nobody(world: World) -> None:
    queue_id = await world.queue(status="on")
    await world.add(queue_id, 1)
    ended = asyncio.Event()
    world.engine.listeners.add(CancelOnStart(NoListener(), None, ended, world.engine))

    await world.scheduler.dispatch_due()
    async with asyncio.timeout(5):
        await ended.wait()

    assert world.originated() == []
    [call] = await world.db.fetch_all("SELECT result, state FROM attempts")
    assert (call["result"], call["state"]) == ("cancelled", "ended")


async def test_a_cancel_while_ami_is_down_hangs_the_call_up_once_ami_is_back(
    world: World,
) -> None:
    queue_id = await world.queue(status="on")
    await world.add(queue_id, 1)
    await world.scheduler.dispatch_due()
    [originate] = world.originated()
    call_uuid = header(originate, "ChannelId")
    world.fake.channels = [
        {"Channel": "Local/s@callbackd-a-1;1", "Uniqueid": call_uuid, "Linkedid": call_uuid}
    ]
    ended = asyncio.Event()
    world.engine.listeners.add(EndSignal(NoListener(), call_uuid, ended))
    secret = world.fake.secret
    world.fake.secret = "changed-while-the-link-is-down"
    logins = world.fake.count("Login")
    await world.fake.drop_connections()
    await world.fake.wait_for_action("Login", logins + 1)  # refused: AMI is down

    await world.engine.hang_up_task(await only_task_id(world, queue_id))
    assert world.fake.count("Hangup") == 0  # nothing could reach Asterisk
    world.fake.secret = secret
    async with asyncio.timeout(10):
        await ended.wait()

    [hangup] = [a for a in world.fake.actions if header(a, "Action") == "Hangup"]
    assert header(hangup, "Channel") == call_uuid
    assert world.fake.channels == []
    [call] = await world.db.fetch_all("SELECT result FROM attempts")
    assert call["result"] == "cancelled"


async def only_task_id(world: World, queue_id: int) -> int:
    [task] = (await TaskRepository(world.db).list(queue_id, TaskFilter(), 10, 0))[0]
    return int(task["id"])


async def test_a_call_found_gone_after_a_reconnect_is_closed_as_interrupted(
    world: World,
) -> None:
    queue_id = await world.queue(status="on")
    await world.add(queue_id, 1, try_count=2, try_again_pause=30)
    await world.scheduler.dispatch_due()
    [originate] = world.originated()
    ended = asyncio.Event()
    world.engine.listeners.add(EndSignal(NoListener(), None, ended))

    await world.fake.drop_connections()  # the PBX lists no channel of the call any more
    async with asyncio.timeout(10):
        await ended.wait()

    [call] = await world.db.fetch_all("SELECT call_uuid, result FROM attempts")
    assert (call["call_uuid"], call["result"]) == (header(originate, "ChannelId"), "interrupted")
    [task] = (await TaskRepository(world.db).list(queue_id, TaskFilter(), 10, 0))[0]
    assert (task["status"], task["finish_comment"]) == ("delayed", "interrupted")


async def test_an_originate_refused_while_asterisk_stops_uses_no_attempt(world: World) -> None:
    queue_id = await world.queue(status="on")
    await world.add(queue_id, 1, url_before="http://127.0.0.1:9/before")
    world.fake.originate_error = "Asterisk is shutting down"
    probe = HeldProbe(NoListener(), world.engine)
    world.engine.listeners.add(probe)

    await world.scheduler.dispatch_due()

    assert len(world.originated()) == 1
    assert await world.db.fetch_value("SELECT count(*) FROM attempts") == 0
    [task] = (await TaskRepository(world.db).list(queue_id, TaskFilter(), 10, 0))[0]
    assert (task["status"], task["attempts_made"]) == ("scheduled", 0)
    # Its `before` webhook was held while the Originate was out, and is withdrawn.
    assert probe.held_at_start == [{task["id"]}]
    assert world.engine.originating == set()
    assert await world.db.fetch_value("SELECT count(*) FROM outbox") == 0

    world.fake.originate_error = None
    await world.scheduler.dispatch_due()

    [attempt] = await world.db.fetch_all("SELECT call_uuid FROM attempts")
    [before] = await world.db.fetch_all("SELECT event, body FROM outbox")
    assert before["event"] == "before"
    assert json.loads(before["body"])["attempt"]["call_uuid"] == attempt["call_uuid"]


async def test_an_originate_not_permitted_burns_no_task_and_is_tried_again_later(
    world: World,
) -> None:
    # manager.conf without `originate` in write=: true of every call, not of this task.
    queue_id = await world.queue(status="on")
    await world.add(queue_id, 3, url_before="http://127.0.0.1:9/before")
    world.fake.originate_error = "Permission denied"

    await world.scheduler.dispatch_due()

    assert len(world.originated()) == 3
    assert await world.db.fetch_value("SELECT count(*) FROM attempts") == 0
    assert await world.db.fetch_value("SELECT count(*) FROM outbox") == 0
    tasks, _ = await TaskRepository(world.db).list(queue_id, TaskFilter(), 10, 0)
    assert {(t["status"], t["attempts_made"]) for t in tasks} == {("scheduled", 0)}
    assert not world.engine.ready
    assert world.engine.last_error is not None
    assert "originate" in world.engine.last_error and "manager.conf" in world.engine.last_error
    await world.scheduler.dispatch_due()
    assert len(world.originated()) == 3  # paused: nothing is sent meanwhile

    world.fake.originate_error = None  # the operator fixed manager.conf
    await world.clock.advance(REFUSAL_PAUSE.total_seconds())
    await world.engine.watch()
    # Tasks may be tried again, but /readyz names the problem until an Originate passes.
    assert world.engine.may_start and not world.engine.ready
    await world.scheduler.dispatch_due()

    assert len(world.originated()) == 6
    assert await world.db.fetch_value("SELECT count(*) FROM attempts") == 3
    assert world.engine.ready


async def test_an_originate_refused_for_a_vanished_dialplan_uses_no_try_until_it_is_back(
    world: World,
) -> None:
    # An operator's `dialplan reload` dropped callbackd's contexts while the daemon runs.
    queue_id = await world.queue(status="on")
    await world.add(queue_id, 2, try_count=1, url_before="http://127.0.0.1:9/before")
    world.fake.contexts = []
    world.fake.originate_error = "Extension does not exist."

    await world.scheduler.dispatch_due()

    assert len(world.originated()) == 2
    assert await world.db.fetch_value("SELECT count(*) FROM attempts") == 0
    assert await world.db.fetch_value("SELECT count(*) FROM outbox") == 0
    tasks, _ = await TaskRepository(world.db).list(queue_id, TaskFilter(), 10, 0)
    assert {(t["status"], t["attempts_made"]) for t in tasks} == {("scheduled", 0)}
    given_back = await world.db.fetch_all("SELECT refusal, count FROM given_back")
    assert [(g["refusal"], g["count"]) for g in given_back] == [
        ("Extension does not exist.", 1)
    ] * 2
    assert not world.engine.ready and not world.engine.may_start
    assert "Extension does not exist." in (world.engine.last_error or "")
    assert "dialplan reload" in (world.engine.last_error or "")

    await world.engine.watch()  # looks for the dialplan: still gone
    await world.scheduler.dispatch_due()
    assert len(world.originated()) == 2
    assert "callbackd-a, callbackd-b" in (world.engine.last_error or "")

    world.fake.contexts = list(REQUIRED_CONTEXTS)  # fixed, and reloaded
    world.fake.originate_error = None
    await world.engine.watch()
    assert world.engine.may_start  # found: no need to wait out a pause
    await world.scheduler.dispatch_due()

    assert len(world.originated()) == 4
    assert await world.db.fetch_value("SELECT count(*) FROM attempts") == 2
    assert world.engine.ready


async def test_an_originate_refused_for_this_call_alone_ends_the_attempt_with_its_reason(
    world: World,
) -> None:
    queue_id = await world.queue(status="on")
    await world.add(queue_id, 1, try_count=2)
    world.fake.originate_error = "Invalid channel"

    await world.scheduler.dispatch_due()
    await world.engine.drain()

    [call] = await world.db.fetch_all("SELECT call_uuid, result FROM attempts")
    assert call["result"] == "rejected"
    record = await CallRepository(world.db).get(CLIENT, call["call_uuid"], with_events=False)
    assert record is not None and record.pbx_refusal == "Invalid channel"
    assert world.engine.ready  # about this call only: the others still start


async def test_a_stored_webhook_body_is_the_documented_webhook_body(world: World) -> None:
    queue_id = await world.queue(status="on")
    await world.add(queue_id, 1, url_before="http://127.0.0.1:9/before")

    await world.scheduler.dispatch_due()

    [before] = await world.db.fetch_all("SELECT body FROM outbox")
    data = json.loads(before["body"])
    body = WebhookBody.model_validate(data)
    assert body.event == "before"
    assert body.attempt is not None
    # Field for field: what docs/webhooks.md and the OpenAPI `webhooks` section describe.
    assert set(data["task"]) == set(TaskOutput.model_fields)
    assert set(data["attempt"]) == set(AttemptSummary.model_fields)
