"""Operations endpoints (docs/api.md), routing errors and CORS."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

from daemon.asr import GuardState
from tests.integration.conftest import Api, ApiFactory, assert_problem, task


async def test_healthz_answers_without_a_token(api: Api) -> None:
    response = await api.request("GET", "/healthz", client=None)

    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_names_ami_while_no_call_engine_runs(api: Api) -> None:
    response = await api.request("GET", "/readyz", client=None)

    assert response.status == 503
    body = await response.json()
    assert body["ready"] is False
    assert body["store"] == "ok"
    assert body["ami"] != "ok"


@dataclass
class AmiSeen:
    """What the call engine tells /readyz about AMI."""

    ready: bool
    last_error: str | None
    logged_in: bool = True


@pytest.mark.parametrize(
    ("ami", "status", "body"),
    [
        (AmiSeen(ready=True, last_error=None), 200, {"ready": True, "ami": "ok"}),
        (
            # Logged in, but no call can be placed: the body says why.
            AmiSeen(ready=False, last_error="dialplan context(s) callbackd-b not loaded"),
            503,
            {"ready": False, "ami": "dialplan context(s) callbackd-b not loaded"},
        ),
    ],
)
async def test_readyz_is_ready_only_when_calls_can_be_placed(
    api: Api, ami: AmiSeen, status: int, body: dict[str, Any]
) -> None:
    api.services.ami_status = ami

    response = await api.request("GET", "/readyz", client=None)

    assert response.status == status
    assert await response.json() == {"store": "ok", "asr_guard": {}, **body}


@dataclass
class GuardsSeen:
    """What the scheduler's answer-rate guards tell /readyz."""

    def states(self) -> dict[int | None, GuardState]:
        return {
            None: GuardState(False, 40, 20, 0.3, 30),
            101: GuardState(True, 35, 3, 0.3, 30),
        }


async def test_readyz_shows_each_answer_rate_guard_and_stays_ready(api: Api) -> None:
    api.services.ami_status = AmiSeen(ready=True, last_error=None)
    api.services.asr = GuardsSeen()

    response = await api.request("GET", "/readyz", client=None)

    assert response.status == 200
    guards = (await response.json())["asr_guard"]
    assert guards["default"] == {
        "tripped": False,
        "attempts": 40,
        "answered": 20,
        "ratio": 0.5,
        "min_ratio": 0.3,
        "min_attempts": 30,
    }
    assert (guards["101"]["tripped"], guards["101"]["answered"]) == (True, 3)


async def test_metrics_are_prometheus_text_with_task_counts(
    api: Api, queue: dict[str, Any]
) -> None:
    await api.add_tasks(queue["id"], [task(), task()])

    response = await api.request("GET", "/metrics", client=None)

    assert response.status == 200
    assert response.content_type == "text/plain"
    text = await response.text()
    assert "# TYPE callbackd_tasks gauge" in text
    assert 'callbackd_tasks{status="scheduled"} 2.0' in text
    assert "callbackd_ami_connected 0.0" in text


async def test_openapi_document_holds_every_route_of_the_app(api: Api) -> None:
    document = await api.ok("GET", "/openapi.json", client=None)

    assert document["openapi"].startswith("3.1")
    assert api.http.app is not None
    registered = set()
    for route in api.http.app.router.routes():
        if route.method in ("HEAD", "OPTIONS") or route.resource is None:
            continue
        info = route.resource.get_info()
        registered.add((info.get("formatter") or info["path"], route.method.lower()))
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert len(registered) >= 16
    assert registered <= documented


async def test_openapi_describes_the_task_input_and_problems(api: Api) -> None:
    document = await api.ok("GET", "/openapi.json", client=None)

    schemas = document["components"]["schemas"]
    assert "a_number" in schemas["TaskInput"]["properties"]
    assert "ProblemDetails" in schemas
    add = document["paths"]["/client/{client_id}/task_scheduler/{scheduler_id}/tasks/"]["post"]
    assert {"201", "401", "422"} <= add["responses"].keys()


# Any reference to another host: a scheme-qualified or protocol-relative URL.
EXTERNAL_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://|[\"'(]//", re.I)


async def test_docs_page_and_its_assets_are_served_from_the_package(api: Api) -> None:
    page = await api.request("GET", "/docs", client=None)
    html = await page.text()
    assets = re.findall(r'(?:src|href)="(docs/[^"]+)"', html)

    assert page.status == 200
    assert page.content_type == "text/html"
    assert sorted(assets) == ["docs/docs.css", "docs/docs.js"]
    assert "'self'" in page.headers["Content-Security-Policy"]
    for asset, content_type in zip(sorted(assets), ["text/css", "text/javascript"], strict=True):
        response = await api.request("GET", "/" + asset, client=None)
        text = await response.text()
        assert (response.status, response.content_type) == (200, content_type)
        assert EXTERNAL_URL.search(text) is None, asset
    assert EXTERNAL_URL.search(html) is None
    # The page renders the document this daemon serves, from this daemon.
    script = await (await api.request("GET", "/docs/docs.js", client=None)).text()
    assert 'fetch("openapi.json")' in script


async def test_unknown_path_and_wrong_method_are_problems(api: Api) -> None:
    await assert_problem(await api.request("GET", "/nowhere"), 404)
    wrong = await api.request("PATCH", "/client/acme/task_scheduler/")
    await assert_problem(wrong, 405)
    assert "POST" in wrong.headers["Allow"]


async def test_cors_is_off_by_default(api: Api) -> None:
    response = await api.request(
        "GET", "/client/acme/task_scheduler/", headers={"Origin": "https://panel.example.com"}
    )

    assert response.status == 200
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_cors_answers_only_the_configured_origin(api_factory: ApiFactory) -> None:
    api = await api_factory(api={"cors_origins": ["https://panel.example.com"]})

    preflight = await api.request(
        "OPTIONS",
        "/client/acme/task_scheduler/",
        client=None,
        headers={
            "Origin": "https://panel.example.com",
            "Access-Control-Request-Method": "POST",
        },
    )
    other = await api.request(
        "GET", "/client/acme/task_scheduler/", headers={"Origin": "https://evil.example.com"}
    )

    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://panel.example.com"
    assert "Access-Control-Allow-Origin" not in other.headers
