"""The call engine against the real test PBX: every outcome, as decided from the events
Asterisk really sends, and what each phone really received."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from ami.outcome import Result
from config import Settings
from daemon.models import TaskStatus
from daemon.store.attempts import AttemptRepository
from tests.engine_harness import EngineHarness, engine_harness, phone_reports, phone_settings
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.pbx


@pytest.fixture
async def harness(testpbx: Any, tmp_path: Path) -> AsyncIterator[EngineHarness]:
    async with engine_harness(
        tmp_path / "cb.db",
        testpbx.host,
        testpbx.port,
        testpbx.username,
        testpbx.secret,
        phone_settings(),
    ) as h:
        yield h


@asynccontextmanager
async def _behind_a_proxy(
    testpbx: Any, db: Path, settings: Settings
) -> AsyncIterator[tuple[TcpProxy, EngineHarness]]:
    """An engine whose AMI link runs through a proxy the test can cut or hold."""
    async with (
        TcpProxy(testpbx.host, testpbx.port) as proxy,
        engine_harness(
            db, proxy.host, proxy.port, testpbx.username, testpbx.secret, settings
        ) as harness,
    ):
        yield proxy, harness


def first(value: str) -> str:
    """A header Asterisk repeated arrives joined by newlines; the first is the channel's."""
    return value.split("\n")[0]


@pytest.mark.parametrize(
    ("a_number", "b_number", "result", "a_status", "b_status"),
    [
        ("1005", "1101", Result.SUCCESS, "ANSWER", "ANSWER"),
        ("2000", "1101", Result.A_BUSY, "BUSY", None),
        ("3000", "1101", Result.A_NO_ANSWER, "NOANSWER", None),
        ("4000", "1101", Result.A_CONGESTION, "CONGESTION", None),
        ("5000", "1101", Result.A_INVALID, None, None),
        ("6000", "1101", Result.A_INVALID, None, None),
        ("1003", "2000", Result.B_BUSY, "ANSWER", "BUSY"),
        ("1008", "3000", Result.B_NO_ANSWER, "ANSWER", "NOANSWER"),
        ("1003", "4000", Result.B_CONGESTION, "ANSWER", "CONGESTION"),
        ("1003", "5000", Result.B_INVALID, "ANSWER", None),
        ("1003", "90000", Result.B_UNAVAILABLE, "ANSWER", "CHANUNAVAIL"),
        ("7000", "3000", Result.A_HUNG_UP, "ANSWER", None),  # B may not have rung yet
    ],
)
async def test_each_outcome_is_decided_from_the_real_events(
    harness: EngineHarness,
    a_number: str,
    b_number: str,
    result: Result,
    a_status: str | None,
    b_status: str | None,
) -> None:
    ended, record = await harness.call(a_number, b_number)

    assert ended.outcome.result is result
    assert record.result == str(result)
    assert record.state == "ended"
    if a_status is not None:
        assert record.a_dial_status == a_status
    if b_status is not None:
        assert record.b_dial_status == b_status
    assert record.events, "the call's AMI events are stored"
    if result is Result.SUCCESS:
        assert record.bridged_time_gmt is not None
        assert record.answered_a_number == a_number
    if result is Result.A_INVALID:
        assert ended.outcome.invalid_numbers == (a_number,)
        assert record.a_hangup_cause in (1, 28)


async def test_extended_a_numbers_ring_together_and_b_rings_once(harness: EngineHarness) -> None:
    ended, record = await harness.call(
        "3000", "1101", callback_params={"extended_a_numbers": ["1205", "2000"]}
    )

    assert ended.outcome.result is Result.SUCCESS
    assert record.answered_a_number == "1205"
    reports = phone_reports(record)
    assert {"3000", "1205", "2000", "1101"} <= reports.keys()  # all A phones rang
    b_dials = [
        ev
        for ev in record.events or []
        if ev.get("Event") == "DialBegin" and ev.get("Uniqueid") == record.call_uuid
    ]
    assert len(b_dials) == 1
    assert first(reports["1101"]["CallerIDNum"]) == "1205"  # B sees the A that answered


async def test_phones_see_the_caller_ids_and_variables_of_the_task(
    harness: EngineHarness,
) -> None:
    _, record = await harness.call(
        "1005",
        "1101",
        callback_params={"caller_id_name": "José Müller (Sales)", "caller_id_number": "+4930555"},
        attempts_dst_ani_numbers=["7775551"],
        variables={"ORDER_ID": "A-17", "CUSTOMER": "Zoë (VIP)"},
    )

    reports = phone_reports(record)
    a_saw, b_saw = reports["1005"], reports["1101"]
    assert first(a_saw["CallerIDNum"]) == "+4930555"
    assert first(a_saw["CallerIDName"]) == "José Müller (Sales)"
    assert first(b_saw["CallerIDNum"]) == "7775551"
    for saw in (a_saw, b_saw):
        assert saw["ORDER_ID"] == "A-17"
        assert saw["CUSTOMER"] == "Zoë (VIP)"
        assert saw["CallUUID"] == record.call_uuid


async def test_ami_cut_mid_call_follows_the_call_to_its_end_without_a_second_originate(
    testpbx: Any, tmp_path: Path
) -> None:
    async with _behind_a_proxy(testpbx, tmp_path / "cb.db", phone_settings()) as (
        proxy,
        harness,
    ):
        task_id = await harness.add_task("1004", "1104")
        call_uuid = await harness.place(task_id)
        await harness.recorder.bridged[task_id].wait()
        proxy.cut()

        ended = await harness.wait_end(task_id)
        record = await harness.record(call_uuid)

    assert proxy.connections >= 2  # the engine logged in again by itself
    assert ended.outcome.result is Result.SUCCESS
    assert record.end_time_gmt is not None
    originates = [ev for ev in record.events or [] if ev.get("Event") == "OriginateResponse"]
    assert len(originates) == 1


@pytest.mark.parametrize(
    ("a_number", "b_number", "missed"),
    [
        ("1130", "1010", "A's answer and the bridge"),  # bridged ~1 s in, talk 10 s
        ("1030", "1610", "A's answer"),  # A at once, B rings 6 s: bridged after the outage
    ],
)
async def test_what_happened_while_the_ami_link_was_down_is_recovered(
    testpbx: Any, tmp_path: Path, a_number: str, b_number: str, missed: str
) -> None:
    async with _behind_a_proxy(testpbx, tmp_path / "cb.db", phone_settings(b_ring_timeout=10)) as (
        proxy,
        harness,
    ):
        task_id = await harness.add_task(a_number, b_number)
        call_uuid = await harness.place(task_id)
        proxy.go_down()  # the events of `missed` are never seen
        await asyncio.sleep(2.5)
        proxy.come_back()

        ended = await harness.wait_end(task_id)
        record = await harness.record(call_uuid)

    assert ended.outcome.result is Result.SUCCESS, missed
    assert record.answered_a_number == a_number
    assert record.a_answer_time_gmt is not None and record.bridged_time_gmt is not None
    originates = [ev for ev in record.events or [] if ev.get("Event") == "OriginateResponse"]
    assert len(originates) <= 1


async def test_asterisk_restart_mid_call_closes_the_attempt_and_the_engine_recovers(
    testpbx: Any, harness: EngineHarness
) -> None:
    task_id = await harness.add_task("8000", "8000")  # A and B would talk for an hour
    call_uuid = await harness.place(task_id)
    await harness.recorder.bridged[task_id].wait()

    await testpbx.restart()

    ended = await harness.wait_end(task_id, timeout=90)
    record = await harness.record(call_uuid)
    assert record.state == "ended"
    assert record.bridged_time_gmt is not None
    assert ended.outcome.result is Result.SUCCESS  # A and B were connected before the restart
    assert await harness.engine.wait_ready(60)
    follow_up, _ = await harness.call("1005", "1101")
    assert follow_up.outcome.result is Result.SUCCESS


async def test_an_ami_user_without_originate_rights_rings_nobody_and_burns_no_task(
    testpbx: Any, tmp_path: Path
) -> None:
    # The test PBX's callbackd-no-originate user lacks `originate` in its write classes.
    async with engine_harness(
        tmp_path / "cb.db",
        testpbx.host,
        testpbx.port,
        "callbackd-no-originate",
        testpbx.secret,
        phone_settings(),
    ) as harness:
        task_id = await harness.add_task("1005", "1101")
        record = await AttemptRepository(harness.db).task(task_id)
        assert record is not None

        assert await harness.engine.place(record) is None

        assert not harness.engine.ready
        assert "manager.conf" in (harness.engine.last_error or "")
        assert await harness.db.fetch_value("SELECT count(*) FROM attempts") == 0
        again = await AttemptRepository(harness.db).task(task_id)
        assert again is not None
        assert (again.status, again.attempts_made) == (TaskStatus.SCHEDULED, 0)


async def test_an_a_channel_asterisk_cannot_create_ends_a_unavailable(
    testpbx: Any, tmp_path: Path
) -> None:
    # No endpoint "nosuch": the Originate fails and no channel of the call appears.
    async with engine_harness(
        tmp_path / "cb.db",
        testpbx.host,
        testpbx.port,
        testpbx.username,
        testpbx.secret,
        phone_settings(a_channel="PJSIP/{number}@nosuch"),
    ) as harness:
        ended, record = await harness.call("1005", "1101")

    assert ended.outcome.result is Result.A_UNAVAILABLE
    assert record.result == str(Result.A_UNAVAILABLE)
    assert [ev.get("Event") for ev in record.events or []] == ["OriginateResponse"]
