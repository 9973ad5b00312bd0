"""The real `callbackd run` on the shared PostgreSQL store with the test PBX: calls are
placed and stored there under this host's name, the host shows in `cluster status`, a
second host on the same store is refused (this version runs one host per store), and a
PostgreSQL restart with a kill -9 of the daemon mid-call rings nobody twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.acceptance.conftest import callbackd_command, free_port, launch
from tests.acceptance.lifecycle_helpers import (
    AmiMonitor,
    Api,
    a_task,
    wait_webhook,
    write_pbx_config,
)
from tests.acceptance.test_lifecycle import event_names, is_call_event, tag_of
from tests.pbx import TestPbx
from tests.pg import TestPg
from tests.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.pbx, pytest.mark.pg]


def shared_config(directory: Path, pbx: TestPbx, pg_url: str, host_id: str) -> Path:
    parts = conninfo_to_dict(pg_url)
    url_file = directory / f"store_url-{host_id}"
    url_file.write_text(
        f"postgresql://{parts['user']}@{parts['host']}:{parts['port']}/{parts['dbname']}"
    )
    directory = directory / host_id
    directory.mkdir()
    config = write_pbx_config(directory, free_port(), pbx)
    text = config.read_text().replace("[store]\n", f'[store]\nurl_file = "{url_file}"\n', 1)
    config.write_text(
        text + f'\n[cluster]\nhost_id = "{host_id}"\nheartbeat = 1\nhost_timeout = 5\n'
    )
    return config


def port_of(config: Path) -> int:
    for line in config.read_text().splitlines():
        if line.startswith("listen = "):
            return int(line.rsplit(":", 1)[1].rstrip('"'))
    raise AssertionError("no listen address")


async def test_a_host_runs_calls_on_the_shared_store_and_a_second_one_is_refused(
    tmp_path: Path, testpbx: TestPbx, pg_url: str, session: aiohttp.ClientSession
) -> None:
    first = shared_config(tmp_path, testpbx, pg_url, "pbx-1")
    daemon = await launch(first, port_of(first), session)
    try:
        api = Api(session, daemon)
        await api.wait_ready()
        queue = await api.new_queue()
        (task,) = await api.add_tasks(queue, {"a_number": "1002", "b_number": "1102"})
        done = await api.wait_finished(task)

        second = shared_config(tmp_path, testpbx, pg_url, "pbx-2")
        refused = await asyncio.create_subprocess_exec(
            *callbackd_command(),
            "run",
            "--config",
            str(second),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(refused.communicate(), 60)
        status = await asyncio.create_subprocess_exec(
            *callbackd_command(),
            "cluster",
            "--config",
            str(first),
            "status",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(status.communicate(), 60)
    finally:
        await daemon.stop()

    assert done["finish_result"] == "success", api.log()
    with psycopg.connect(pg_url) as conn:
        hosts = conn.execute("SELECT host_id FROM attempts").fetchall()
    assert hosts == [("pbx-1",)]
    assert refused.returncode == 1
    assert "cluster: pbx-1 already runs on this store" in err.decode(), err.decode()
    (line,) = [row for row in out.decode().splitlines() if row.startswith("pbx-1")]
    assert "alive" in line.split()


async def test_postgresql_restarted_and_the_daemon_killed_mid_call_ring_nobody_twice(
    tmp_path: Path,
    testpbx: TestPbx,
    testpg: TestPg,
    pg_url: str,
    session: aiohttp.ClientSession,
) -> None:
    config = shared_config(tmp_path, testpbx, pg_url, "pbx-1")
    monitor = await AmiMonitor(testpbx).start()
    receiver = await WebhookReceiver().start()
    daemons = [await launch(config, port_of(config), session)]
    try:
        api = Api(session, daemons[0])
        await api.wait_ready()
        queue = await api.new_queue()
        [task] = await api.add_tasks(queue, a_task("1012", "1112", receiver))
        await wait_webhook(receiver, "success")  # bridged: A and B talk for ~12 s
        call_uuid = (await api.task(task))["cdr"]

        await asyncio.to_thread(testpg.restart)  # every session of the daemon is cut
        await daemons[0].kill()
        daemons.append(await launch(config, port_of(config), session))
        api = Api(session, daemons[1])
        assert monitor.open_channels(call_uuid), "the call ended before the daemon was back"

        done = await api.wait_finished(task)
        await api.wait_outbox_empty()
    finally:
        for daemon in daemons:
            if daemon.process.returncode is None:
                await daemon.stop()
        await receiver.stop()
        await monitor.stop()

    assert (done["finish_result"], done["attempts_made"], done["cdr"]) == (
        "success",
        1,
        call_uuid,
    )
    assert sorted(monitor.rang(tag_of(task))) == ["1012", "1112"]
    assert len(monitor.matching(is_call_event(call_uuid + "-a", "DialBegin"))) == 1
    assert event_names(receiver) == ["before", "success", "after"]


async def test_a_postgresql_restart_mid_call_is_a_pause_the_call_is_stored_after(
    tmp_path: Path,
    testpbx: TestPbx,
    testpg: TestPg,
    pg_url: str,
    session: aiohttp.ClientSession,
) -> None:
    config = shared_config(tmp_path, testpbx, pg_url, "pbx-1")
    receiver = await WebhookReceiver().start()
    daemon = await launch(config, port_of(config), session)
    try:
        api = Api(session, daemon)
        await api.wait_ready()
        queue = await api.new_queue()
        [task] = await api.add_tasks(queue, a_task("1005", "1105", receiver))
        await wait_webhook(receiver, "success")  # bridged: A and B talk for ~5 s

        await asyncio.to_thread(testpg.restart)

        done = await api.wait_finished(task)
        await api.wait_outbox_empty()
        [attempt] = await api.attempts(task)
    finally:
        await daemon.stop()
        await receiver.stop()

    assert (done["finish_result"], done["attempts_made"]) == ("success", 1), api.log()
    assert attempt["end_time_gmt"] is not None
    assert event_names(receiver) == ["before", "success", "after"]
