"""Calling hours and the answer-rate guard through the real `callbackd run` on the real
test PBX: what waits rings nobody and fires no webhook, what opens starts, and the
tests' own AMI connection sees what the PBX really did."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest

from tests.acceptance.lifecycle_helpers import (
    AmiMonitor,
    Api,
    a_task,
    parse_utc,
    poll,
    utc_text,
)
from tests.acceptance.pbx_fixtures import Callbackd, tag_of
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.pbx

GUARD = "{ min_ratio = 0.5, min_attempts = 3, window = 120, probe_interval = 3 }"


def window(start: datetime, seconds: float) -> dict[str, str]:
    """A condition open from `start` for `seconds`, in an interval kept in UTC."""
    end = start + timedelta(seconds=seconds)
    return {"start_datetime": utc_text(start), "end_datetime": utc_text(end)}


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


async def new_interval(api: Api, *conditions: dict[str, str]) -> int:
    body = {"name": "hours", "timezone": "UTC", "conditions": list(conditions)}
    return int((await api.request("POST", "/interval/", body))["id"])


async def queue_on(api: Api, interval_id: int) -> int:
    body = {"name": "hours", "status": "on", "interval_id": interval_id}
    return int((await api.request("POST", "/task_scheduler/", body))["id"])


async def readyz(api: Api) -> dict[str, Any]:
    async with api.session.get(api.url + "/readyz") as response:
        body: dict[str, Any] = await response.json()
        return body


async def test_a_closed_interval_holds_a_task_until_a_put_opens_it(
    callbackd: Callbackd, receiver: WebhookReceiver, monitor: AmiMonitor
) -> None:
    api = await callbackd()
    tomorrow = now() + timedelta(days=1)
    interval_id = await new_interval(api, window(tomorrow, 3600))
    queue = await queue_on(api, interval_id)
    assert (await api.request("GET", f"/task_scheduler/{queue}"))["next_open_utc"] == utc_text(
        tomorrow
    )

    [task] = await api.add_tasks(queue, a_task("1003", "1101", receiver))
    held = await api.wait_task(task, lambda t: t["status"] == "delayed_interval")

    assert (held["next_attempt_utc"], held["attempts_made"]) == (utc_text(tomorrow), 0)
    assert "closed until" in held["finish_comment"]
    assert monitor.rang(tag_of(task)) == []
    assert receiver.delivered() == []

    await api.request("PUT", f"/interval/{interval_id}", {"conditions": []})
    done = await api.wait_finished(task)

    assert done["finish_result"] == "success"
    assert sorted(monitor.rang(tag_of(task))) == ["1003", "1101"]
    [attempt] = await api.attempts(task)
    assert (attempt["interval_zone"], attempt["interval_zone_reason"]) == (
        "UTC",
        "the interval's zone",
    )


async def test_a_busy_a_whose_pause_ends_after_closing_waits_for_the_next_opening(
    callbackd: Callbackd, receiver: WebhookReceiver, monitor: AmiMonitor
) -> None:
    api = await callbackd()
    opened = now()
    tomorrow = opened + timedelta(days=1)
    # open for 8 seconds now, then tomorrow; the pause after the busy A ends in between
    interval_id = await new_interval(api, window(opened, 8), window(tomorrow, 3600))
    queue = await queue_on(api, interval_id)

    [task] = await api.add_tasks(
        queue, a_task("2001", "1101", receiver, try_count=2, try_again_pause=10)
    )
    held = await api.wait_task(task, lambda t: t["status"] == "delayed_interval", timeout=40)

    assert (held["attempts_made"], held["next_attempt_utc"]) == (1, utc_text(tomorrow))
    [attempt] = await api.attempts(task)
    assert attempt["result"] == "a_busy"
    assert parse_utc(attempt["end_time_gmt"]) < opened + timedelta(seconds=9)
    assert monitor.rang(tag_of(task)) == ["2001"]  # once: the retry waits for tomorrow


async def test_congested_numbers_trip_the_answer_rate_guard_until_probes_answer(
    callbackd: Callbackd, receiver: WebhookReceiver, monitor: AmiMonitor
) -> None:
    api = await callbackd(asr_guard=GUARD)
    queue = await api.new_queue()
    trips = 'callbackd_asr_guard_trips_total{profile="default"}'
    clears = 'callbackd_asr_guard_clears_total{profile="default"}'

    failing = await api.add_tasks(queue, *(a_task(f"400{i}", "1101", receiver) for i in range(3)))
    for task in failing:
        assert (await api.wait_finished(task))["finish_comment"] == "A congestion"
    await poll(lambda: api.metric(trips), lambda n: n == 1)
    assert (await readyz(api))["asr_guard"]["default"]["tripped"] is True

    answering = await api.add_tasks(queue, *(a_task("1003", "1101", receiver) for _ in range(5)))
    held = await api.wait_task(answering[-1], lambda t: t["status"] == "delayed_asr")
    assert held["finish_comment"] == (
        "held by the answer-rate guard of the default profile: 0 of 3 attempts answered, below 50%"
    )
    assert held["attempts_made"] == 0
    done = [await api.wait_finished(task, timeout=60) for task in answering]

    assert [t["finish_result"] for t in done] == ["success"] * 5
    attempts = [(await api.attempts(task))[0] for task in answering]
    starts = sorted(parse_utc(attempt["start_time_gmt"]) for attempt in attempts)
    # three probes, one every probe_interval, bring 3 of 6 back to 50 %: then the rest
    assert all(b - a >= timedelta(seconds=2) for a, b in pairwise(starts[:3]))
    assert await api.metric(clears) == 1
    assert (await readyz(api))["asr_guard"]["default"]["tripped"] is False
    # held tasks fired no webhook while they waited: one "before" each, when they started
    befores = [
        r.json()["task"]["id"] for r in receiver.delivered() if r.json()["event"] == "before"
    ]
    assert sorted(befores) == sorted(t["id"] for t in [*failing, *answering])
