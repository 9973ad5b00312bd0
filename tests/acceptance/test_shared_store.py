"""The real `callbackd run` on the shared PostgreSQL store with the test PBXs: two hosts,
each with its own Asterisk, work one queue within its limit and ring each number once;
a PostgreSQL restart, alone or with a kill -9 of the daemon mid-call, rings nobody
twice and loses no webhook."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.acceptance.conftest import callbackd_command, free_port, launch
from tests.acceptance.lifecycle_helpers import (
    POLL,
    AmiMonitor,
    Api,
    a_task,
    poll,
    wait_webhook,
    write_pbx_config,
)
from tests.acceptance.test_lifecycle import event_names, is_a_dial, tag_of
from tests.pbx import TestPbx
from tests.pg import TestPg
from tests.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.pbx, pytest.mark.pg]


def shared_config(directory: Path, pbx: TestPbx, pg_url: str, host_id: str, **calls: int) -> Path:
    parts = conninfo_to_dict(pg_url)
    url_file = directory / f"store_url-{host_id}"
    url_file.write_text(
        f"postgresql://{parts['user']}@{parts['host']}:{parts['port']}/{parts['dbname']}"
    )
    directory = directory / host_id
    directory.mkdir()
    config = write_pbx_config(directory, free_port(), pbx, **calls)
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


async def executed_now(session: aiohttp.ClientSession, api: Api, queue: int) -> int:
    url = f"{api.base}/task_scheduler/{queue}/tasks/"
    async with session.get(url, params={"status": "executed", "per_page": "1"}) as response:
        assert response.status == 200
        return int(response.headers["X-Total-Count"])


async def test_two_hosts_work_one_queue_within_its_limit_and_ring_each_number_once(
    tmp_path: Path,
    testpbx: TestPbx,
    testpbx2: TestPbx,
    pg_url: str,
    session: aiohttp.ClientSession,
) -> None:
    # One call at a time per host (calls.max_concurrent), two at a time in the queue:
    # the queue needs both hosts, and its limit is what stops a third call.
    configs = [
        shared_config(tmp_path, pbx, pg_url, host, max_concurrent=1)
        for pbx, host in ((testpbx, "pbx-1"), (testpbx2, "pbx-2"))
    ]
    monitors = [await AmiMonitor(testpbx).start(), await AmiMonitor(testpbx2).start()]
    receiver = await WebhookReceiver().start()
    daemons = []
    try:
        for config in configs:
            daemons.append(await launch(config, port_of(config), session))
        apis = [Api(session, daemon) for daemon in daemons]
        for api in apis:
            await api.wait_ready()
        queue = await apis[0].new_queue(limit=2)
        tasks = await apis[1].add_tasks(
            queue, *(a_task("1003", "1103", receiver) for _ in range(6))
        )
        most = 0
        while not all(t["status"] == "finished" for t in [await apis[0].task(t) for t in tasks]):
            most = max(most, await executed_now(session, apis[0], queue))
            await asyncio.sleep(POLL)  # sampling the running count while the calls go on
        done = [await apis[1].task(t) for t in tasks]
        for api in apis:
            await api.wait_outbox_empty()
        status = await asyncio.create_subprocess_exec(
            *callbackd_command(), "cluster", "--config", str(configs[0]), "status",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(status.communicate(), 60)
    finally:
        for daemon in daemons:
            await daemon.stop()
        await receiver.stop()
        for monitor in monitors:
            await monitor.stop()

    assert [(t["finish_result"], t["attempts_made"]) for t in done] == [("success", 1)] * 6
    assert 1 <= most <= 2
    for task in done:
        dial_begins = sum(len(m.matching(is_a_dial(task["cdr"]))) for m in monitors)
        rang = sorted(n for m in monitors for n in m.rang(tag_of(task)))
        assert (dial_begins, rang) == (1, ["1003", "1103"]), task
        events = [
            r.json()["event"] for r in receiver.delivered() if r.json()["task"]["id"] == task["id"]
        ]
        assert events == ["before", "success", "after"], task
    assert set(receiver.ids().values()) == {1}  # every webhook arrived once
    with psycopg.connect(pg_url) as conn:
        hosts = conn.execute("SELECT DISTINCT host_id FROM attempts ORDER BY 1").fetchall()
    assert hosts == [("pbx-1",), ("pbx-2",)]
    lines = {row.split()[0]: row.split() for row in out.decode().splitlines()[1:]}
    assert "alive" in lines["pbx-1"] and "alive" in lines["pbx-2"]


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
    assert len(monitor.matching(is_a_dial(call_uuid))) == 1
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


async def silent_for(pg_url: str, host_id: str) -> float:
    def read() -> float:
        with psycopg.connect(pg_url) as conn:
            row = conn.execute(
                "SELECT extract(epoch FROM now() - last_heartbeat)::float8 FROM hosts"
                " WHERE host_id = %s",
                (host_id,),
            ).fetchone()
        assert row is not None
        return float(row[0])

    return await asyncio.to_thread(read)


@pytest.mark.parametrize("fault", ["SIGKILL", "SIGSTOP"])
async def test_a_host_gone_past_host_timeout_mid_call_leaves_its_call_to_itself(
    tmp_path: Path,
    testpbx: TestPbx,
    testpbx2: TestPbx,
    pg_url: str,
    session: aiohttp.ClientSession,
    fault: str,
) -> None:
    # pbx-1 is killed (then started again) or frozen (then resumed) while A and B talk,
    # for longer than host_timeout: pbx-2 takes it for gone and keeps working, but its
    # call may still be up, so nobody closes it or rings its numbers again; pbx-1 back
    # follows its call to the end.
    configs = [
        shared_config(tmp_path, pbx, pg_url, host, max_concurrent=1)
        for pbx, host in ((testpbx, "pbx-1"), (testpbx2, "pbx-2"))
    ]
    monitors = [await AmiMonitor(testpbx).start(), await AmiMonitor(testpbx2).start()]
    receiver = await WebhookReceiver().start()
    daemons = []
    try:
        first = await launch(configs[0], port_of(configs[0]), session)
        daemons.append(first)
        api = Api(session, first)
        await api.wait_ready()
        queue = await api.new_queue(limit=2)
        [task] = await api.add_tasks(queue, a_task("1008", "1108", receiver))
        await wait_webhook(receiver, "success")  # bridged on pbx-1's PBX: ~8 s of talk
        call_uuid = (await api.task(task))["cdr"]
        second = await launch(configs[1], port_of(configs[1]), session)
        daemons.append(second)
        other_api = Api(session, second)
        await other_api.wait_ready()

        if fault == "SIGKILL":
            await first.kill()
        else:
            first.process.send_signal(signal.SIGSTOP)
        await poll(lambda: silent_for(pg_url, "pbx-1"), lambda s: s > 5, 30)
        [other] = await other_api.add_tasks(queue, a_task("1002", "1102", receiver))
        other_done = await other_api.wait_finished(other)
        if fault == "SIGKILL":
            first = await launch(configs[0], port_of(configs[0]), session)
            daemons.append(first)
        else:
            first.process.send_signal(signal.SIGCONT)
        api = Api(session, first)
        done = await api.wait_finished(task)
        for each in (api, other_api):
            await each.wait_outbox_empty()
    finally:
        for daemon in daemons:
            if daemon.process.returncode is None:
                daemon.process.send_signal(signal.SIGCONT)
                await daemon.stop()
        await receiver.stop()
        for monitor in monitors:
            await monitor.stop()

    assert (done["finish_result"], done["attempts_made"], done["cdr"]) == (
        "success",
        1,
        call_uuid,
    ), api.log()
    assert (other_done["finish_result"], other_done["attempts_made"]) == ("success", 1)
    for each in (done, other_done):
        dial_begins = sum(len(m.matching(is_a_dial(each["cdr"]))) for m in monitors)
        assert dial_begins == 1, each
    assert sorted(n for m in monitors for n in m.rang(tag_of(task))) == ["1008", "1108"]
    with psycopg.connect(pg_url) as conn:
        hosts = conn.execute("SELECT task_id, host_id FROM attempts ORDER BY task_id").fetchall()
    assert hosts == [(task["id"], "pbx-1"), (other["id"], "pbx-2")]
    events = [
        r.json()["event"] for r in receiver.delivered() if r.json()["task"]["id"] == task["id"]
    ]
    assert events == ["before", "success", "after"]
    assert set(receiver.ids().values()) == {1}
