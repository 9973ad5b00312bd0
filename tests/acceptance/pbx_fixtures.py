"""Fixtures of the acceptance tests that run `callbackd run` on the real test PBX: the
daemon itself, a webhook receiver, and the tests' own AMI connection. Loaded as a pytest
plugin by tests/conftest.py, so every test module may ask for them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.acceptance.conftest import Daemon, free_port, launch
from tests.acceptance.lifecycle_helpers import AmiMonitor, Api, write_pbx_config
from tests.pbx import TestPbx
from tests.webhook_receiver import WebhookReceiver

Callbackd = Callable[..., Awaitable[Api]]


@pytest.fixture
async def callbackd(
    tmp_path: Path, session: aiohttp.ClientSession, testpbx: TestPbx
) -> AsyncIterator[Callbackd]:
    """Start the daemon on the test PBX (`[calls]` keys as keyword arguments), ready;
    call again to start it anew on the same store, port and config."""
    port = free_port()
    started: list[Daemon] = []

    async def start(**calls: Any) -> Api:
        config = write_pbx_config(tmp_path, port, testpbx, **calls)
        daemon = await launch(config, port, session)
        started.append(daemon)
        api = Api(session, daemon)
        await api.wait_ready()
        return api

    yield start
    for daemon in started:
        if daemon.process.returncode is None:
            await daemon.kill()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = await WebhookReceiver().start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def monitor(testpbx: TestPbx) -> AsyncIterator[AmiMonitor]:
    monitor = await AmiMonitor(testpbx).start()
    yield monitor
    await monitor.stop()


def tag_of(task: dict[str, Any]) -> str:
    """The tag a task carries in its ORDER_ID variable (lifecycle_helpers.a_task)."""
    return str(task["variables"]["ORDER_ID"])
