"""The operator console in a real headless Chromium, against the real daemon placing
real calls on the test PBX: sign in, the queues, a finished call's ladder, a waiting
task's reason, live calls, cancelling, and a second client who sees none of it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from tests.acceptance.browser import PHONE, Tab, console_tab, screenshot_dir
from tests.acceptance.conftest import TOKEN, free_port, launch
from tests.acceptance.lifecycle_helpers import Api, poll, utc_text, write_pbx_config
from tests.pbx import TestPbx
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.pbx

BETA_TOKEN = "console-beta-token"
# A 1105 rings 1 s and talks 5 s; B 1102 rings 1 s and talks 2 s, so B hangs up first.
CONNECTED = {"a_number": "1105", "b_number": "1102"}
# Both answer after 1 s and would talk for an hour: calls that stay live.
TALKING = {"a_number": "8101", "b_number": "8102"}
ALSO_TALKING = {"a_number": "8103", "b_number": "8104"}


@dataclass
class World:
    acme: Api
    beta: aiohttp.ClientSession
    url: str
    receiver: WebhookReceiver


@pytest.fixture
async def world(
    tmp_path: Path, session: aiohttp.ClientSession, testpbx: TestPbx
) -> AsyncIterator[World]:
    port = free_port()
    config = write_pbx_config(tmp_path, port, testpbx)
    # A second client, with a token of its own.
    text = config.read_text()
    text = text.replace(f'"{TOKEN}" = "acme"', f'"{TOKEN}" = "acme"\n"{BETA_TOKEN}" = "beta"')
    # The default profile's answer-rate guard on (every call here that ends is answered).
    config.write_text(text + "\n[calls.asr_guard]\nmin_ratio = 0.5\nmin_attempts = 1\n")
    daemon = await launch(config, port, session)
    receiver = await WebhookReceiver().start()
    beta = aiohttp.ClientSession(headers={"Authorization": f"Bearer {BETA_TOKEN}"})
    try:
        acme = Api(session, daemon)
        await acme.wait_ready()
        yield World(acme, beta, daemon.url, receiver)
    finally:
        await beta.close()
        await receiver.stop()
        await daemon.kill()


async def steps_of(tab: Tab, side: str) -> list[str]:
    """The kinds of the steps of the first attempt's legs on one side, leg by leg."""
    kinds: list[str] = await tab.page.eval_on_selector_all(
        f"ol.steps[aria-label^='Steps of the {side} leg'] li",
        "items => items.map(li => li.dataset.kind)",
    )
    return kinds


async def test_the_console_shows_queues_calls_and_reasons_only_to_their_client(
    world: World, tmp_path: Path
) -> None:
    acme, shots = world.acme, screenshot_dir(tmp_path)
    support = await acme.request(
        "POST", "/task_scheduler/", {"name": "support", "status": "on", "concurrent_task_limit": 5}
    )
    night = await acme.request("POST", "/task_scheduler/", {"name": "night shift"})
    spare = await acme.request("POST", "/task_scheduler/", {"name": "spare"})
    # Calling hours that open for one hour, ten days from now.
    opens = (datetime.now(UTC) + timedelta(days=10)).replace(minute=0, second=0, microsecond=0)
    hours = await acme.request(
        "POST",
        "/interval/",
        {
            "name": "later",
            "timezone": "UTC",
            "conditions": [
                {
                    "start_datetime": utc_text(opens),
                    "end_datetime": utc_text(opens + timedelta(hours=1)),
                }
            ],
        },
    )
    weekend = await acme.request(
        "POST", "/task_scheduler/", {"name": "weekend", "interval_id": hours["id"]}
    )
    hooks = {"url_success": world.receiver.url(), "url_after": world.receiver.url()}
    [connected] = await acme.add_tasks(support["id"], {"name": "order-4711", **CONNECTED, **hooks})
    [waiting] = await acme.add_tasks(night["id"], {"name": "order-4712", **CONNECTED})
    [outside_hours] = await acme.add_tasks(weekend["id"], {"name": "order-4716", **CONNECTED})
    [later] = await acme.add_tasks(
        support["id"], {"name": "order-4713", **CONNECTED, "start_time_utc": "2099-01-01 08:00"}
    )
    await acme.wait_finished(connected)
    await acme.wait_outbox_empty()
    talking, also_talking = await acme.add_tasks(
        support["id"],
        {"name": "order-4714", **TALKING},
        {"name": "order-4715", **ALSO_TALKING},
    )
    for task in (talking, also_talking):
        await poll(
            lambda task=task: acme.attempts(task), lambda a: bool(a and a[0]["bridged_time_gmt"])
        )
    async with world.beta.post(
        f"{world.url}/client/beta/task_scheduler/", json={"name": "beta's own"}
    ) as response:
        assert response.status == 201

    async with console_tab(tmp_path / "acme-profile", world.url) as tab:
        await tab.sign_in(TOKEN)
        rows = await tab.page.inner_text("main table")
        assert "support" in rows and "night shift" in rows and "beta's own" not in rows
        assert f"closed opens {utc_text(opens)} UTC" in rows
        guard = await tab.page.inner_text("#asr")
        assert "default profile" in guard and "clear" in guard
        assert "1 of 1 attempts (100%)" in guard
        await tab.page.screenshot(path=str(shots / "queues.png"))
        # The switch says its state in words and works from the keyboard.
        switch = tab.page.get_by_role("button", name=re.compile("Queue spare is off"))
        await switch.focus()
        await tab.page.keyboard.press("Space")
        await tab.page.wait_for_selector("#notice:text('switched on')")
        assert (await acme.request("GET", f"/task_scheduler/{spare['id']}"))["status"] == "on"

        # The finished call: A rang, answered, both legs bridged, hung up with a cause.
        await tab.open(f"#/task/{support['id']}/{connected['id']}", "ol.steps")
        legs = ["dialled", "ringing", "answered", "bridged", "hung_up"]
        assert await steps_of(tab, "A") == legs
        assert await steps_of(tab, "B") == legs
        page_text = await tab.page.inner_text("main")
        assert "finished: success" in page_text
        assert "hung up, cause 16" in page_text
        assert "B side" in page_text  # hung up first
        assert "post-dial delay not recorded" not in page_text
        webhooks = await tab.page.inner_text("main table")
        assert "success" in webhooks and "after" in webhooks and "delivered" in webhooks
        await tab.page.screenshot(path=str(shots / "task.png"), full_page=True)
        await tab.page.get_by_text("Raw AMI events").first.click()
        await tab.page.wait_for_selector("pre.events:text('Event: BridgeEnter')")

        # Waiting tasks say why.
        await tab.open(f"#/task/{night['id']}/{waiting['id']}", "#why")
        assert "its queue is switched off" in await tab.page.inner_text("#why")
        await tab.open(f"#/task/{support['id']}/{later['id']}", "#why")
        assert "waits for its start time, 2099-01-01 08:00:00 UTC" in await tab.page.inner_text(
            "#why"
        )
        # A task that has not started can be changed from its page.
        await tab.page.get_by_role("button", name="Edit task").click()
        await tab.page.get_by_label("Attempts in total").fill("3")
        await tab.page.get_by_label("Start time (UTC, YYYY-MM-DD HH:MM)").fill("2098-06-01 09:30")
        await tab.page.get_by_role("button", name="Save").click()
        await tab.page.wait_for_selector("#notice:text('changed')")
        await tab.page.wait_for_selector("#why:text('2098-06-01 09:30:00 UTC')")
        changed = await acme.task(later)
        assert (changed["try_count"], changed["start_time_utc"]) == (3, "2098-06-01 09:30:00")
        await tab.open(f"#/task/{weekend['id']}/{outside_hours['id']}", "#why")
        # Both reasons, the switch first.
        why = await tab.page.inner_text("#why")
        assert "its queue is switched off" in why
        assert f"calling hours closed until {utc_text(opens)} UTC" in why

        # Tasks of a queue: filtered by status, searched by number.
        await tab.open(f"#/queue/{support['id']}?status=finished", "main table")
        assert "order-4711" in await tab.page.inner_text("main table")
        assert "order-4713" not in await tab.page.inner_text("main table")
        await tab.open(f"#/queue/{support['id']}?q=8101", "main table")
        assert "order-4714" in await tab.page.inner_text("main table")

        # The live call, refreshed in place.
        await tab.open("#/live", "#live table")
        live = await tab.page.inner_text("#live")
        assert "connected" in live and f"#{talking['id']}" in live
        # It refreshes in place, and a keyboard user's focus stays where it was.
        link = tab.page.locator("#live a").first
        await link.focus()
        focused = await link.get_attribute("id")
        first_stamp = await tab.page.inner_text("#live-updated")
        await tab.page.wait_for_function(
            "stamp => document.querySelector('#live-updated').textContent !== stamp",
            arg=first_stamp,
        )
        assert await tab.page.evaluate("document.activeElement.id") == focused
        await tab.page.screenshot(path=str(shots / "live.png"), full_page=True)

        # Call history by number, by task and by time, typed into the search form.
        await tab.open("#/history", "#h-number")
        await tab.page.fill("#h-number", "1105")
        await tab.page.press("#h-number", "Enter")
        await tab.shown("#/history?number=1105", "main table")
        history = await tab.page.inner_text("main table")
        assert f"#{connected['id']}" in history and f"#{talking['id']}" not in history
        await tab.open(f"#/history?task_id={talking['id']}", "main table")
        assert f"#{talking['id']}" in await tab.page.inner_text("main table")
        await tab.open("#/history?since=2099-01-01T00:00", "main p")
        assert "No call matches." in await tab.page.inner_text("main")

        # Cancel the live call's task from its page: the call is hung up.
        await tab.open(f"#/task/{support['id']}/{talking['id']}", "#why")
        tab.page.once("dialog", lambda dialog: dialog.accept())
        await tab.page.get_by_role("button", name="Cancel task").click()
        cancelled = await acme.wait_finished(talking)
        assert "cancel" in cancelled["finish_comment"]
        await acme.cancel(also_talking)

        # On a phone: the task page fits the screen.
        await tab.page.set_viewport_size(PHONE)
        await tab.open(f"#/task/{support['id']}/{connected['id']}", "ol.steps")
        assert await tab.fits_its_width()
        await tab.page.screenshot(path=str(shots / "task-phone.png"), full_page=True)
        await tab.open("#/queues", "main table")
        await tab.page.screenshot(path=str(shots / "queues-phone.png"))
        assert tab.errors == []

    async with console_tab(tmp_path / "beta-profile", world.url) as tab:
        await tab.sign_in(BETA_TOKEN)
        queues = await tab.page.inner_text("main")
        assert "beta's own" in queues and "support" not in queues and "night shift" not in queues
        await tab.open("#/history", "main p")
        assert "No call matches." in await tab.page.inner_text("main")
        await tab.open("#/live", "#live p")
        assert "No call in progress." in await tab.page.inner_text("#live")
        # acme's task, by its address: the same "not found" as an id that does not exist.
        await tab.open(f"#/task/{support['id']}/{connected['id']}", "main [role=alert]")
        assert "Not found" in await tab.page.inner_text("main")
        assert "order-4711" not in await tab.page.content()
        assert all("404" in error for error in tab.errors), tab.errors
