"""The engine refuses to place calls while the PBX lacks callbackd's dialplan, and says
why in the words /readyz shows."""

from __future__ import annotations

import asyncio
from pathlib import Path

from structlog.testing import capture_logs

from ami.client import AmiClient, ConnectionSettings
from ami.fake import FakeAmiServer
from ami.originate import REQUIRED_CONTEXTS
from config import Settings
from daemon.calls import CallEngine
from daemon.clock import SystemClock
from daemon.store.attempts import AttemptRepository
from daemon.store.db import Database


async def test_missing_dialplan_contexts_keep_the_engine_not_ready(tmp_path: Path) -> None:
    async with FakeAmiServer(secret="s3cret-for-tests", contexts=["callbackd-a"]) as fake:
        db = await Database.open(tmp_path / "cb.db")
        ami = AmiClient(ConnectionSettings(fake.host, fake.port, "callbackd", "s3cret-for-tests"))
        engine = CallEngine(ami, AttemptRepository(db), SystemClock(), lambda: Settings())
        await ami.start()
        running = asyncio.create_task(engine.run())
        try:
            assert await engine.wait_following(5)
            assert not engine.ready
            assert ami.logged_in
            assert engine.last_error is not None
            assert "callbackd-b" in engine.last_error
            assert "extensions_callbackd.conf" in engine.last_error
            assert "callbackd-a," not in engine.last_error
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await ami.stop()
            await db.close()


async def test_no_ready_line_is_logged_while_the_dialplan_is_missing(tmp_path: Path) -> None:
    async with FakeAmiServer(secret="s3cret-for-tests", contexts=[]) as fake:
        db = await Database.open(tmp_path / "cb.db")
        ami = AmiClient(ConnectionSettings(fake.host, fake.port, "callbackd", "s3cret-for-tests"))
        engine = CallEngine(ami, AttemptRepository(db), SystemClock(), lambda: Settings())
        with capture_logs() as logs:
            await ami.start()
            running = asyncio.create_task(engine.run())
            try:
                assert await engine.wait_following(5)
                assert not engine.ready
            finally:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
                await ami.stop()
                await db.close()

    events = [line["event"] for line in logs]
    assert "AMI ready" not in events
    assert "dialplan check failed" in events
    [not_ready] = [line for line in logs if line["event"] == "AMI logged in but not ready"]
    assert "callbackd-a" in not_ready["error"]


async def test_waiting_for_ready_ends_once_a_late_dialplan_is_found(tmp_path: Path) -> None:
    # A PBX just restarted may let the login in before its dialplan is loaded.
    async with FakeAmiServer(secret="s3cret-for-tests", contexts=[]) as fake:
        db = await Database.open(tmp_path / "cb.db")
        ami = AmiClient(ConnectionSettings(fake.host, fake.port, "callbackd", "s3cret-for-tests"))
        engine = CallEngine(ami, AttemptRepository(db), SystemClock(), lambda: Settings())
        await ami.start()
        running = asyncio.create_task(engine.run())
        try:
            assert await engine.wait_following(5)
            waiting = asyncio.create_task(engine.wait_ready(5))
            fake.contexts = list(REQUIRED_CONTEXTS)
            await engine.watch()
            assert await waiting
            assert engine.ready
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await ami.stop()
            await db.close()
