"""Tokens and client isolation (docs/api.md, "Basics"): a client never sees or changes
another client's queues, tasks or calls, and cannot even tell that they exist."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import (
    Api,
    assert_problem,
    insert_call,
    queue_path,
    task,
    tasks_path,
)

CALL_UUID = "0c8f1f3e-5b7a-4f7e-9d55-1a2b3c4d5e6f"


def _client_routes(api: Api) -> list[tuple[str, str]]:
    """(method, path template) of every route under /client/{client_id}/."""
    found = []
    for route in api.http.app.router.routes() if api.http.app else []:
        info = route.resource.get_info() if route.resource else {}
        template = info.get("formatter") or info.get("path", "")
        if template.startswith("/client/{client_id}/") and route.method not in ("HEAD", "OPTIONS"):
            found.append((route.method, template))
    return found


@pytest.fixture
async def acme_data(api: Api) -> dict[str, Any]:
    queue = await api.new_queue()
    [made] = await api.add_tasks(queue["id"], [task()])
    await insert_call(api, made, CALL_UUID, [{"Event": "Hangup", "Cause": "16"}])
    interval = await api.ok(
        "POST", "/client/acme/interval/", 201, json={"name": "days", "timezone": "UTC"}
    )
    return {
        "scheduler_id": queue["id"],
        "task_id": made["id"],
        "call_uuid": CALL_UUID,
        "interval_id": interval["id"],
    }


async def test_another_clients_ids_are_not_found_with_every_verb(
    api: Api, acme_data: dict[str, Any]
) -> None:
    await api.new_queue(client="beta")
    routes = _client_routes(api)
    assert len(routes) >= 12
    checked = 0
    for method, template in routes:
        if "{" not in template.removeprefix("/client/{client_id}/"):
            continue  # collection routes name no id of acme's
        for named_client in ("acme", "beta", "@me"):
            path = template.format(client_id=named_client, **acme_data)
            response = await api.request(
                method, path, client="beta", json={"name": "x", "tasks": [task()]}
            )
            body = await assert_problem(response, 404)
            assert CALL_UUID not in body["detail"]
            checked += 1
    assert checked >= 3 * 8
    # Nothing of acme's changed.
    assert (await api.ok("GET", queue_path(acme_data["scheduler_id"])))["task_count"] == 1
    acme_task = await api.ok("GET", tasks_path(acme_data["scheduler_id"]) + "1")
    assert acme_task["status"] == "scheduled"


async def test_another_clients_collections_show_nothing_of_ours(
    api: Api, acme_data: dict[str, Any]
) -> None:
    own = await api.ok("GET", "/client/beta/task_scheduler/", client="beta")
    calls = await api.ok("GET", "/client/beta/call_history/", client="beta")

    assert own == []
    assert calls == []
    for path in ("/client/acme/task_scheduler/", "/client/acme/call_history/"):
        await assert_problem(await api.request("GET", path, client="beta"), 404)
    creating = await api.request(
        "POST", "/client/acme/task_scheduler/", client="beta", json={"name": "sneaky"}
    )
    await assert_problem(creating, 404)


async def test_me_means_the_client_of_the_token(api: Api, acme_data: dict[str, Any]) -> None:
    mine = await api.ok("GET", "/client/@me/task_scheduler/")
    created = await api.ok("POST", "/client/@me/task_scheduler/", 201, json={"name": "via me"})

    assert [q["id"] for q in mine] == [acme_data["scheduler_id"]]
    listed = await api.ok("GET", "/client/acme/task_scheduler/")
    assert created["id"] in [q["id"] for q in listed]


async def test_admin_token_may_name_any_client(api: Api, acme_data: dict[str, Any]) -> None:
    acme_queues = await api.ok("GET", "/client/acme/task_scheduler/", client="*")
    made_for_beta = await api.ok(
        "POST", "/client/beta/task_scheduler/", 201, client="*", json={"name": "by admin"}
    )
    call = await api.ok("GET", f"/client/acme/call_history/{CALL_UUID}", client="*")

    assert [q["id"] for q in acme_queues] == [acme_data["scheduler_id"]]
    assert [q["id"] for q in await api.ok("GET", "/client/@me/task_scheduler/", client="beta")] == [
        made_for_beta["id"]
    ]
    assert call["call_uuid"] == CALL_UUID
    # The admin still cannot reach a queue through the wrong client.
    wrong = await api.request("GET", queue_path(acme_data["scheduler_id"], "beta"), client="*")
    await assert_problem(wrong, 404)


async def test_admin_token_has_no_client_of_its_own(api: Api) -> None:
    response = await api.request("GET", "/client/@me/task_scheduler/", client="*")

    await assert_problem(response, 400)


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer wrong-token-123",
        "Basic YWNtZTphY21lLXNlY3JldC10b2tlbg==",
        "acme-secret-token",
        "Bearer acme-secret-token-and-more",
        "Bearer acme-secret-toke",
    ],
)
async def test_missing_or_wrong_token_is_unauthorized_on_every_client_route(
    api: Api, acme_data: dict[str, Any], authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, template in _client_routes(api):
        path = template.format(client_id="acme", **acme_data)
        response = await api.request(
            method, path, client=None, headers=headers, json={"tasks": [task()]}
        )
        body = await assert_problem(response, 401)
        assert "acme-secret-token" not in body["detail"]
    assert (await api.ok("GET", queue_path(acme_data["scheduler_id"])))["task_count"] == 1


INVALID = (
    'Bearer realm="callbackd", error="invalid_token", error_description="the token is not valid"'
)


@pytest.mark.parametrize(
    ("authorization", "challenge"),
    [
        (None, 'Bearer realm="callbackd"'),
        ("Basic YWNtZTphY21lLXNlY3JldC10b2tlbg==", 'Bearer realm="callbackd"'),
        ("acme-secret-token", 'Bearer realm="callbackd"'),
        ("Bearer wrong-token-123", INVALID),
        ("bearer acme-secret-toke", INVALID),
        ("Bearer ", INVALID),
    ],
)
async def test_a_401_says_how_to_authenticate_in_www_authenticate(
    api: Api, authorization: str | None, challenge: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await api.request(
        "GET", "/client/acme/task_scheduler/", client=None, headers=headers
    )
    await assert_problem(response, 401)
    assert response.headers.getall("WWW-Authenticate") == [challenge]


async def test_bearer_scheme_is_case_insensitive(api: Api) -> None:
    response = await api.request(
        "GET",
        "/client/acme/task_scheduler/",
        client=None,
        headers={"Authorization": "bearer acme-secret-token"},
    )

    assert response.status == 200
