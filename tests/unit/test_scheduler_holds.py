"""Calling hours and the answer-rate guard in the scheduler, over a real store and a fake
AMI server: what waits, until when, what rings. Time is a FakeClock (T0 is Sunday
2026-03-01 09:00 UTC); dispatch passes are driven explicitly."""

# ruff: noqa: F811 - the `world` fixture comes from test_scheduler

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ami.events import header
from daemon.models import IntervalInput, IntervalUpdate, QueueUpdate
from daemon.scheduler import Scheduler
from daemon.store.intervals import IntervalRepository
from daemon.store.queues import QueueRepository
from daemon.store.tasks import TaskFilter, TaskRepository
from tests.unit.test_scheduler import CLIENT, T0, World, settings, world  # noqa: F401

# Monday to Friday, 09:00-17:59:59 in Berlin: closed on Sunday T0, opens Monday 08:00 UTC
WEEKDAYS = {"start_dow": 2, "end_dow": 6, "start_time": "09:00:00", "end_time": "17:59:59"}
MONDAY_OPENING = "2026-03-02 08:00:00"


async def interval(world: World, tz: str = "Europe/Berlin", *conditions: dict[str, Any]) -> int:
    body = IntervalInput(name="hours", timezone=tz, conditions=list(conditions))
    return (await IntervalRepository(world.db).create(CLIENT, body, world.clock.now())).id


async def tasks(world: World, queue_id: int) -> list[dict[str, Any]]:
    found, _ = await TaskRepository(world.db).list(queue_id, TaskFilter(), 1000, 0)
    return found


async def test_a_closed_interval_holds_a_due_task_until_it_opens(world: World) -> None:
    queue_id = await world.queue(
        status="on", interval_id=await interval(world, "Europe/Berlin", WEEKDAYS)
    )
    await world.add(queue_id, 1, url_before="http://127.0.0.1:9/before")

    wake_at = await world.scheduler.dispatch_due()

    assert world.originated() == []
    [task] = await tasks(world, queue_id)
    assert (task["status"], task["next_attempt_utc"], task["attempts_made"]) == (
        "delayed_interval",
        MONDAY_OPENING,
        0,
    )
    assert task["finish_comment"] == (
        f"calling hours (Europe/Berlin) closed until {MONDAY_OPENING} UTC"
    )
    assert await world.db.fetch_value("SELECT count(*) FROM outbox") == 0  # no webhook
    assert wake_at == T0 + timedelta(hours=23)

    await world.clock.advance(23 * 3600)
    await world.scheduler.dispatch_due()
    assert len(world.originated()) == 1
    [call] = await world.db.fetch_all("SELECT plan ->> '$.interval_zone' AS zone FROM attempts")
    assert call["zone"] == "Europe/Berlin"


async def test_a_put_that_opens_the_interval_starts_its_held_tasks_at_once(world: World) -> None:
    interval_id = await interval(world, "Europe/Berlin", WEEKDAYS)
    queue_id = await world.queue(status="on", interval_id=interval_id)
    await world.add(queue_id, 2)
    await world.scheduler.dispatch_due()
    assert world.originated() == []

    always = IntervalUpdate(conditions=[])
    await IntervalRepository(world.db).update(CLIENT, interval_id, always, world.clock.now())
    await world.scheduler.dispatch_due()

    assert len(world.originated()) == 2


async def test_a_put_of_the_queue_off_its_interval_starts_its_held_tasks(world: World) -> None:
    queue_id = await world.queue(
        status="on", interval_id=await interval(world, "Europe/Berlin", WEEKDAYS)
    )
    await world.add(queue_id, 1)
    await world.scheduler.dispatch_due()

    await QueueRepository(world.db).update(CLIENT, queue_id, QueueUpdate(interval_id=None))
    await world.scheduler.dispatch_due()

    assert len(world.originated()) == 1


async def test_a_retry_whose_pause_ends_after_closing_waits_for_the_next_opening(
    world: World,
) -> None:
    # open 09:00-09:59:59 UTC every day; the pause of an hour ends at 10:00
    hours = await interval(world, "UTC", {"start_time": "09:00:00", "end_time": "09:59:59"})
    queue_id = await world.queue(status="on", interval_id=hours)
    await world.add(queue_id, 1, try_count=2, try_again_pause=3600)
    await world.scheduler.dispatch_due()
    [first] = world.originated()
    await world.hang_up(header(first, "ChannelId"))

    await world.clock.advance(3600)
    await world.scheduler.dispatch_due()

    assert len(world.originated()) == 1
    [task] = await tasks(world, queue_id)
    assert (task["status"], task["next_attempt_utc"], task["attempts_made"]) == (
        "delayed_interval",
        "2026-03-02 09:00:00",
        1,
    )
    await world.clock.advance(23 * 3600)
    await world.scheduler.dispatch_due()
    assert len(world.originated()) == 2


async def test_a_call_in_progress_is_not_cut_when_the_window_closes(world: World) -> None:
    hours = await interval(world, "UTC", {"start_time": "09:00:00", "end_time": "09:00:59"})
    queue_id = await world.queue(status="on", interval_id=hours)
    await world.add(queue_id, 2)  # the second waits for the queue's one slot
    await QueueRepository(world.db).update(CLIENT, queue_id, QueueUpdate(concurrent_task_limit=1))
    await world.scheduler.dispatch_due()

    await world.clock.advance(120)
    await world.scheduler.dispatch_due()

    actions = [header(a, "Action").lower() for a in world.fake.actions]
    assert "hangup" not in actions
    assert sorted(t["status"] for t in await tasks(world, queue_id)) == [
        "delayed_interval",
        "executed",
    ]


async def test_only_the_queue_whose_interval_is_closed_waits(world: World) -> None:
    closed = await world.queue(
        status="on", interval_id=await interval(world, "Europe/Berlin", WEEKDAYS)
    )
    always = await world.queue(status="on", interval_id=await interval(world, "Asia/Tokyo"))
    await world.add(closed, 3)
    await world.add(always, 3)

    await world.scheduler.dispatch_due()

    assert [t["status"] for t in await tasks(world, always)] == ["executed"] * 3
    assert [t["status"] for t in await tasks(world, closed)] == ["delayed_interval"] * 3


@pytest.mark.parametrize("world", [settings(interval_zone="destination")], indirect=True)
async def test_calling_hours_in_the_a_numbers_own_zone(world: World) -> None:
    # 09:00-17:59:59 local: 10:00 in Berlin, 04:00 in New York, 12:00 in Moscow
    office = {"start_time": "09:00:00", "end_time": "17:59:59"}
    queue_id = await world.queue(
        status="on", interval_id=await interval(world, "Europe/Berlin", office)
    )
    await world.add(queue_id, 1, a_number="+12125550100")  # New York: closed
    await world.add(queue_id, 1, a_number="+79161234567")  # 16 zones: Berlin's hours
    await world.add(queue_id, 1, a_number="+74951234567")  # Moscow: open

    await world.scheduler.dispatch_due()

    by_number = {t["a_number"]: t for t in await tasks(world, queue_id)}
    new_york = by_number["+12125550100"]
    assert (new_york["status"], new_york["next_attempt_utc"]) == (
        "delayed_interval",
        "2026-03-01 14:00:00",
    )
    assert "America/New_York" in new_york["finish_comment"]
    zones = {
        row["zone"]: row["reason"]
        for row in await world.db.fetch_all(
            "SELECT plan ->> '$.interval_zone' AS zone, "
            "plan ->> '$.interval_zone_reason' AS reason FROM attempts"
        )
    }
    assert zones == {
        "Europe/Berlin": "the interval's zone: the number maps to 16 zones",
        "Europe/Moscow": "the number's own zone",
    }


ASR = settings(asr_guard={"min_ratio": 0.5, "min_attempts": 3, "probe_interval": 60})


@pytest.mark.parametrize("world", [ASR], indirect=True)
async def test_a_tripped_answer_rate_guard_holds_tasks_and_probes_once_per_interval(
    world: World,
) -> None:
    queue_id = await world.queue(status="on")
    await world.add(queue_id, 3)
    await world.scheduler.dispatch_due()
    for call in world.originated():  # three attempts, none answered
        await world.hang_up(header(call, "ChannelId"))
    assert world.scheduler.asr.state(None).tripped

    await world.add(queue_id, 4, url_before="http://127.0.0.1:9/before")
    await world.scheduler.dispatch_due()
    assert len(world.originated()) == 3
    held = [t for t in await tasks(world, queue_id) if t["status"] == "delayed_asr"]
    assert len(held) == 4
    assert held[0]["finish_comment"] == (
        "held by the answer-rate guard of the default profile: 0 of 3 attempts answered, below 50%"
    )
    assert held[0]["attempts_made"] == 0
    assert await world.db.fetch_value("SELECT count(*) FROM outbox") == 0

    await world.clock.advance(60)
    await world.scheduler.dispatch_due()
    await world.scheduler.dispatch_due()
    assert len(world.originated()) == 4  # one probe
    await world.clock.advance(30)
    await world.scheduler.dispatch_due()
    assert len(world.originated()) == 4

    # the ratio is back (the probes answered): the held tasks start
    now = world.clock.now()
    for i in range(3):
        world.scheduler.asr.record(None, f"answered-{i}", now, True)
    await world.scheduler.dispatch_due()
    assert len(world.originated()) == 7
    assert not world.scheduler.asr.state(None).tripped


@pytest.mark.parametrize("world", [ASR], indirect=True)
async def test_a_probe_waits_while_its_profile_is_at_its_concurrency_limit(
    world: World,
) -> None:
    queue_id = await world.queue(status="on")
    await world.add(queue_id, 1, extension_id=7)  # profile 7 takes one call at a time
    await world.scheduler.dispatch_due()
    [in_call] = world.originated()
    now = world.clock.now()
    for i in range(3):
        world.scheduler.asr.record(7, f"failed-{i}", now, False)
    await world.add(queue_id, 1, extension_id=7)

    await world.clock.advance(60)
    await world.scheduler.dispatch_due()
    await world.scheduler.dispatch_due()
    assert world.scheduler.asr.state(7).tripped
    assert len(world.originated()) == 1  # the probe waits for the profile's slot

    await world.hang_up(header(in_call, "ChannelId"))
    await world.scheduler.dispatch_due()
    assert len(world.originated()) == 2  # now it goes


@pytest.mark.parametrize("world", [ASR], indirect=True)
async def test_one_failure_of_one_contact_never_trips_the_guard(world: World) -> None:
    queue_id = await world.queue(status="on")
    await world.add(queue_id, 1, try_count=5, try_again_pause=0)
    for _ in range(2):
        await world.scheduler.dispatch_due()
        await world.hang_up(header(world.originated()[-1], "ChannelId"))

    assert world.scheduler.asr.state(None).attempts == 2
    assert not world.scheduler.asr.state(None).tripped


@pytest.mark.parametrize("world", [ASR], indirect=True)
async def test_the_guard_window_is_rebuilt_from_the_stored_attempts_after_a_restart(
    world: World,
) -> None:
    queue_id = await world.queue(status="on")
    await world.add(queue_id, 3)
    await world.scheduler.dispatch_due()
    for call in world.originated():
        await world.hang_up(header(call, "ChannelId"))

    restarted = Scheduler(world.db, world.engine, world.clock, lambda: world.settings)
    await restarted.load_asr_window()

    assert restarted.asr.state(None) == world.scheduler.asr.state(None)
    assert restarted.asr.state(None).tripped


ASR_BY_DESTINATION = settings(
    interval_zone="destination",
    asr_guard={"min_ratio": 0.5, "min_attempts": 3, "probe_interval": 60},
)


@pytest.mark.parametrize("world", [ASR_BY_DESTINATION], indirect=True)
async def test_a_probe_keeps_to_its_a_numbers_calling_hours(world: World) -> None:
    # 09:00-17:59:59 local: 10:00 in Berlin, 04:00 in New York, 12:00 in Moscow
    office = {"start_time": "09:00:00", "end_time": "17:59:59"}
    queue_id = await world.queue(
        status="on", interval_id=await interval(world, "Europe/Berlin", office)
    )
    now = world.clock.now()
    for i in range(3):
        world.scheduler.asr.record(None, f"failed-{i}", now, False)
    await world.add(queue_id, 1, a_number="+12125550100")  # New York: held longest, closed
    await world.add(queue_id, 1, a_number="+74951234567")  # Moscow: open
    await world.scheduler.dispatch_due()
    assert [t["status"] for t in await tasks(world, queue_id)] == ["delayed_asr"] * 2

    await world.clock.advance(60)
    await world.scheduler.dispatch_due()
    await world.scheduler.dispatch_due()

    [probe] = world.originated()
    assert header(probe, "Channel") == "Local/+74951234567@phones"
    by_number = {t["a_number"]: t for t in await tasks(world, queue_id)}
    new_york = by_number["+12125550100"]
    assert (new_york["status"], new_york["next_attempt_utc"]) == (
        "delayed_interval",
        "2026-03-01 14:00:00",
    )
    [zone] = await world.db.fetch_all("SELECT plan ->> '$.interval_zone' AS zone FROM attempts")
    assert zone["zone"] == "Europe/Moscow"
