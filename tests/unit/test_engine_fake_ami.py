"""The call engine over a real store, fed by a hostile fake AMI: garbage, cut and oversized
frames, events nobody knows, events of calls it never made, and the recorded streams of
several calls interleaved. It must stay up, give each call only its own events, and
decide every outcome as the recording says."""

from __future__ import annotations

import asyncio
import json
import random
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from ami.events import AmiEvent, header, name
from ami.fake import FakeAmiServer
from ami.outcome import Result, decide
from ami.protocol import MAX_FRAME_BYTES, FrameDecoder, split_blocks
from daemon.models import CallRecord, TaskStatus
from daemon.store.attempts import AttemptRepository
from daemon.store.calls import CallRepository
from daemon.store.db import StoreUnavailable
from tests.engine_harness import CLIENT, Ended, EngineHarness, engine_harness, phone_settings
from tests.store_faults import REFUSAL, refuse_writes
from tests.stored_events import COUNT_STORED_EVENTS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"
SECRET = "fake-ami-secret"
END_WITHIN = 10.0
RECEIVED_MS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}")
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@dataclass
class World:
    fake: FakeAmiServer
    harness: EngineHarness


def originate_says_nothing(action: AmiEvent) -> list[AmiEvent]:
    """The recorded stream pushed by the test is all the engine hears of the call."""
    return []


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with (
        FakeAmiServer(secret=SECRET, originate_script=originate_says_nothing) as fake,
        engine_harness(
            tmp_path / "cb.db", fake.host, fake.port, "callbackd", SECRET, phone_settings()
        ) as harness,
    ):
        yield World(fake, harness)


def recorded_as(file: str, call_uuid: str) -> list[bytes]:
    """The recording's event frames, as if they belonged to ``call_uuid``. Its phone
    channels get ids of their own too, so two copies of one recording share none."""
    text = (FIXTURES / file).read_bytes().decode()
    recorded_uuid = re.search(r"Linkedid: (\S+)", text)
    assert recorded_uuid is not None
    text = text.replace(recorded_uuid.group(1), call_uuid)
    tag = call_uuid[:8]
    text = re.sub(r"(?m)^((?:Dest)?Uniqueid|Linkedid): (\d+\.\d+)\r$", rf"\1: {tag}-\2\r", text)
    return [b for b in split_blocks(text) if b.startswith(b"Event:")]


def decoded(frames: Sequence[bytes]) -> list[AmiEvent]:
    return [f.headers for f in FrameDecoder().feed(b"".join(frames)) if f.headers is not None]


def stored_of(call_uuid: str, frames: Sequence[bytes]) -> list[AmiEvent]:
    """The events the engine keeps for a call: those of its channels (Linkedid, or the
    Uniqueid of Local;1/;2 for OriginateResponse), and the Originate's own DialBegin/
    DialEnd, which name the call only as DestLinkedid (in a call of one A number they
    are A's)."""
    return [
        ev
        for ev in decoded(frames)
        if call_uuid
        in (
            header(ev, "Linkedid"),
            header(ev, "Uniqueid").removesuffix("-a"),
            header(ev, "DestLinkedid"),
        )
    ]


def interleaved(streams: Sequence[Sequence[bytes]], seed: int) -> list[bytes]:
    """All frames, each stream kept in its own order, the streams shuffled together."""
    rng = random.Random(seed)
    positions = [0] * len(streams)
    out: list[bytes] = []
    while live := [i for i, s in enumerate(streams) if positions[i] < len(s)]:
        i = rng.choice(live)
        out.append(streams[i][positions[i]])
        positions[i] += 1
    return out


def owned_by(ev: AmiEvent, call_uuid: str) -> bool:
    ids = [header(ev, k) for k in ("Linkedid", "DestLinkedid", "Uniqueid", "DestUniqueid")]
    return any(i.startswith(call_uuid) for i in ids if i)


@dataclass(frozen=True)
class Call:
    file: str
    a_number: str
    b_number: str
    result: Result
    fields: dict[str, Any] | None = None


CALLS = [
    Call("success.ami", "1105", "1102", Result.SUCCESS),
    Call("a_busy.ami", "2000", "1102", Result.A_BUSY),
    Call("b_no_answer.ami", "8000", "3000", Result.B_NO_ANSWER),
    Call("a_invalid_number.ami", "6000", "1102", Result.A_INVALID),
    Call(
        "two_a_second_answers.ami",
        "1302",
        "1102",
        Result.SUCCESS,
        {"callback_params": {"extended_a_numbers": ["1105"]}},
    ),
    # Over the SIP trunk: a 603 Decline from A, then one from B (cause 21).
    Call("sip_a_declined.ami", "6030001", "2100001", Result.A_REJECTED),
    Call("sip_b_declined.ami", "2000001", "6030001", Result.B_REJECTED),
    # One A number: the Originate rings A's own channel (the shape the engine sends).
    Call("one_a_success.ami", "1105", "1102", Result.SUCCESS),
    Call("one_a_b_unavailable.ami", "8000", "90000", Result.B_UNAVAILABLE),
]


async def place(world: World, call: Call) -> tuple[int, str]:
    task_id = await world.harness.add_task(call.a_number, call.b_number, **(call.fields or {}))
    return task_id, await world.harness.place(task_id)


def split_at_the_bridge(call: Call, call_uuid: str) -> tuple[list[bytes], int]:
    """The call's recorded frames and the index of its first BridgeLeave: the frames
    before it take the call to A and B talking."""
    frames = recorded_as(call.file, call_uuid)
    return frames, next(i for i, ev in enumerate(decoded(frames)) if name(ev) == "BridgeLeave")


async def talking(world: World, call: Call) -> tuple[int, str, list[bytes], int]:
    """Place `call` and feed it up to the bridge: (task id, call uuid, frames, cut)."""
    task_id, call_uuid = await place(world, call)
    frames, cut = split_at_the_bridge(call, call_uuid)
    await world.fake.push_raw(b"".join(frames[:cut]))
    await asyncio.wait_for(world.harness.recorder.bridged[task_id].wait(), END_WITHIN)
    return task_id, call_uuid, frames, cut


async def stored_event_count(world: World) -> int:
    return int(await world.harness.db.fetch_value(COUNT_STORED_EVENTS))


def hostile_frames(call_uuid: str) -> list[bytes]:
    """Frames that must change nothing about the call they name (if any)."""
    return [
        b"\xff\xfe\x00\x01 not AMI at all\r\n\r\n",
        b"no colon here\r\nnor here\r\n\r\n",
        b"Event: Hangup\r\nChann\r\n\r\n",  # cut short: names no channel
        b"\r\n\r\n\r\n\r\n",
        b"Response: Success\r\nActionID: nobody-asked\r\nMessage: stray\r\n\r\n",
        b"Event: SomethingNew\r\nFoo: bar\r\n\r\n",
        # Over the frame limit, so skipped whole: were it read, this Hangup of Local;1
        # would be stored with the call's events.
        f"Event: Hangup\r\nUniqueid: {call_uuid}\r\nLinkedid: {call_uuid}\r\nCause: 21\r\n"
        f"Padding: {'a' * (1 << 20)}\r\n\r\n".encode(),
    ]


async def test_garbage_and_oversized_frames_between_a_calls_events_change_nothing(
    world: World,
) -> None:
    call = CALLS[0]
    task_id, call_uuid = await place(world, call)
    frames = recorded_as(call.file, call_uuid)
    unknown = (
        f"Event: CallbackdFromTheFuture\r\nLinkedid: {call_uuid}\r\nUniqueid: {call_uuid}\r\n"
        "Note: caf\xc3\xa9 \xff\r\n\r\n"
    ).encode("latin-1")
    stream = [*frames[:3], *hostile_frames(call_uuid), unknown, *frames[3:]]
    assert len(stream[3 + 6]) > MAX_FRAME_BYTES

    await world.fake.push_raw(b"".join(stream))
    ended = await world.harness.wait_end(task_id, END_WITHIN)

    assert ended.outcome.result is Result.SUCCESS
    record = await world.harness.record(call_uuid)
    assert record.events == stored_of(call_uuid, [*frames[:3], unknown, *frames[3:]])
    assert record.events is not None and all(owned_by(ev, call_uuid) for ev in record.events)
    assert world.harness.ami.logged_in
    assert world.fake.logins == 1  # nothing of it broke the link


def assert_received_in_order_to_the_millisecond(record: CallRecord) -> None:
    """Each stored event has the time it was received, with milliseconds."""
    assert record.events is not None and record.events_received_at is not None
    assert len(record.events_received_at) == len(record.events)
    assert all(RECEIVED_MS.fullmatch(at) for at in record.events_received_at)
    assert record.events_received_at == sorted(record.events_received_at)


@pytest.mark.parametrize(("seed", "chunk"), [(1, None), (2, 97), (3, 1021)])
async def test_interleaved_calls_and_strangers_each_get_only_their_own_events(
    world: World, seed: int, chunk: int | None
) -> None:
    placed = [(call, *await place(world, call)) for call in CALLS]
    ours = [recorded_as(call.file, call_uuid) for call, _, call_uuid in placed]
    strangers = [recorded_as(file, str(uuid.uuid4())) for file in ("success.ami", "a_busy.ami")]
    stray = [
        f"Event: Newchannel\r\nUniqueid: {u}\r\nLinkedid: {u}\r\n\r\n".encode()
        for u in (str(uuid.uuid4()) for _ in range(20))
    ]
    world.fake.split_writes(chunk)

    await world.fake.push_raw(b"".join(interleaved([*ours, *strangers, stray], seed)))

    for (call, task_id, call_uuid), frames in zip(placed, ours, strict=True):
        ended = await world.harness.wait_end(task_id, END_WITHIN)
        assert ended.outcome.result is call.result, call.file
        record = await world.harness.record(call_uuid)
        assert record.result == str(call.result)
        assert record.events == stored_of(call_uuid, frames), call.file
        assert_received_in_order_to_the_millisecond(record)
    assert await stored_event_count(world) == sum(
        len(stored_of(call_uuid, frames))
        for (_, _, call_uuid), frames in zip(placed, ours, strict=True)
    )
    assert world.harness.engine.calls == {}


async def test_the_engine_still_places_and_decides_calls_after_the_hostile_input(
    world: World,
) -> None:
    first, second = CALLS[1], CALLS[3]
    task_id, call_uuid = await place(world, first)
    junk = [f for u in (call_uuid, str(uuid.uuid4())) for f in hostile_frames(u)]
    await world.fake.push_raw(b"".join([*junk, *recorded_as(first.file, call_uuid)]))
    assert (await world.harness.wait_end(task_id, END_WITHIN)).outcome.result is first.result

    task_id, call_uuid = await place(world, second)
    await world.fake.push_raw(b"".join(recorded_as(second.file, call_uuid)))

    ended = await world.harness.wait_end(task_id, END_WITHIN)
    assert ended.outcome.result is second.result
    assert ended.outcome.invalid_numbers == (second.a_number,)


def channels_up(frames: Sequence[bytes], call_uuid: str) -> list[AmiEvent]:
    """What CoreShowChannels lists after `frames`: the channels still up."""
    live: dict[str, str] = {}
    for ev in decoded(frames):
        if name(ev) == "Newchannel":
            live[header(ev, "Uniqueid")] = header(ev, "Channel")
        elif name(ev) == "Hangup":
            live.pop(header(ev, "Uniqueid"))
    return [{"Channel": chan, "Uniqueid": uid, "Linkedid": call_uuid} for uid, chan in live.items()]


async def test_a_frame_cut_by_a_dropped_link_is_lost_alone_and_the_call_followed(
    world: World,
) -> None:
    call = CALLS[0]
    task_id, call_uuid = await place(world, call)
    frames, cut = split_at_the_bridge(call, call_uuid)
    world.fake.channels = channels_up(frames[:cut], call_uuid)

    await world.fake.push_raw(b"".join(frames[:cut]) + frames[cut][:40])
    await world.fake.drop_connections()
    await world.fake.wait_for_action("CoreShowChannels", 2)
    assert await world.harness.engine.wait_ready(END_WITHIN)
    await world.fake.push_raw(b"".join(frames[cut + 1 :]))

    ended = await world.harness.wait_end(task_id, END_WITHIN)
    assert ended.outcome.result is Result.SUCCESS
    assert world.fake.count("Originate") == 1
    record = await world.harness.record(call_uuid)
    assert record.events == stored_of(call_uuid, frames[:cut] + frames[cut + 1 :])


async def test_a_call_adopted_after_a_restart_keeps_its_dial_statuses_and_causes(
    tmp_path: Path,
) -> None:
    # The daemon is stopped while A and B talk; the next run follows the call to its
    # end, and its record has what the stored events said of the legs.
    call = CALLS[0]
    path = tmp_path / "cb.db"
    async with FakeAmiServer(secret=SECRET, originate_script=originate_says_nothing) as fake:
        harness = partial(engine_harness, path, fake.host, fake.port, "callbackd", SECRET)
        async with harness(phone_settings()) as first:
            # Stopped as by SIGKILL, without a drain: what the bridge's write stored
            # (it is on disk once `talking` returns) is all the next run has.
            task_id, call_uuid, frames, cut = await talking(World(fake, first), call)
        fake.channels = channels_up(frames[:cut], call_uuid)
        async with harness(phone_settings()) as second:
            second.recorder.expect(task_id)
            await fake.push_raw(b"".join(frames[cut:]))
            ended = await second.wait_end(task_id, END_WITHIN)
            record = await second.record(call_uuid)

    whole = decide(call_uuid, {"1105@phones": "1105"}, ((ev, T0) for ev in decoded(frames)))
    assert ended.outcome.result is Result.SUCCESS
    assert (record.a_dial_status, record.b_dial_status) == ("ANSWER", "ANSWER")
    assert (record.a_hangup_cause, record.b_hangup_cause) == (
        whole.a_hangup_cause,
        whole.b_hangup_cause,
    )
    assert record.a_hangup_cause is not None and record.b_hangup_cause is not None


async def test_a_bridge_is_on_disk_with_the_answer_before_the_call_ends(world: World) -> None:
    # What crash recovery reads: a call found gone later is a success only if its
    # bridge was stored, and the answer goes with it.
    call = CALLS[0]
    task_id, call_uuid, frames, cut = await talking(world, call)

    stored = await CallRepository(world.harness.db).get(CLIENT, call_uuid, with_events=False)
    assert stored is not None
    assert stored.bridged_time_gmt is not None and stored.a_answer_time_gmt is not None
    assert stored.answered_a_number == call.a_number
    assert stored.end_time_gmt is None
    await world.fake.push_raw(b"".join(frames[cut:]))
    assert (await world.harness.wait_end(task_id, END_WITHIN)).outcome.result is Result.SUCCESS


async def test_an_end_the_store_refuses_is_stored_once_it_takes_writes_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A full disk while calls end: the ends wait in the engine, nothing is lost.
    call = CALLS[0]
    task_id, call_uuid = await place(world, call)
    frames = recorded_as(call.file, call_uuid)
    refused = refuse_writes(world.harness.db, monkeypatch, times=2)

    with capture_logs() as logs:
        await world.fake.push_raw(b"".join(frames))
        ended = await world.harness.wait_end(task_id, END_WITHIN)

    assert refused == [True, True]
    assert ended.outcome.result is Result.SUCCESS
    record = await world.harness.record(call_uuid)
    assert (record.result, record.events) == ("success", stored_of(call_uuid, frames))
    task = await AttemptRepository(world.harness.db).task(task_id)
    assert task is not None and task.status is TaskStatus.FINISHED
    assert world.harness.engine.calls == {}
    assert any(e["event"] == "store refused a write; trying again" for e in logs)


def quiet_for(world: World, call_uuid: str, seconds: float) -> None:
    """As if the call's last event came `seconds` ago."""
    call = world.harness.engine.calls[call_uuid]
    assert call.last_event_at is not None
    call.last_event_at -= timedelta(seconds=seconds)


async def test_a_ringing_call_whose_events_stopped_is_closed_once_asterisk_lost_it(
    world: World,
) -> None:
    # Nothing comes back for the Originate, and Asterisk lists no channel of the call.
    call = CALLS[0]
    task_id, call_uuid = await place(world, call)
    calls = phone_settings().calls
    ring_phase = calls.a_ring_timeout + calls.b_ring_timeout
    looks = world.fake.count("CoreShowChannels")

    quiet_for(world, call_uuid, ring_phase + calls.event_silence_timeout - 1)
    await world.harness.engine.check_silent_calls()
    assert world.fake.count("CoreShowChannels") == looks  # not quiet for long enough yet
    assert call_uuid in world.harness.engine.calls

    quiet_for(world, call_uuid, 2)
    await world.harness.engine.check_silent_calls()
    ended = await world.harness.wait_end(task_id, END_WITHIN)
    assert ended.outcome.result is Result.INTERRUPTED
    assert world.fake.count("Originate") == 1


async def test_an_originate_that_created_no_channel_ends_a_unavailable_once_none_is_listed(
    world: World,
) -> None:
    # One A number whose channel Asterisk cannot create (an unknown endpoint): the
    # Originate fails and no channel of the call ever appears.
    task_id, call_uuid = await place(world, CALLS[0])
    failure = {"Event": "OriginateResponse", "Response": "Failure", "Reason": "0"}
    world.harness.engine.route({**failure, "Uniqueid": call_uuid}, datetime.now(UTC))
    looks = world.fake.count("CoreShowChannels")

    # Its channel events may still come: not looked at within the grace.
    quiet_for(world, call_uuid, 0)
    await world.harness.engine.check_silent_calls()
    assert world.fake.count("CoreShowChannels") == looks

    quiet_for(world, call_uuid, 3)
    await world.harness.engine.check_silent_calls()
    ended = await world.harness.wait_end(task_id, END_WITHIN)
    assert ended.outcome.result is Result.A_UNAVAILABLE  # not "interrupted"
    assert world.fake.count("Originate") == 1


async def test_a_talk_without_events_is_looked_at_every_timeout_and_closed_when_gone(
    world: World,
) -> None:
    task_id, call_uuid, _, _ = await talking(world, CALLS[0])
    timeout = phone_settings().calls.event_silence_timeout  # no max_talk_time
    looks = world.fake.count("CoreShowChannels")
    world.fake.channels = [
        {"Channel": "Local/1102@phones-1;1", "Uniqueid": "u", "Linkedid": call_uuid}
    ]

    # Still talking: followed on, and not looked at again before another timeout.
    quiet_for(world, call_uuid, timeout + 1)
    await world.harness.engine.check_silent_calls()
    await world.harness.engine.check_silent_calls()
    assert world.fake.count("CoreShowChannels") == looks + 1
    assert call_uuid in world.harness.engine.calls

    # The Hangup events were lost: the next look finds the call gone. A and B talked.
    world.fake.channels = []
    quiet_for(world, call_uuid, timeout + 1)
    await world.harness.engine.check_silent_calls()
    ended = await world.harness.wait_end(task_id, END_WITHIN)
    assert ended.outcome.result is Result.SUCCESS


async def ended_with_its_bridge_refused_once(
    world: World, monkeypatch: pytest.MonkeyPatch, **hooks: str
) -> tuple[int, str, Ended]:
    """A bridged call whose bridge's write the store refuses once (disk full) and takes
    when retried, after the call's end was stored: its task id, call uuid and end, once
    the retry has run too."""
    call = CALLS[0]
    task_id = await world.harness.add_task(call.a_number, call.b_number, **hooks)
    call_uuid = await world.harness.place(task_id)
    real_mark_bridged = AttemptRepository.mark_bridged
    refused: list[bool] = []

    async def refused_once(self: AttemptRepository, *args: Any) -> None:
        if not refused:
            refused.append(True)
            raise StoreUnavailable(REFUSAL)
        await real_mark_bridged(self, *args)

    monkeypatch.setattr(AttemptRepository, "mark_bridged", refused_once)
    await world.fake.push_raw(b"".join(recorded_as(call.file, call_uuid)))
    ended = await world.harness.wait_end(task_id, END_WITHIN)
    await world.harness.engine.drain(END_WITHIN)
    assert refused == [True]
    return task_id, call_uuid, ended


async def test_a_bridge_stored_after_the_end_still_sends_success_once_before_after(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A store refusing the bridge's write (disk full) retries it after 1 s; a call that
    # ends meanwhile has its end stored first. Its `success` webhook must not be lost.
    hooks = {f"url_{e}": f"http://127.0.0.1:9/{e}" for e in ("before", "success", "after")}
    task_id, _, ended = await ended_with_its_bridge_refused_once(world, monkeypatch, **hooks)

    assert ended.outcome.result is Result.SUCCESS
    rows = await world.harness.db.fetch_all(
        "SELECT event FROM outbox WHERE task_id = ? ORDER BY id", (task_id,)
    )
    assert [r["event"] for r in rows] == ["before", "success", "after"]


async def test_a_bridge_stored_after_the_end_of_a_task_without_webhooks_keeps_its_time(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a `success` URL the end writes the bridge's time with the rest of the
    # attempt; the bridge's late retry changes nothing.
    _, call_uuid, ended = await ended_with_its_bridge_refused_once(world, monkeypatch)

    stored = await CallRepository(world.harness.db).get(CLIENT, call_uuid, with_events=False)
    assert stored is not None and ended.outcome.bridged_time is not None
    assert stored.bridged_time_gmt is not None and stored.end_time_gmt is not None
    assert stored.result == "success"
    assert await world.harness.db.fetch_value("SELECT count(*) FROM outbox") == 0


async def test_the_success_and_after_webhooks_tell_the_attempt_as_each_write_left_it(
    world: World,
) -> None:
    call = CALLS[0]
    hooks = {f"url_{e}": f"http://127.0.0.1:9/{e}" for e in ("success", "after")}
    task_id = await world.harness.add_task(call.a_number, call.b_number, **hooks)
    call_uuid = await world.harness.place(task_id)
    await world.fake.push_raw(b"".join(recorded_as(call.file, call_uuid)))
    await world.harness.wait_end(task_id, END_WITHIN)

    rows = await world.harness.db.fetch_all(
        "SELECT event, body FROM outbox WHERE task_id = ? ORDER BY id", (task_id,)
    )
    assert [r["event"] for r in rows] == ["success", "after"]
    success, after = (json.loads(r["body"]) for r in rows)
    assert success["attempt"]["bridged_time_gmt"] is not None
    assert success["attempt"]["end_time_gmt"] is None
    assert (after["task"]["status"], after["task"]["finish_result"]) == ("finished", "success")
    assert (after["attempt"]["call_uuid"], after["attempt"]["result"]) == (call_uuid, "success")
