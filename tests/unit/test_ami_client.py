"""AmiClient against the fake AMI server on 127.0.0.1.

Each panoramisk 1.4 hazard has a test here that reproduces it through the fake server
(the docstring says how plain panoramisk fails it).
"""

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping

import pytest
from structlog.testing import capture_logs

from ami.client import (
    AmiActionError,
    AmiActionTimeout,
    AmiClient,
    AmiNotConnected,
    AmiOriginateUnknown,
    ConnectionSettings,
    Down,
    login_refusal,
    reconnect_delay,
)
from ami.events import AmiEvent, ConnectionChange, header, name
from ami.fake import FakeAmiServer

SECRET = "pa55-w0rd-never-logged"
BOUND = 5.0  # upper bound for anything awaited; normally milliseconds
ORIGINATE: AmiEvent = {
    "Channel": "Local/s@callbackd-a",
    "Context": "callbackd-b",
    "Exten": "s",
    "Priority": "1",
    "ChannelId": "call-1",
    "OtherChannelId": "call-1-a",
}


def settings(fake: FakeAmiServer, **overrides: float | str) -> ConnectionSettings:
    values: dict[str, object] = {
        "host": fake.host,
        "port": fake.port,
        "username": "callbackd",
        "secret": SECRET,
        "reconnect_min": 0.01,
        "reconnect_max": 0.05,
        "action_timeout": 2.0,
    }
    values.update(overrides)
    return ConnectionSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def fake() -> AsyncIterator[FakeAmiServer]:
    async with FakeAmiServer(secret=SECRET) as server:
        yield server


@pytest.fixture
async def client(fake: FakeAmiServer) -> AsyncIterator[AmiClient]:
    ami = AmiClient(settings(fake))
    await ami.start()
    assert await ami.wait_logged_in(BOUND)
    yield ami
    await ami.stop()


async def next_item(
    ami: AmiClient, wanted: Callable[[AmiEvent | ConnectionChange], bool] = lambda _: True
) -> AmiEvent | ConnectionChange:
    async with asyncio.timeout(BOUND):
        while True:
            item = await ami.events.get()
            if wanted(item):
                return item


async def next_event(ami: AmiClient, event_name: str) -> AmiEvent:
    item = await next_item(ami, lambda i: isinstance(i, Mapping) and name(i) == event_name)
    assert isinstance(item, Mapping)
    return item


async def next_change(ami: AmiClient) -> ConnectionChange:
    item = await next_item(ami, lambda i: isinstance(i, ConnectionChange))
    assert isinstance(item, ConnectionChange)
    return item


# Login, events, order


async def test_login_is_announced_before_the_first_event(client: AmiClient) -> None:
    assert await client.events.get() == ConnectionChange(logged_in=True, reason="logged in")
    assert name(await client.events.get()) == "FullyBooted"  # type: ignore[arg-type]
    assert client.logged_in and client.last_error is None


async def test_events_reach_the_queue_in_arrival_order(
    fake: FakeAmiServer, client: AmiClient
) -> None:
    """Hazard 5: panoramisk runs each coroutine handler as its own task, so one that
    awaits anything lets a later Hangup be handled before its Newchannel."""
    sent = [
        {"Event": kind, "Uniqueid": str(i), "Linkedid": "call-1"}
        for i in range(200)
        for kind in ("Newchannel", "Hangup")
    ]
    await fake.push_events(sent)
    got = []
    for _ in sent:
        item = await next_item(
            client, lambda i: isinstance(i, Mapping) and name(i) != "FullyBooted"
        )
        await asyncio.sleep(0)  # a consumer that awaits between events changes nothing
        got.append(item)
    assert got == sent
    assert client.events_received == len(sent) + 1  # + FullyBooted


@pytest.mark.parametrize("chunk", [1, 2, 3, 5])
async def test_utf8_character_split_across_tcp_reads_is_kept(
    fake: FakeAmiServer, client: AmiClient, chunk: int
) -> None:
    """Hazard 4: panoramisk decodes each read with errors='ignore': José -> Jos."""
    await next_event(client, "FullyBooted")
    fake.split_writes(chunk)
    await fake.push_events([{"Event": "Newchannel", "CallerIDName": "José", "Uniqueid": "1"}])
    event = await next_event(client, "Newchannel")
    assert event["CallerIDName"] == "José"


# Originate


async def test_originate_response_event_reaches_the_event_queue(
    fake: FakeAmiServer, client: AmiClient
) -> None:
    """Hazard 2: panoramisk treats an async Originate as a list action and swallows the
    OriginateResponse into the action's future; no event handler ever sees it."""
    sent = await client.originate(ORIGINATE)
    assert sent.message == "Originate successfully queued"
    newchannel = await next_event(client, "Newchannel")
    response = await next_event(client, "OriginateResponse")
    assert header(response, "ActionID") == sent.action_id
    assert response["Uniqueid"] == newchannel["Linkedid"] == "call-1"
    assert fake.count("Originate") == 1


async def test_originate_without_async_is_sent_async_and_does_not_crash(
    fake: FakeAmiServer, client: AmiClient
) -> None:
    """Hazard 3: panoramisk's Action.multi reads self['async'] when the answer says
    'successfully queued': an Originate without Async raises KeyError in the protocol."""
    fields = {k: v for k, v in ORIGINATE.items()}
    assert "Async" not in fields
    await client.originate(fields)
    assert (await fake.wait_for_action("Originate"))["Async"] == "true"
    await next_event(client, "OriginateResponse")
    await client.action({"Action": "Ping"})  # the link still works


async def test_async_false_cannot_be_forced(fake: FakeAmiServer, client: AmiClient) -> None:
    await client.originate({**ORIGINATE, "async": "false"})
    action = await fake.wait_for_action("Originate")
    assert action["Async"] == "true" and "async" not in action


async def test_link_drop_before_the_originate_answer_raises_unknown_at_once(
    fake: FakeAmiServer, client: AmiClient
) -> None:
    """Hazard 2: panoramisk leaves the Originate's future pending forever when the link
    drops; here the caller learns at once that the outcome is unknown."""
    fake.stop_answering()
    originate = asyncio.create_task(client.originate(ORIGINATE))
    await fake.wait_for_action("Originate")
    await fake.drop_connections()
    with pytest.raises(AmiOriginateUnknown) as info:
        async with asyncio.timeout(BOUND):  # far below action_timeout * 2: not a timeout
            await originate
    assert info.value.action_id == (await fake.wait_for_action("Originate"))["ActionID"]


async def test_unanswered_originate_is_never_sent_again_after_reconnect(
    fake: FakeAmiServer, client: AmiClient
) -> None:
    """Hazard 1: panoramisk keeps unanswered actions and re-sends them on the next
    FullyBooted, so this Originate would ring A a second time."""
    await next_change(client)  # the first login
    fake.stop_answering()
    originate = asyncio.create_task(client.originate(ORIGINATE))
    await fake.wait_for_action("Originate")
    await fake.drop_connections()
    with pytest.raises(AmiOriginateUnknown):
        await originate
    assert await next_change(client) == ConnectionChange(False, "connection closed by Asterisk")
    assert (await next_change(client)).logged_in
    await next_event(client, "FullyBooted")  # panoramisk re-sends on this event
    await client.action({"Action": "Ping"})  # anything re-sent would have arrived first
    assert fake.count("Originate") == 1
    assert fake.logins == 2


async def test_originate_answer_that_never_comes_is_unknown_after_the_timeout(
    fake: FakeAmiServer,
) -> None:
    ami = AmiClient(settings(fake, action_timeout=0.05, ping_interval=60))
    await ami.start()
    try:
        assert await ami.wait_logged_in(BOUND)
        fake.stop_answering()
        with pytest.raises(AmiOriginateUnknown, match=r"within 0\.05s"):
            await ami.originate(ORIGINATE)
    finally:
        await ami.stop()


async def test_originate_refused_by_asterisk_raises_action_error(
    fake: FakeAmiServer, client: AmiClient
) -> None:
    fake.originate_error = "Originate failed"
    with pytest.raises(AmiActionError, match="Originate failed"):
        await client.originate(ORIGINATE)


async def test_originate_while_not_logged_in_sends_nothing(fake: FakeAmiServer) -> None:
    ami = AmiClient(settings(fake))
    with pytest.raises(AmiNotConnected):
        await ami.originate(ORIGINATE)
    assert fake.actions == []


async def test_header_with_crlf_raises_before_anything_is_sent(
    fake: FakeAmiServer, client: AmiClient
) -> None:
    await client.action({"Action": "Ping"})
    before = len(fake.actions)
    with pytest.raises(ValueError, match="CallerID"):
        await client.originate({**ORIGINATE, "CallerID": "Eve\r\nAction: Hangup"})
    with pytest.raises(ValueError, match="Variable"):
        await client.originate({**ORIGINATE, "Variable": ["A=1", "B=2\nC=3"]})
    await client.action({"Action": "Ping"})
    assert [a["Action"] for a in fake.actions[before:]] == ["Ping"]


# Other actions


async def test_core_show_channels_returns_one_event_per_channel(
    fake: FakeAmiServer, client: AmiClient
) -> None:
    fake.channels = [
        {"Channel": "Local/s@callbackd-a-00000001;1", "Uniqueid": "call-1", "Linkedid": "call-1"},
        {"Channel": "PJSIP/a-00000002", "Uniqueid": "x", "Linkedid": "call-1"},
    ]
    channels = await client.core_show_channels()
    assert [c["Channel"] for c in channels] == [c["Channel"] for c in fake.channels]
    await client.action({"Action": "Ping"})
    assert client.events.qsize() == 2  # login marker, FullyBooted: list items stay out


async def test_hangup_removes_the_channel_and_its_hangup_event_arrives(
    fake: FakeAmiServer, client: AmiClient
) -> None:
    fake.channels = [{"Channel": "PJSIP/a-00000002", "Uniqueid": "u1", "Linkedid": "call-1"}]
    await client.hangup("PJSIP/a-00000002", cause=21)
    event = await next_event(client, "Hangup")
    assert (event["Uniqueid"], event["Cause"]) == ("u1", "21")
    with pytest.raises(AmiActionError, match="No such channel"):
        await client.hangup("PJSIP/a-00000002")


async def test_generic_action_returns_response_and_list_events(client: AmiClient) -> None:
    frames = await client.action({"Action": "ShowDialPlan", "Context": "callbackd-a"})
    assert [header(f, "Response") or name(f) for f in frames] == [
        "Success",
        "ListDialplan",
        "ShowDialPlanComplete",
    ]
    with pytest.raises(AmiActionError, match="Did not find context nowhere"):
        await client.action({"Action": "ShowDialPlan", "Context": "nowhere"})


async def test_generic_action_refuses_originate_and_caller_action_ids(client: AmiClient) -> None:
    with pytest.raises(ValueError, match="originate"):
        await client.action({"Action": "Originate", **ORIGINATE})
    with pytest.raises(ValueError, match="ActionID"):
        await client.action({"Action": "Ping", "ActionID": "mine"})


async def test_stop_logs_off_and_stops_reconnecting(fake: FakeAmiServer) -> None:
    ami = AmiClient(settings(fake))
    await ami.start()
    assert await ami.wait_logged_in(BOUND)
    await ami.stop()
    await fake.wait_for_action("Logoff")
    assert not ami.logged_in
    assert ami.events.get_nowait() == ConnectionChange(True, "logged in")
    assert name(ami.events.get_nowait()) == "FullyBooted"  # type: ignore[arg-type]
    assert ami.events.get_nowait() == ConnectionChange(False, "client stopped")
    with pytest.raises(AmiNotConnected):
        await ami.action({"Action": "Ping"})


async def test_action_without_answer_times_out(fake: FakeAmiServer, client: AmiClient) -> None:
    fake.stop_answering()
    with pytest.raises(AmiActionTimeout):
        await client.action({"Action": "CoreShowChannels"}, timeout=0.05)


# Keep-alive and reconnect


async def test_missing_pong_closes_a_half_open_link_and_reconnects(fake: FakeAmiServer) -> None:
    """Hazard 6: panoramisk's ping never looks for the Pong, so a link that stopped
    answering (socket still open) stays 'connected' forever."""
    ami = AmiClient(settings(fake, ping_interval=0.05, ping_timeout=0.2))
    await ami.start()
    try:
        assert (await next_change(ami)).logged_in
        fake.stop_answering()
        down = await next_change(ami)
        assert not down.logged_in and "Ping" in down.reason
        assert (await next_change(ami)).logged_in
        assert ami.reconnects == 1 and fake.logins == 2
    finally:
        await ami.stop()


async def test_reconnects_after_asterisk_closes_the_link(
    fake: FakeAmiServer, client: AmiClient
) -> None:
    await next_change(client)
    await fake.drop_connections()
    assert not (await next_change(client)).logged_in
    assert (await next_change(client)).logged_in
    assert client.reconnects == 1


async def test_a_reconnect_logs_its_retry_and_how_long_the_link_was_down(
    fake: FakeAmiServer, client: AmiClient
) -> None:
    await next_change(client)
    with capture_logs() as logs:
        await fake.drop_connections()
        assert not (await next_change(client)).logged_in
        assert (await next_change(client)).logged_in
    [retry] = [e for e in logs if e["event"] == "ami_retry"]
    assert (retry["reason"], retry["down"], retry["retry"]) == (
        "connection closed by Asterisk",
        "restarting",
        1,
    )
    [back] = [e for e in logs if e["event"] == "ami_logged_in"]
    assert back["down_for"] >= retry["delay"]


@pytest.mark.parametrize(
    ("failures", "down", "jitter", "expected"),
    [
        (0, Down.FAULT, 0.0, 0.5),
        (0, Down.FAULT, 1.0, 0.5),  # never below the minimum
        (1, Down.FAULT, 0.0, 1.0),
        (1, Down.FAULT, 1.0, 0.5),
        (3, Down.FAULT, 0.0, 4.0),
        (3, Down.FAULT, 0.5, 3.0),
        (6, Down.FAULT, 0.0, 30.0),  # capped at the maximum
        (6, Down.FAULT, 1.0, 15.0),
        (10_000, Down.FAULT, 0.0, 30.0),  # no overflow
        # Asterisk restarting: the wait stays short however long it takes.
        (0, Down.RESTARTING, 0.0, 0.5),
        (1, Down.RESTARTING, 0.0, 1.0),
        (1, Down.RESTARTING, 1.0, 0.5),
        (3, Down.RESTARTING, 0.0, 1.0),
        (10_000, Down.RESTARTING, 0.0, 1.0),
        (10_000, Down.RESTARTING, 1.0, 0.5),
    ],
)
def test_reconnect_delay_doubles_to_a_cap_that_depends_on_why_the_link_is_down(
    failures: int, down: Down, jitter: float, expected: float
) -> None:
    delay = reconnect_delay(
        failures, down, minimum=0.5, maximum=30.0, restarting_max=1.0, jitter=jitter
    )
    assert delay == expected


@pytest.mark.parametrize(
    ("message", "down"),
    [
        ("Authentication failed", Down.FAULT),
        ("Permission denied", Down.FAULT),
        ("", Down.FAULT),
        ("Asterisk is shutting down", Down.RESTARTING),
        ("Asterisk is not fully booted", Down.RESTARTING),
    ],
)
def test_a_login_refused_by_an_asterisk_in_transition_is_retried_soon(
    message: str, down: Down
) -> None:
    assert login_refusal(message) is down


async def test_refused_login_is_logged_once_and_exposed(fake: FakeAmiServer) -> None:
    ami = AmiClient(settings(fake, secret="wrong-secret"))
    with capture_logs() as logs:
        await ami.start()
        try:
            await fake.wait_for_action("Login", count=4)
            assert not await ami.wait_logged_in(0)
        finally:
            await ami.stop()
    assert ami.last_error == "login refused: Authentication failed"
    errors = [e for e in logs if e["log_level"] == "error"]
    assert [e["reason"] for e in errors] == ["login refused: Authentication failed"]


async def test_secret_is_never_logged(fake: FakeAmiServer) -> None:
    with capture_logs() as logs:
        ami = AmiClient(settings(fake))
        await ami.start()
        assert await ami.wait_logged_in(BOUND)
        await fake.drop_connections()
        assert await ami.wait_logged_in(BOUND)
        await ami.stop()
        bad = AmiClient(settings(fake, secret="another-" + SECRET))
        await bad.start()
        await fake.wait_for_action("Login", count=4)
        await bad.stop()
    assert logs
    assert SECRET not in repr(logs)
    assert SECRET not in repr(settings(fake))


async def test_connection_refused_is_one_error_line_and_one_info_line_per_retry() -> None:
    async with FakeAmiServer() as gone:
        port = gone.port
    retried = asyncio.Event()
    retries = 0

    def jitter() -> float:  # called once before each retry
        nonlocal retries
        retries += 1
        if retries == 3:
            retried.set()
        return 0.0

    ami = AmiClient(
        ConnectionSettings("127.0.0.1", port, "u", "s", reconnect_min=0.001), jitter=jitter
    )
    with capture_logs() as logs:
        await ami.start()
        async with asyncio.timeout(BOUND):
            await retried.wait()
        await ami.stop()
    assert ami.last_error is not None and "failed" in ami.last_error
    assert len([e for e in logs if e["log_level"] == "error"]) == 1
    retries = [e for e in logs if e["event"] == "ami_retry"]
    assert [e["retry"] for e in retries[:3]] == [1, 2, 3]
    for line in retries:
        assert line["log_level"] == "info"
        assert line["down"] == "restarting"
        assert "Connect call failed" in line["reason"]
        assert line["delay"] > 0


# Garbage from the server


async def test_garbage_from_the_server_is_skipped_and_the_link_survives(
    fake: FakeAmiServer, client: AmiClient
) -> None:
    await next_event(client, "FullyBooted")
    with capture_logs() as logs:
        await fake.push_raw(b"Event: Big\r\nX: " + b"a" * 1_000_000 + b"\r\n\r\n")
        await fake.push_raw(b"Foo: no event here\r\n\r\n")
        await fake.push_raw(b"Event: Hangup\r\nCallerIDName: Jos\xe9\r\nUniqueid: 9\r\n\r\n")
        await fake.push_events([{"Event": "Marker"}])
        hangup = await next_event(client, "Hangup")
        await next_event(client, "Marker")
    assert hangup["Uniqueid"] == "9"
    assert client.logged_in
    problems = [e["problem"] for e in logs if e["event"] == "ami_bad_frame"]
    assert len(problems) == 3
    await client.action({"Action": "Ping"})


async def test_replay_plays_a_recorded_stream_as_events(
    fake: FakeAmiServer, client: AmiClient
) -> None:
    recorded = (
        "Asterisk Call Manager/9.0.0\n"
        "Response: Success\nActionID: old-1\nMessage: Authentication accepted\n\n"
        "Event: Newchannel\nUniqueid: call-9\nCallerIDName: Zoë\n\n"
        "Event: Hangup\nUniqueid: call-9\nCause: 16\n\n"
    )
    await fake.replay(recorded)
    assert (await next_event(client, "Newchannel"))["CallerIDName"] == "Zoë"
    assert (await next_event(client, "Hangup"))["Cause"] == "16"
