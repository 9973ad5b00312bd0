"""The real `callbackd run` on the shared PostgreSQL store with the test PBXs: two hosts,
each with its own Asterisk, work one queue within its limit and ring each number once;
a PostgreSQL restart, alone or with a kill -9 of the daemon mid-call, rings nobody
twice and loses no webhook; a host gone mid-call leaves its call alone, and a whole
host gone (daemon and Asterisk) has its attempt closed by the other host only once
its call cannot be up any more."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from daemon.cluster import CALL_END_SLACK, longest_call_seconds
from daemon.models import parse_time
from tests.acceptance.conftest import callbackd_command, free_port, launch
from tests.acceptance.lifecycle_helpers import (
    POLL,
    AmiMonitor,
    Api,
    a_task,
    phone_report,
    poll,
    wait_webhook,
    write_pbx_config,
)
from tests.acceptance.pbx_fixtures import tag_of
from tests.acceptance.test_lifecycle import event_names, is_a_dial
from tests.pbx import TestPbx
from tests.pg import TestPg
from tests.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.pbx, pytest.mark.pg]

# cluster.host_timeout of every host here (cluster.heartbeat is 1 s).
HOST_TIMEOUT = 5


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
        text + f'\n[cluster]\nhost_id = "{host_id}"\nheartbeat = 1\nhost_timeout = {HOST_TIMEOUT}\n'
    )
    return config


def port_of(config: Path) -> int:
    for line in config.read_text().splitlines():
        if line.startswith("listen = "):
            return int(line.rsplit(":", 1)[1].rstrip('"'))
    raise AssertionError("no listen address")


def two_hosts(
    directory: Path, pbxs: tuple[TestPbx, TestPbx], pg_url: str, **calls: int
) -> list[Path]:
    """The configs of hosts pbx-1 and pbx-2, each on its own PBX, on one store."""
    return [
        shared_config(directory, pbx, pg_url, f"pbx-{n}", **calls)
        for n, pbx in enumerate(pbxs, start=1)
    ]


def events_of(receiver: WebhookReceiver, task: dict[str, Any]) -> list[str]:
    """The webhooks of one task delivered, in order, once each."""
    return [r.json()["event"] for r in receiver.delivered() if r.json()["task"]["id"] == task["id"]]


def a_dials(monitors: list[AmiMonitor], call_uuid: str) -> int:
    """A-side DialBegins of one call over every PBX: 1 when nobody was rung twice."""
    return sum(len(m.matching(is_a_dial(call_uuid))) for m in monitors)


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
    configs = two_hosts(tmp_path, (testpbx, testpbx2), pg_url, max_concurrent=1)
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
        rang = sorted(n for m in monitors for n in m.rang(tag_of(task)))
        assert (a_dials(monitors, task["cdr"]), rang) == (1, ["1003", "1103"]), task
        assert events_of(receiver, task) == ["before", "success", "after"], task
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
    configs = two_hosts(tmp_path, (testpbx, testpbx2), pg_url, max_concurrent=1)
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
        await poll(lambda: silent_for(pg_url, "pbx-1"), lambda s: s > HOST_TIMEOUT, 30)
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
    for finished in (done, other_done):
        assert a_dials(monitors, finished["cdr"]) == 1, finished
    assert sorted(n for m in monitors for n in m.rang(tag_of(task))) == ["1008", "1108"]
    with psycopg.connect(pg_url) as conn:
        hosts = conn.execute("SELECT task_id, host_id FROM attempts ORDER BY task_id").fetchall()
    assert hosts == [(task["id"], "pbx-1"), (other["id"], "pbx-2")]
    assert events_of(receiver, task) == ["before", "success", "after"]
    assert set(receiver.ids().values()) == {1}


# The calls of the whole-host test: A answers at once; B rings 9 s, then talks 5 s.
# The config's limits make the longest call 27 s, so the other host may close the gone
# host's attempt 62 s after its last heartbeat.
A_NUMBER, B_NUMBER = "1099", "1905"
SHORT_CALLS = {"a_ring_timeout": 5, "b_ring_timeout": 12, "max_talk_time": 10}
LONGEST_CALL = timedelta(
    seconds=longest_call_seconds(
        SHORT_CALLS["a_ring_timeout"], SHORT_CALLS["b_ring_timeout"], SHORT_CALLS["max_talk_time"]
    )
)
RETRY_PAUSE = 2


@contextlib.asynccontextmanager
async def running_again_at_the_end(pbx: TestPbx) -> AsyncIterator[None]:
    """Around a test that stops a PBX of the session: it is started again however the
    test ends, for the tests after it."""
    try:
        yield
    finally:
        if not await asyncio.to_thread(pbx.is_running):
            await pbx.start_async()


def attempt_rows(pg_url: str) -> list[dict[str, Any]]:
    """Every attempt as the store has it, whichever host wrote it, in order."""
    with psycopg.connect(pg_url, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT attempt_no, host_id, state, result, call_uuid, start_time, end_time"
            " FROM attempts ORDER BY task_id, attempt_no"
        ).fetchall()


def last_heard_of(pg_url: str, host_id: str) -> tuple[datetime, int]:
    """A host's last heartbeat (the database's clock) and the longest call it said it
    could have."""
    with psycopg.connect(pg_url, row_factory=dict_row) as conn:
        row = conn.execute(
            "SELECT last_heartbeat, max_call_seconds FROM hosts WHERE host_id = %s", (host_id,)
        ).fetchone()
    assert row is not None
    return row["last_heartbeat"], row["max_call_seconds"]


def closings(daemon_log: str) -> int:
    """Attempts of gone hosts this daemon closed, by its log."""
    lines = [json.loads(line) for line in daemon_log.splitlines() if line.startswith("{")]
    return sum(
        line.get("closed", 0)
        for line in lines
        if line["event"] == "recovered the work of gone hosts"
    )


@pytest.mark.parametrize(
    ("gone_when", "attempts", "events"),
    [
        pytest.param(
            "B rings",
            [(1, "pbx-1", "interrupted"), (2, "pbx-2", "success")],
            ["before", "before_again", "success", "after"],
            id="B-rings",
        ),
        pytest.param(
            "A and B talk",
            [(1, "pbx-1", "success")],
            ["before", "success", "after"],
            id="A-and-B-talk",
        ),
    ],
)
async def test_a_whole_host_gone_has_its_attempt_closed_once_its_call_cannot_be_up(
    tmp_path: Path,
    testpbx: TestPbx,
    testpbx2: TestPbx,
    pg_url: str,
    session: aiohttp.ClientSession,
    gone_when: str,
    attempts: list[tuple[int, str, str]],
    events: list[str],
) -> None:
    # pbx-1's daemon is killed and its Asterisk stopped mid-call, for good. pbx-2 leaves
    # the attempt alone while its call could still be up (lease end + longest call +
    # slack), then closes it: "interrupted", retried on pbx-2 after the pause, when B
    # had not answered; a success, finished, when the bridge was stored.
    configs = two_hosts(tmp_path, (testpbx, testpbx2), pg_url, **SHORT_CALLS)
    monitors = [await AmiMonitor(testpbx).start(), await AmiMonitor(testpbx2).start()]
    receiver = await WebhookReceiver().start()
    daemons = []
    async with running_again_at_the_end(testpbx):
        try:
            first = await launch(configs[0], port_of(configs[0]), session)
            daemons.append(first)
            api = Api(session, first)
            await api.wait_ready()
            queue = await api.new_queue()
            [task] = await api.add_tasks(
                queue,
                a_task(A_NUMBER, B_NUMBER, receiver, try_count=2, try_again_pause=RETRY_PAUSE),
            )
            if gone_when == "B rings":
                b_rings = phone_report(tag_of(task))
                await monitors[0].wait_for(lambda ev: b_rings(ev) and ev["Number"] == B_NUMBER)
                sent = ["before"]
            else:
                await wait_webhook(receiver, "success")
                sent = ["before", "success"]
            await api.wait_outbox_empty()  # stored as sent: none of them goes again
            assert events_of(receiver, task) == sent

            await first.kill()
            await testpbx.stop_async()
            second = await launch(configs[1], port_of(configs[1]), session)
            daemons.append(second)
            other_api = Api(session, second)
            await other_api.wait_ready()

            # Shortly before the deadline: past lease end + the longest call, within
            # the slack.
            almost = (
                HOST_TIMEOUT + LONGEST_CALL.total_seconds() + CALL_END_SLACK.total_seconds() / 2
            )
            await poll(lambda: silent_for(pg_url, "pbx-1"), lambda s: s > almost, 90)
            kept = (await asyncio.to_thread(attempt_rows, pg_url))[0]
            held = await other_api.task(task)
            last_heartbeat, longest = await asyncio.to_thread(last_heard_of, pg_url, "pbx-1")

            done = await other_api.wait_finished(task, CALL_END_SLACK.total_seconds() + 60)
            await other_api.wait_outbox_empty()
            rows = await asyncio.to_thread(attempt_rows, pg_url)
        finally:
            for daemon in daemons:
                if daemon.process.returncode is None:
                    await daemon.stop()
            await receiver.stop()
            for monitor in monitors:
                await monitor.stop()

    # Still open (originating, or in_call if its A answer was stored), its task running.
    assert (kept["state"] != "ended", kept["end_time"], held["status"]) == (True, None, "executed")
    assert longest == LONGEST_CALL.total_seconds()
    deadline = last_heartbeat + timedelta(seconds=HOST_TIMEOUT) + LONGEST_CALL + CALL_END_SLACK
    assert parse_time(rows[0]["end_time"]) >= deadline.replace(microsecond=0)
    assert closings(other_api.log()) == 1
    assert [(r["attempt_no"], r["host_id"], r["result"]) for r in rows] == attempts
    if len(rows) == 2:  # the normal pause, from the attempt's closing
        pause = timedelta(seconds=RETRY_PAUSE)
        assert parse_time(rows[1]["start_time"]) >= parse_time(rows[0]["end_time"]) + pause
    assert (done["finish_result"], done["attempts_made"], done["cdr"]) == (
        "success",
        len(rows),
        rows[-1]["call_uuid"],
    ), other_api.log()
    for row in rows:
        assert a_dials(monitors, row["call_uuid"]) == 1, row
    rang = [m.rang(tag_of(task)) for m in monitors]
    assert rang == [[A_NUMBER, B_NUMBER], [A_NUMBER, B_NUMBER] if len(rows) == 2 else []]
    assert events_of(receiver, task) == events
    assert set(receiver.ids().values()) == {1}
