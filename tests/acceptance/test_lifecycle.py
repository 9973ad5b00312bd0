"""A task's whole life through the real `callbackd run` (docs/api.md, docs/lifecycle.md,
docs/call-flow.md, docs/webhooks.md): HTTP in, the real test PBX ringing the test
phones, signed webhooks to a real receiver, and the tests' own AMI connection checking
what the PBX really did (who rang, how many calls, which channels are left),
independent of what the daemon reports."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ami.originate import REQUIRED_CONTEXTS
from ami.outcome import dial_side
from tests.acceptance.conftest import TOKEN, callbackd_command
from tests.acceptance.lifecycle_helpers import (
    POLL,
    SECRET,
    AmiMonitor,
    a_task,
    fresh_busy_once_number,
    parse_utc,
    phone_report,
    poll,
    seconds_from_now,
    wait_webhook,
)
from tests.acceptance.pbx_fixtures import Callbackd, tag_of
from tests.pbx import AmiMessage, TestPbx, ami_action
from tests.webhook_receiver import WebhookReceiver, verify_signature

pytestmark = pytest.mark.pbx


def event_names(receiver: WebhookReceiver) -> list[str]:
    """The webhooks delivered, in order, once each (receivers de-duplicate by id)."""
    return [r.json()["event"] for r in receiver.delivered()]


def assert_signed_once_each(receiver: WebhookReceiver) -> None:
    delivered = receiver.delivered()
    assert all(verify_signature(SECRET, r) for r in receiver.requests)
    assert all(r.path == "/" + r.json()["event"] for r in delivered)
    assert len({r.webhook_id for r in delivered}) == len(delivered)
    assert set(receiver.ids()) == {r.webhook_id for r in delivered}


def is_call_event(call_uuid: str, event: str) -> Callable[[AmiMessage], bool]:
    return lambda ev: ev.get("Event") == event and ev.get("Uniqueid") == call_uuid


def is_a_dial(call_uuid: str) -> Callable[[AmiMessage], bool]:
    """A DialBegin that rings an A phone of the call, in either call shape."""
    return lambda ev: ev.get("Event") == "DialBegin" and dial_side(ev, call_uuid) == "A"


def by_attempt(attempts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(attempts, key=lambda a: int(a["attempt"]))


async def test_connected_call_finishes_success_with_its_history_and_signed_webhooks(
    callbackd: Callbackd, receiver: WebhookReceiver, monitor: AmiMonitor
) -> None:
    api = await callbackd()
    queue = await api.new_queue()

    [task] = await api.add_tasks(queue, a_task("1003", "1101", receiver))
    done = await api.wait_finished(task)

    assert (done["finish_result"], done["finish_comment"]) == ("success", "A and B connected")
    assert done["attempts_made"] == 1
    call = await api.call(done["cdr"], events=True)
    assert (call["task_id"], call["result"], call["state"]) == (task["id"], "success", "ended")
    assert call["answered_a_number"] == "1003"
    assert (call["a_dial_status"], call["b_dial_status"]) == ("ANSWER", "ANSWER")
    assert call["bridged_time_gmt"] is not None
    assert call["end_time_gmt"] is not None
    names = {ev["Event"] for ev in call["events"]}
    assert {"OriginateResponse", "DialBegin", "DialEnd", "BridgeEnter", "Hangup"} <= names
    assert (await api.call(done["cdr"])).get("events") is None  # only on request
    assert sorted(monitor.rang(tag_of(task))) == ["1003", "1101"]

    await api.wait_outbox_empty()
    bodies = [r.json() for r in receiver.delivered()]
    assert event_names(receiver) == ["before", "success", "after"]
    assert_signed_once_each(receiver)
    assert [b["task"]["id"] for b in bodies] == [task["id"]] * 3
    assert bodies[1]["attempt"]["call_uuid"] == done["cdr"]
    assert bodies[2]["task"]["finish_result"] == "success"


async def test_busy_a_is_retried_after_the_pause_and_succeeds_on_attempt_two(
    callbackd: Callbackd, receiver: WebhookReceiver, monitor: AmiMonitor, testpbx: TestPbx
) -> None:
    busy_once = await fresh_busy_once_number(testpbx)
    api = await callbackd()
    queue = await api.new_queue()

    [task] = await api.add_tasks(
        queue, a_task(busy_once, "1101", receiver, try_count=2, try_again_pause=2)
    )
    done = await api.wait_finished(task)

    assert (done["finish_result"], done["attempts_made"]) == ("success", 2)
    first, second = by_attempt(await api.attempts(task))
    assert (first["result"], first["a_dial_status"]) == ("a_busy", "BUSY")
    assert second["result"] == "success"
    assert second["call_uuid"] == done["cdr"] != first["call_uuid"]
    pause = timedelta(seconds=2)
    assert parse_utc(second["start_time_gmt"]) >= parse_utc(first["end_time_gmt"]) + pause
    assert monitor.rang(tag_of(task)) == [busy_once, busy_once, "1101"]

    await api.wait_outbox_empty()
    assert event_names(receiver) == ["before", "before_again", "success", "after"]
    assert_signed_once_each(receiver)


async def test_b_that_never_answers_uses_every_attempt_then_the_task_fails(
    callbackd: Callbackd, receiver: WebhookReceiver, monitor: AmiMonitor
) -> None:
    api = await callbackd(b_ring_timeout=2)
    queue = await api.new_queue()

    # A answers at once and stays on the line longer than B rings.
    [task] = await api.add_tasks(
        queue, a_task("1006", "3000", receiver, try_count=3, try_again_pause=1)
    )
    done = await api.wait_finished(task)

    assert (done["finish_result"], done["finish_comment"]) == ("failed", "B did not answer")
    assert done["attempts_made"] == 3
    attempts = by_attempt(await api.attempts(task))
    assert [a["result"] for a in attempts] == ["b_no_answer"] * 3
    assert [a["b_dial_status"] for a in attempts] == ["NOANSWER"] * 3
    assert Counter(monitor.rang(tag_of(task))) == {"1006": 3, "3000": 3}
    await api.wait_outbox_empty()
    assert event_names(receiver) == ["before", "before_again", "before_again", "after"]


async def test_caller_budget_ends_the_task_when_a_never_answers(
    callbackd: Callbackd, receiver: WebhookReceiver, monitor: AmiMonitor
) -> None:
    api = await callbackd(a_ring_timeout=2)
    queue = await api.new_queue()

    [task] = await api.add_tasks(
        queue,
        a_task("3000", "1101", receiver, try_count=5, try_count_caller=2, try_again_pause=1),
    )
    done = await api.wait_finished(task)

    assert (done["finish_result"], done["finish_comment"]) == ("failed", "A did not answer")
    assert done["attempts_made"] == 2
    attempts = by_attempt(await api.attempts(task))
    assert [a["result"] for a in attempts] == ["a_no_answer"] * 2
    assert monitor.rang(tag_of(task)) == ["3000", "3000"]  # B never rang
    await api.wait_outbox_empty()
    assert event_names(receiver) == ["before", "before_again", "after"]


async def test_a_future_start_time_is_honoured(
    callbackd: Callbackd, receiver: WebhookReceiver, monitor: AmiMonitor
) -> None:
    api = await callbackd()
    queue = await api.new_queue()
    start = seconds_from_now(4)

    [task] = await api.add_tasks(queue, a_task("1003", "1101", receiver, start_time_utc=start))

    assert (task["status"], task["next_attempt_utc"]) == ("scheduled", start)
    await monitor.wait_for(phone_report(tag_of(task)))
    assert datetime.now(UTC) >= parse_utc(start), "a phone rang before the start time"
    done = await api.wait_finished(task)
    assert done["finish_result"] == "success"
    [attempt] = await api.attempts(task)
    assert attempt["start_time_gmt"] >= start


async def test_a_queue_that_is_off_rings_nobody_until_switched_on(
    callbackd: Callbackd, receiver: WebhookReceiver, monitor: AmiMonitor
) -> None:
    api = await callbackd()
    off_queue = await api.new_queue(status="off")
    on_queue = await api.new_queue(status="on")

    [waiting] = await api.add_tasks(off_queue, a_task("1003", "1101", receiver))
    # Due later than `waiting`: once it has rung and finished, the scheduler has passed
    # over `waiting` (oldest due first) because its queue is off.
    [later] = await api.add_tasks(on_queue, a_task("1003", "1101", receiver))
    assert (await api.wait_finished(later))["finish_result"] == "success"
    assert sorted(monitor.rang(tag_of(later))) == ["1003", "1101"]

    assert monitor.rang(tag_of(waiting)) == []
    held = await api.task(waiting)
    assert (held["status"], held["cdr"], held["attempts_made"]) == ("scheduled", "", 0)
    assert await api.calls_of(waiting) == []

    await api.switch_queue(off_queue, "on")
    await monitor.wait_for(phone_report(tag_of(waiting)))
    assert (await api.wait_finished(waiting))["finish_result"] == "success"
    assert sorted(monitor.rang(tag_of(waiting))) == ["1003", "1101"]


async def test_queue_limit_holds_on_the_pbx(
    callbackd: Callbackd, receiver: WebhookReceiver, monitor: AmiMonitor
) -> None:
    api = await callbackd()
    queue = await api.new_queue(limit=2)
    tasks = await api.add_tasks(queue, *(a_task("1002", "1101", receiver) for _ in range(6)))

    # The daemon's own view, polled while they run: never more than 2 executed, the
    # others wait as delayed_concurrent_task.
    seen: list[Counter[str]] = []

    def all_finished(listed: list[dict[str, Any]]) -> bool:
        seen.append(Counter(t["status"] for t in listed))
        return seen[-1]["finished"] == len(tasks)

    tasks_url = f"/task_scheduler/{queue}/tasks/"
    finished = await poll(lambda: api.request("GET", tasks_url), all_finished, 60)

    assert [t["finish_result"] for t in finished] == ["success"] * 6
    calls = {t["cdr"] for t in finished}
    assert len(calls) == 6
    await monitor.wait_until(
        lambda: all(monitor.of_call(c) and not monitor.open_channels(c) for c in calls)
    )
    assert monitor.most_calls_at_once(calls) == 2
    assert max(statuses["executed"] for statuses in seen) <= 2
    assert any(statuses["delayed_concurrent_task"] for statuses in seen)


async def test_cancel_while_a_rings_hangs_up_the_call_and_reports_after(
    callbackd: Callbackd, receiver: WebhookReceiver, monitor: AmiMonitor, testpbx: TestPbx
) -> None:
    api = await callbackd(a_ring_timeout=60)
    queue = await api.new_queue()
    [task] = await api.add_tasks(queue, a_task("3000", "1101", receiver))
    await monitor.wait_for(phone_report(tag_of(task)))  # A rings

    cancelled = await api.cancel(task)

    assert cancelled["status"] == "finished"
    assert (cancelled["finish_result"], cancelled["finish_comment"]) == ("failed", "cancelled")
    call_uuid = cancelled["cdr"]
    assert call_uuid
    await monitor.wait_until(lambda: not monitor.open_channels(call_uuid), timeout=10)
    assert monitor.of_call(call_uuid)
    channels = await ami_action(testpbx, "CoreShowChannels")
    assert not [ev for ev in channels if ev.get("Linkedid") == call_uuid]
    assert monitor.rang(tag_of(task)) == ["3000"]

    # The hang-up ends the attempt with what its events show; the task stays cancelled
    # and its `after` webhook is not sent a second time.
    ended = await poll(lambda: api.attempts(task), lambda a: a[0]["state"] == "ended")
    assert ended[0]["call_uuid"] == call_uuid
    assert (await api.task(task)) == cancelled
    await api.wait_outbox_empty()
    assert event_names(receiver) == ["before", "after"]
    assert receiver.delivered()[-1].json()["task"]["finish_comment"] == "cancelled"
    assert_signed_once_each(receiver)


async def test_cancel_while_a_and_b_talk_reports_after_once_the_call_has_ended(
    callbackd: Callbackd, receiver: WebhookReceiver, monitor: AmiMonitor, tmp_path: Path
) -> None:
    api = await callbackd()
    queue = await api.new_queue()
    [task] = await api.add_tasks(queue, a_task("1099", "8000", receiver))  # talks for long
    await wait_webhook(receiver, "success")

    cancelled = await api.cancel(task)

    assert (cancelled["status"], cancelled["finish_result"]) == ("finished", "failed")
    assert cancelled["finish_comment"] == "cancelled"
    call_uuid = cancelled["cdr"]
    await monitor.wait_until(lambda: not monitor.open_channels(call_uuid), timeout=10)
    after = await wait_webhook(receiver, "after")
    attempt = after["attempt"]
    assert (attempt["call_uuid"], attempt["state"], attempt["result"]) == (
        call_uuid,
        "ended",
        "success",
    )
    assert attempt["end_time_gmt"] is not None and attempt["bridged_duration"] is not None
    assert attempt["cancel_time_gmt"] is not None
    assert after["task"]["finish_comment"] == "cancelled"
    await api.wait_outbox_empty()
    assert event_names(receiver) == ["before", "success", "after"]
    logged = [json.loads(line) for line in api.log().splitlines() if line.startswith("{")]
    [line] = [x for x in logged if x["event"] == "task cancelled"]
    assert (line["task_id"], line["call_hung_up"]) == (task["id"], True)
    timeline = await call_timeline(tmp_path, str(task["id"]))
    assert f"cancelled {attempt['cancel_time_gmt']}" in timeline
    assert "the task was cancelled at" in timeline


async def call_timeline(directory: Path, ident: str) -> str:
    """What `callbackd call` prints for `ident`, from the daemon's store."""
    process = await asyncio.create_subprocess_exec(
        *callbackd_command(),
        "call",
        ident,
        "--config",
        str(directory / "callbackd.toml"),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    assert process.returncode == 0
    return out.decode()


async def test_a_dialplan_removed_while_the_daemon_runs_uses_no_try_and_calls_resume(
    callbackd: Callbackd, receiver: WebhookReceiver, testpbx: TestPbx, tmp_path: Path
) -> None:
    # As an operator's `dialplan reload` with a broken include would leave the PBX.
    api = await callbackd()
    queue = await api.new_queue()
    try:
        for context in REQUIRED_CONTEXTS:
            testpbx.cli(f"dialplan remove context {context}")
        [task] = await api.add_tasks(queue, a_task("1020", "1101", receiver, try_count=1))

        await poll(api.readyz, lambda status: status == 503)
        async with api.session.get(api.url + "/readyz") as response:
            readiness = await response.json()
        assert "dialplan" in readiness["ami"]
        waiting = await api.task(task)
        assert (waiting["status"], waiting["attempts_made"]) == ("scheduled", 0)
        assert await api.attempts(task) == []
        timeline = await call_timeline(tmp_path, str(task["id"]))
        assert "the PBX refused the Originate (Extension does not exist.)" in timeline
    finally:
        testpbx.cli("dialplan reload")  # the operator fixes the include

    done = await api.wait_finished(task)
    assert (done["finish_result"], done["attempts_made"]) == ("success", 1)
    assert await api.readyz() == 200
    await api.wait_outbox_empty()
    assert event_names(receiver) == ["before", "success", "after"]


async def test_kill_9_while_a_and_b_talk_follows_the_call_and_rings_nobody_twice(
    callbackd: Callbackd, receiver: WebhookReceiver, monitor: AmiMonitor
) -> None:
    api = await callbackd()
    queue = await api.new_queue()
    [task] = await api.add_tasks(queue, a_task("1012", "1112", receiver))
    await wait_webhook(receiver, "success")  # bridged: A and B talk for ~12 s
    call_uuid = (await api.task(task))["cdr"]

    await api.daemon.kill()
    api = await callbackd()
    assert monitor.open_channels(call_uuid), "the call ended before the daemon was back"

    done = await api.wait_finished(task)
    assert (done["finish_result"], done["attempts_made"], done["cdr"]) == (
        "success",
        1,
        call_uuid,
    )
    [attempt] = await api.attempts(task)
    assert attempt["state"] == "ended"
    assert attempt["bridged_time_gmt"] is not None
    assert attempt["end_time_gmt"] is not None
    # What the events said of the legs before the kill is kept, the causes of the end too.
    assert (attempt["a_dial_status"], attempt["b_dial_status"]) == ("ANSWER", "ANSWER")
    assert (attempt["a_hangup_cause"], attempt["b_hangup_cause"]) == (16, 16)
    assert sorted(monitor.rang(tag_of(task))) == ["1012", "1112"]
    assert len(monitor.matching(is_call_event(call_uuid, "OriginateResponse"))) == 1
    assert len(monitor.matching(is_a_dial(call_uuid))) == 1
    await api.wait_outbox_empty()
    assert event_names(receiver) == ["before", "success", "after"]
    assert_signed_once_each(receiver)


async def test_asterisk_restart_mid_call_closes_the_attempt_and_the_daemon_recovers(
    callbackd: Callbackd, receiver: WebhookReceiver, testpbx: TestPbx
) -> None:
    api = await callbackd()
    queue = await api.new_queue()
    [task] = await api.add_tasks(queue, a_task("8000", "8000", receiver))  # talk for an hour
    await wait_webhook(receiver, "success")

    readiness: list[int] = []

    async def watch_readiness() -> None:
        while True:
            readiness.append(await api.readyz())
            await asyncio.sleep(POLL)

    watcher = asyncio.create_task(watch_readiness())
    try:
        await testpbx.restart()
        await api.wait_ready(timeout=60)  # by itself: nobody touches the daemon
    finally:
        watcher.cancel()
    assert 503 in readiness, "the daemon never noticed that Asterisk was gone"

    done = await api.wait_finished(task, timeout=90)
    assert done["finish_result"] == "success"  # A and B were connected before the cut
    [attempt] = await api.attempts(task)
    assert attempt["state"] == "ended"
    assert attempt["end_time_gmt"] is not None
    [follow_up] = await api.add_tasks(queue, a_task("1003", "1101", receiver))
    follow_up = await api.wait_finished(follow_up)
    assert follow_up["finish_result"] == "success", (follow_up, api.log())


async def test_a_full_call_moves_the_metrics_and_logs_json_without_secrets(
    callbackd: Callbackd, receiver: WebhookReceiver, testpbx: TestPbx
) -> None:
    api = await callbackd()
    queue = await api.new_queue()

    [task] = await api.add_tasks(queue, a_task("1003", "1101", receiver))
    done = await api.wait_finished(task)
    await api.wait_outbox_empty()

    assert done["finish_result"] == "success"
    async with api.session.get(api.url + "/metrics") as response:
        metrics = await response.text()
    assert 'callbackd_attempts_total{outcome="success"} 1.0' in metrics
    assert "callbackd_dispatch_latency_seconds_count 1.0" in metrics
    assert await api.metric("callbackd_ami_connected") == 1
    assert await api.metric("callbackd_ami_events_received_total") >= 15
    assert await api.metric("callbackd_webhook_deliveries_total") == 3

    lines = [json.loads(line) for line in api.log().splitlines() if line.strip()]
    about_the_call = [line for line in lines if line.get("call_uuid") == done["cdr"]]
    # At info: the start and the end, which tells what happened.
    assert [line["event"] for line in about_the_call] == ["originate sent", "attempt ended"]
    assert about_the_call[-1]["result"] == "success"
    assert about_the_call[-1]["answered_a_number"] == "1003"
    assert all(line["task_id"] == task["id"] and line["attempt"] == 1 for line in about_the_call)
    for secret in (testpbx.secret, TOKEN, SECRET, SECRET.removeprefix("whsec_")):
        assert secret not in api.log()
