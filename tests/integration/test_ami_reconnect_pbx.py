"""How soon the AMI client is logged in again after Asterisk restarts, on the real
test PBX, measured from Asterisk's own FullyBooted event: at most RECONNECT_BOUND,
however long Asterisk was down, and each retry logged with its delay and reason."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ami.client import AmiClient, ConnectionSettings
from ami.events import ConnectionChange
from tests.pbx import TestPbx, fully_booted

pytestmark = pytest.mark.pbx

RECONNECT_BOUND = 2.0  # seconds from Asterisk fully booted to logged in
# Retries while Asterisk is stopped: enough for a doubling backoff to have reached
# tens of seconds.
OUTAGE_RETRIES = 6
WAIT = 120.0  # bound on each wait, never reached when it works


class Recorder:
    """The client's logger: keeps every line, and says when the n-th retry is logged."""

    def __init__(self, retries: int) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []
        self._retries = retries
        self.retried = asyncio.Event()

    def _log(self, event: str, **kw: Any) -> None:
        self.lines.append((event, kw))
        if event == "ami_retry" and kw["retry"] >= self._retries:
            self.retried.set()

    def retries(self) -> list[dict[str, Any]]:
        return [kw for event, kw in self.lines if event == "ami_retry"]

    debug = info = warning = error = _log


@pytest.fixture
async def client(testpbx: TestPbx) -> AsyncIterator[tuple[AmiClient, Recorder]]:
    recorder = Recorder(OUTAGE_RETRIES)
    # The shipped defaults, with no jitter: every wait as long as it can be.
    settings = ConnectionSettings(testpbx.host, testpbx.port, testpbx.username, testpbx.secret)
    ami = AmiClient(settings, logger=recorder, jitter=lambda: 0.0)
    await ami.start()
    try:
        assert await logged_in_at(ami)
        yield ami, recorder
    finally:
        await ami.stop()
        if not testpbx.is_running():
            await testpbx.start_async()


async def logged_in_at(ami: AmiClient) -> float:
    """The loop time of the client's next login."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(WAIT):
        while True:
            event = await ami.events.get()
            if isinstance(event, ConnectionChange) and event.logged_in:
                return loop.time()


async def logged_out(ami: AmiClient) -> None:
    async with asyncio.timeout(WAIT):
        while True:
            event = await ami.events.get()
            if isinstance(event, ConnectionChange) and not event.logged_in:
                return


async def test_a_restart_of_asterisk_is_followed_by_a_login_within_two_seconds(
    testpbx: TestPbx, client: tuple[AmiClient, Recorder]
) -> None:
    ami, recorder = client
    restart = asyncio.create_task(testpbx.restart())
    await logged_out(ami)  # the old Asterisk is going: the next boot is the new one
    booted = await fully_booted(testpbx)
    back = await logged_in_at(ami)
    await restart
    took = back - booted
    print(f"restart: logged in {took:.3f} s after Asterisk fully booted")
    assert took <= RECONNECT_BOUND
    assert recorder.retries()


async def test_after_a_long_outage_the_login_still_follows_the_boot_within_two_seconds(
    testpbx: TestPbx, client: tuple[AmiClient, Recorder]
) -> None:
    ami, recorder = client
    await testpbx.stop_async()
    await logged_out(ami)
    async with asyncio.timeout(WAIT):
        await recorder.retried.wait()
    boot = asyncio.create_task(fully_booted(testpbx))
    await testpbx.start_async()
    booted = await boot
    back = await logged_in_at(ami)
    took = back - booted
    retries = recorder.retries()
    print(f"outage of {len(retries)} retries: logged in {took:.3f} s after fully booted")
    assert took <= RECONNECT_BOUND
    # Every retry said how long it waits and why.
    assert len(retries) >= OUTAGE_RETRIES
    for line in retries:
        assert line["delay"] <= 1.0
        assert line["reason"]
    assert any("Connect call failed" in line["reason"] for line in retries)
    [(_, login)] = [(e, kw) for e, kw in recorder.lines[-1:] if e == "ami_logged_in"]
    assert login["down_for"] > 0
