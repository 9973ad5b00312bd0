"""Schemathesis against our own OpenAPI document: every operation, with a client token and
with the admin token, answers no 5xx and only what the document says (status codes,
content types, headers, bodies; problem+json for errors). Bounded and derandomized, so
CI runs the same cases every time in well under a minute."""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.app import ALL_ROUTES, create_app
from api.openapi import build_openapi
from daemon.models import (
    NUMBER_PATTERN,
    PRINTABLE_TEXT_PATTERN,
    SAFE_TEXT_PATTERN,
    QueueInput,
    TaskInput,
)
from daemon.services import open_services
from tests.integration.conftest import TOKEN_OF, settings_for, task

# The app serves the document it builds from the route table; building it here as well
# lets pytest list one test per operation (schemathesis's lazy `from_fixture` loader does
# not run under pytest 9.2). test_the_fuzzed_document_is_the_served_one ties the two.
DOCUMENT = build_openapi(ALL_ROUTES)
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20240301,
        "generation": {"deterministic": True},
        "checks": {
            # A schema-valid body may still be refused with a 422 for the rules JSON Schema
            # cannot state: "printable" as Unicode defines it, A numbers that must differ,
            # extension ids taken from the config, http(s)-only webhook URLs.
            "positive_data_acceptance": {"expected-statuses": ["2xx", "404", "409", "422"]},
        },
    }
)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)
FUZZ = settings(
    max_examples=12,
    derandomize=True,
    database=None,
    deadline=None,
    # A fixed small budget per operation is the point; slow/filtered generation is fine.
    suppress_health_check=list(HealthCheck),
)


@dataclass
class LiveApi:
    """The API on a real aiohttp server on 127.0.0.1. It runs its own event loop in a
    thread: schemathesis calls it synchronously, over a real socket."""

    url: str
    session: requests.Session

    def call(self, method: str, path: str, client: str = "acme", **kw: Any) -> Any:
        response = self.session.request(
            method,
            self.url + path,
            headers={"Authorization": f"Bearer {TOKEN_OF[client]}"},
            timeout=10,
            **kw,
        )
        assert response.ok, response.text
        return response.json()


@dataclass
class Seeded:
    """A queue of acme with two waiting tasks, fresh for each test."""

    queue_id: int
    task_id: int
    cases: Iterator[int] = field(default_factory=itertools.count)


def _serve(tmp_path: Path, box: dict[str, Any], ready: threading.Event) -> None:
    async def main() -> None:
        services = await open_services(settings_for(tmp_path))
        runner = web.AppRunner(create_app(services))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        stop = asyncio.Event()
        box.update(port=runner.addresses[0][1], loop=asyncio.get_running_loop(), stop=stop)
        ready.set()
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
            await services.db.close()

    asyncio.run(main())


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    box: dict[str, Any] = {}
    ready = threading.Event()
    thread = threading.Thread(target=_serve, args=(tmp_path_factory.mktemp("fuzz"), box, ready))
    thread.start()
    assert ready.wait(30), "the API did not start"
    with requests.Session() as session:
        yield LiveApi(f"http://127.0.0.1:{box['port']}", session)
    box["loop"].call_soon_threadsafe(box["stop"].set)
    thread.join(30)
    assert not thread.is_alive()


@pytest.fixture
def seeded(live_api: LiveApi) -> Seeded:
    queue = live_api.call("POST", "/client/acme/task_scheduler/", json={"name": "seed"})
    made = live_api.call(
        "POST",
        f"/client/acme/task_scheduler/{queue['id']}/tasks/",
        json={"tasks": [task(), task()]},
    )
    return Seeded(queue["id"], made["tasks"][0]["id"])


def _is_id(value: object) -> bool:
    # The coverage phase sends path values as the strings it will put in the URL.
    return type(value) is int or (isinstance(value, str) and value.isascii() and value.isdigit())


def _aim(case: schemathesis.Case, seeded: Seeded) -> None:
    """Point every other case at the seeded queue and task, so that fuzzed bodies and
    queries reach the code behind a found resource instead of stopping at a 404. Only
    well-typed values are replaced: a negative case keeps its broken path."""
    params = case.path_parameters
    if not params or next(seeded.cases) % 2:
        return
    if isinstance(params.get("client_id"), str):
        params["client_id"] = "acme"
    for name, value in (("scheduler_id", seeded.queue_id), ("task_id", seeded.task_id)):
        if _is_id(params.get(name)):
            params[name] = value


def _call_and_validate(
    case: schemathesis.Case, live_api: LiveApi, seeded: Seeded, who: str
) -> None:
    _aim(case, seeded)
    # /readyz answers 503 by design here (no AMI connection); the document says so.
    ready = case.path == "/readyz"
    excluded = [not_a_server_error, positive_data_acceptance] if ready else []
    case.call_and_validate(
        base_url=live_api.url,
        session=live_api.session,
        headers={"Authorization": f"Bearer {TOKEN_OF[who]}"},
        excluded_checks=excluded,
    )


@settings(max_examples=300, derandomize=True, database=None)
@given(st.text() | st.from_regex(NUMBER_PATTERN, fullmatch=True))
def test_the_documented_patterns_say_what_the_validators_do(text: str) -> None:
    # Numbers: exactly the same rule. Text: the pattern names every refused character
    # class it can; the validator also refuses what is not printable in Unicode.
    valid_number = _accepts(lambda: TaskInput(a_number=text, b_number="1"))
    assert valid_number == bool(re.fullmatch(NUMBER_PATTERN, text))
    if _accepts(lambda: QueueInput(name=text or "x")):
        assert re.fullmatch(PRINTABLE_TEXT_PATTERN, text)
    caller_id_name = {"caller_id_name": text[:80]}
    if _accepts(lambda: TaskInput(a_number="1", b_number="1", callback_params=caller_id_name)):
        assert re.fullmatch(SAFE_TEXT_PATTERN, text[:80])


def _accepts(build: Callable[[], object]) -> bool:
    try:
        build()
    except ValidationError:
        return False
    return True


def test_the_fuzzed_document_is_the_served_one(live_api: LiveApi) -> None:
    served = requests.get(f"{live_api.url}/openapi.json", timeout=10)

    assert served.json() == DOCUMENT


@schema.parametrize()
@FUZZ
def test_every_operation_with_a_client_token(
    case: schemathesis.Case, live_api: LiveApi, seeded: Seeded
) -> None:
    _call_and_validate(case, live_api, seeded, "acme")


@schema.parametrize()
@FUZZ
def test_every_operation_with_the_admin_token(
    case: schemathesis.Case, live_api: LiveApi, seeded: Seeded
) -> None:
    _call_and_validate(case, live_api, seeded, "*")
