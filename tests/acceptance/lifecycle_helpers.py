"""What the lifecycle acceptance tests drive and watch: the real `callbackd run` wired to
the test PBX, its HTTP API, and a raw AMI connection of the tests' own that sees what the
PBX really does (which phones rang, which channels exist), independent of the daemon.

Every wait is bounded and follows something that happens: an AMI event, a webhook, or a
change the daemon's API shows (polled every POLL seconds: the daemon is a subprocess).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from tests.acceptance.conftest import Daemon, answer, write_config
from tests.pbx import AmiMessage, TestPbx, _read_message, _render, ami_action
from tests.webhook_receiver import WebhookReceiver

SECRET = "whsec_" + base64.b64encode(b"lifecycle-acceptance-key-32byte!").decode()
PHONES = "Local/{number}@phones"
MONITOR_USER = "callbackd-unfiltered"  # the test PBX's AMI user without an event filter
POLL = 0.15
WAIT = 30.0  # default bound of a wait for the daemon or the PBX
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

T = TypeVar("T")


def utc_text(at: datetime) -> str:
    return at.astimezone(UTC).strftime(TIME_FORMAT)


def parse_utc(text: str) -> datetime:
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


def new_tag() -> str:
    """A value for a task's ORDER_ID variable: every phone reports it (PhoneReport), so
    the tests tell their calls from the calls of other runs on the shared PBX."""
    return uuid.uuid4().hex[:16]


# --- the daemon ------------------------------------------------------------------------


def write_pbx_config(directory: Path, port: int, pbx: TestPbx, **calls: int) -> Path:
    """A config with the API on `port`, the test PBX, the phones as A and B, short ring
    timeouts (overridable), signed webhooks and 127.0.0.1 allowed as a webhook target."""
    ring = {"a_ring_timeout": 5, "b_ring_timeout": 5} | calls
    calls_keys = "".join(f"{key} = {value}\n" for key, value in ring.items())
    ami = (
        f'host = "{pbx.host}"\nport = {pbx.port}\nusername = "{pbx.username}"\n'
        f'secret = "{pbx.secret}"\nping_interval = 2.0\n'
    )
    return write_config(
        directory,
        port,
        ami,
        f"""
[calls]
a_channel = "{PHONES}"
b_channel = "{PHONES}"
{calls_keys}
[webhooks]
secret = "{SECRET}"
deny_networks = []
max_attempts = 3
""",
    )


async def poll(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    timeout: float = WAIT,  # noqa: ASYNC109
) -> T:
    """Ask `probe` every POLL seconds until `done(answer)`; fail with the last answer.
    The daemon is another process: its API is all there is to await."""
    seen: list[T] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                seen.append(await probe())
                if done(seen[-1]):
                    return seen[-1]
                await asyncio.sleep(POLL)
    except TimeoutError:
        raise AssertionError(f"never got there; last seen: {seen[-1:]}") from None


class Api:
    """The daemon's REST API as client `acme` sees it."""

    def __init__(self, session: aiohttp.ClientSession, daemon: Daemon) -> None:
        self.session = session
        self.daemon = daemon
        self.url = daemon.url
        self.base = f"{daemon.url}/client/acme"

    async def request(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        """The JSON of a 2xx answer; anything else fails the test with the problem."""
        try:
            async with self.session.request(
                method, self.base + path, json=body, params=params
            ) as response:
                status, data = await answer(response)
        except aiohttp.ClientConnectionError as exc:
            raise AssertionError(f"{exc}; the daemon's log:\n{self.log()}") from None
        assert 200 <= status < 300, (method, path, status, data)
        return data

    def log(self) -> str:
        return "".join(self.daemon.log)

    async def new_queue(self, status: str = "on", limit: int = 10) -> int:
        body = {"name": "lifecycle", "status": status, "concurrent_task_limit": limit}
        queue = await self.request("POST", "/task_scheduler/", body)
        return int(queue["id"])

    async def switch_queue(self, queue_id: int, status: str) -> None:
        await self.request("PUT", f"/task_scheduler/{queue_id}", {"status": status})

    async def add_tasks(self, queue_id: int, *tasks: dict[str, Any]) -> list[dict[str, Any]]:
        made = await self.request("POST", f"/task_scheduler/{queue_id}/tasks/", {"tasks": tasks})
        return list(made["tasks"])

    async def task(self, task: dict[str, Any]) -> dict[str, Any]:
        data = await self.request("GET", _task_path(task))
        return dict(data)

    async def cancel(self, task: dict[str, Any]) -> dict[str, Any]:
        data = await self.request("DELETE", _task_path(task))
        return dict(data)

    async def attempts(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        return list(await self.request("GET", _task_path(task) + "/attempts"))

    async def call(self, call_uuid: str, events: bool = False) -> dict[str, Any]:
        params = {"events": "1"} if events else {}
        return dict(await self.request("GET", f"/call_history/{call_uuid}", **params))

    async def calls_of(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        return list(await self.request("GET", "/call_history/", task_id=str(task["id"])))

    async def readyz(self) -> int:
        try:
            async with self.session.get(self.url + "/readyz") as response:
                return response.status
        except aiohttp.ClientConnectionError:
            return 0

    async def metric(self, name: str) -> float:
        """One unlabelled sample of /metrics."""
        async with self.session.get(self.url + "/metrics") as response:
            text = await response.text()
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == name:
                return float(value)
        raise AssertionError(f"{name} not in /metrics")

    async def wait_outbox_empty(self, timeout: float = WAIT) -> None:  # noqa: ASYNC109
        """Until every queued webhook has been delivered (or given up)."""
        await poll(lambda: self.metric("callbackd_webhooks_pending"), lambda n: n == 0, timeout)

    async def wait_ready(self, timeout: float = WAIT) -> None:  # noqa: ASYNC109
        """Until /readyz says the store and AMI are ready."""
        await poll(self.readyz, lambda status: status == 200, timeout)

    async def wait_task(
        self,
        task: dict[str, Any],
        until: Callable[[dict[str, Any]], bool],
        timeout: float = WAIT,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        return await poll(lambda: self.task(task), until, timeout)

    async def wait_finished(self, task: dict[str, Any], timeout: float = WAIT) -> dict[str, Any]:  # noqa: ASYNC109
        return await self.wait_task(task, lambda t: t["status"] == "finished", timeout)


def _task_path(task: dict[str, Any]) -> str:
    return f"/task_scheduler/{task['scheduler_id']}/tasks/{task['id']}"


def a_task(
    a_number: str, b_number: str, receiver: WebhookReceiver, **fields: Any
) -> dict[str, Any]:
    """A task input with every webhook pointed at the receiver and a fresh ORDER_ID tag."""
    return {
        "a_number": a_number,
        "b_number": b_number,
        "url_before": receiver.url("/before"),
        "url_before_again": receiver.url("/before_again"),
        "url_success": receiver.url("/success"),
        "url_after": receiver.url("/after"),
        "variables": {"ORDER_ID": new_tag()},
    } | fields


# --- webhooks --------------------------------------------------------------------------


async def wait_webhook(
    receiver: WebhookReceiver,
    event: str,
    timeout: float = WAIT,  # noqa: ASYNC109
) -> dict[str, Any]:
    """Until a webhook of this event has been delivered; its body."""

    def delivered() -> list[dict[str, Any]]:
        return [r.json() for r in receiver.delivered() if r.json()["event"] == event]

    try:
        async with asyncio.timeout(timeout):
            while not delivered():
                with contextlib.suppress(TimeoutError):  # the receiver's own bound
                    await receiver.wait_arrivals(receiver.arrivals + 1)
    except TimeoutError:
        raise AssertionError(f"no {event!r} webhook delivered") from None
    return delivered()[0]


# --- what the PBX does ------------------------------------------------------------------


def phone_report(tag: str) -> Callable[[AmiMessage], bool]:
    """A test phone saying it rings for a call tagged `tag` (its ORDER_ID)."""
    return lambda ev: (
        ev.get("Event") == "UserEvent"
        and ev.get("UserEvent") == "PhoneReport"
        and ev.get("ORDER_ID") == tag
    )


class AmiMonitor:
    """The tests' own AMI connection (user without event filter): every call and user
    event of the PBX in arrival order. It logs in again by itself if Asterisk restarts
    (`reconnects` counts it: events of the gap are not seen)."""

    def __init__(self, pbx: TestPbx) -> None:
        self._pbx = pbx
        self.events: list[AmiMessage] = []
        self.reconnects = 0
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def start(self) -> AmiMonitor:
        reader = await self._login()
        self._reader = asyncio.create_task(self._read(reader))
        return self

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._close()

    async def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
            self._writer = None

    async def _login(self) -> asyncio.StreamReader:
        reader, writer = await asyncio.open_connection(self._pbx.host, self._pbx.port)
        self._writer = writer
        async with asyncio.timeout(10):
            banner = await reader.readline()
            assert banner.startswith(b"Asterisk Call Manager/"), banner
            login = [
                ("Action", "Login"),
                ("ActionID", "monitor-login"),
                ("Username", MONITOR_USER),
                ("Secret", self._pbx.secret),
            ]
            writer.write(_render(login))
            await writer.drain()
            while (msg := await _read_message(reader)).get("ActionID") != "monitor-login":
                pass
        assert msg.get("Response") == "Success", msg
        return reader

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            with contextlib.suppress(ConnectionError, OSError):
                await self._take_events(reader)
            await self._close()
            reader = await self._login_again()
            self.reconnects += 1

    async def _take_events(self, reader: asyncio.StreamReader) -> None:
        while True:
            msg = await _read_message(reader)
            if "Event" in msg:
                async with self._changed:
                    self.events.append(msg)
                    self._changed.notify_all()

    async def _login_again(self) -> asyncio.StreamReader:
        """Asterisk is restarting: log in once it is back (the test bounds the wait)."""
        while True:
            try:
                return await self._login()
            except (ConnectionError, OSError, AssertionError, TimeoutError):
                await self._close()
                await asyncio.sleep(0.5)

    def matching(self, predicate: Callable[[AmiMessage], bool]) -> list[AmiMessage]:
        return [ev for ev in self.events if predicate(ev)]

    async def wait_for(
        self,
        predicate: Callable[[AmiMessage], bool],
        timeout: float = WAIT,  # noqa: ASYNC109
    ) -> AmiMessage:
        """The first event (seen so far or to come) that matches."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: bool(self.matching(predicate)))
        except TimeoutError:
            raise AssertionError("the PBX never sent the awaited event") from None
        return self.matching(predicate)[0]

    async def wait_until(
        self,
        done: Callable[[], bool],
        timeout: float = WAIT,  # noqa: ASYNC109
    ) -> None:
        """Until `done()` holds; checked after each event."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(done)
        except TimeoutError:
            raise AssertionError("the PBX never got there") from None

    # --- questions about what was seen ---

    def reports(self, tag: str) -> list[AmiMessage]:
        """PhoneReport events of the phones that a call tagged `tag` rang."""
        return self.matching(phone_report(tag))

    def rang(self, tag: str) -> list[str]:
        """The numbers rung by calls tagged `tag`, once per ring."""
        return [ev["Number"] for ev in self.reports(tag)]

    def of_call(self, call_uuid: str) -> list[AmiMessage]:
        return self.matching(lambda ev: ev.get("Linkedid") == call_uuid)

    def open_channels(self, call_uuid: str) -> set[str]:
        """Channels of the call that the PBX created and has not hung up."""
        live: set[str] = set()
        for ev in self.of_call(call_uuid):
            if ev.get("Event") == "Newchannel":
                live.add(ev["Uniqueid"])
            elif ev.get("Event") == "Hangup":
                live.discard(ev["Uniqueid"])
        return live

    def most_calls_at_once(self, call_uuids: set[str]) -> int:
        """Most of these calls that had a channel on the PBX at the same time, from the
        Newchannel/Hangup events grouped by Linkedid in arrival order."""
        live: dict[str, set[str]] = {}
        most = 0
        for ev in self.events:
            call = ev.get("Linkedid")
            if call not in call_uuids:
                continue
            if ev.get("Event") == "Newchannel":
                live.setdefault(call, set()).add(ev["Uniqueid"])
            elif ev.get("Event") == "Hangup":
                live.get(call, set()).discard(ev["Uniqueid"])
            most = max(most, sum(1 for channels in live.values() if channels))
        return most


async def fresh_busy_once_number(pbx: TestPbx) -> str:
    """A `9NTT` phone that has not been called since Asterisk started (it is busy the
    first time): rings N s (0-1), then talks TT s (02-99)."""
    for _ in range(50):
        number = f"9{random.randint(0, 1)}{random.randint(2, 99):02d}"
        [reply] = await ami_action(pbx, "Getvar", ("Variable", f"GLOBAL(PHONE_SEEN_{number})"))
        if reply.get("Response") == "Success" and not reply.get("Value"):
            return number
    raise AssertionError("no 9NTT phone left that was never called; restart the test PBX")


def seconds_from_now(seconds: float) -> str:
    return utc_text(datetime.now(UTC) + timedelta(seconds=seconds))
