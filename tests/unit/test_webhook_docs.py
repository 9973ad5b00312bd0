"""docs/webhooks.md tells the truth: its signature checks, in Python and in Node.js,
accept what callbackd really sends (daemon/webhook_signing.py) and refuse a changed
body, an old timestamp and another secret; its example body is a webhook body."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest

from config.settings import WebhookSettings
from daemon.models import WebhookBody
from daemon.outbox import backoff
from daemon.webhook_signing import webhook_headers

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
SECRET = "whsec_" + base64.b64encode(b"a 32 byte key for the docs tests").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another key, not the one used!!!").decode()
BODY = '{"event":"success","task":{"id":1},"attempt":null}'
NODE_HARNESS = """
const input = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
const ok = verify(input.secret, input.headers, Buffer.from(input.body, "base64"));
process.stdout.write(ok ? "valid" : "invalid");
"""


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


class Verify(Protocol):
    def __call__(self, secret: str, headers: dict[str, str], body: bytes) -> bool: ...


def _python_verify() -> Verify:
    [snippet] = _blocks("python")
    namespace: dict[str, Any] = {}
    exec(compile(snippet, str(DOC), "exec"), namespace)
    verify: Verify = namespace["verify"]
    return verify


def _node_verify() -> Verify:
    [snippet] = _blocks("js")
    node = shutil.which("node")
    assert node, "node is installed by `make test` (Makefile: nodejs)"

    def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
        given = {"secret": secret, "headers": headers, "body": base64.b64encode(body).decode()}
        done = subprocess.run(
            [node, "-e", snippet + NODE_HARNESS],
            input=json.dumps(given),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout == "valid"

    return verify


@pytest.fixture(params=["python", "node"])
def verify(request: pytest.FixtureRequest) -> Verify:
    return _python_verify() if request.param == "python" else _node_verify()


def _sent(secret: str = SECRET, ago: timedelta = timedelta()) -> dict[str, str]:
    """The headers callbackd sends for BODY, with lower-case names as receivers see them."""
    sent_at = datetime.fromtimestamp(time.time(), UTC) - ago
    headers = webhook_headers("msg_7_0123456789ab", sent_at, BODY, secret)
    return {name.lower(): value for name, value in headers.items()}


def test_the_documented_check_accepts_what_callbackd_sends(verify: Verify) -> None:
    assert verify(SECRET, _sent(), BODY.encode())


def test_the_documented_check_refuses_a_changed_body(verify: Verify) -> None:
    assert not verify(SECRET, _sent(), BODY.replace("success", "after").encode())


def test_the_documented_check_refuses_another_secret(verify: Verify) -> None:
    assert not verify(OTHER_SECRET, _sent(), BODY.encode())


def test_the_documented_check_refuses_a_webhook_signed_long_ago(verify: Verify) -> None:
    assert not verify(SECRET, _sent(ago=timedelta(minutes=10)), BODY.encode())


def test_the_documented_check_refuses_an_unsigned_webhook(verify: Verify) -> None:
    unsigned = _sent(secret="")

    assert "webhook-signature" not in unsigned
    assert not verify(SECRET, unsigned, BODY.encode())


def test_the_documented_example_body_is_a_webhook_body_field_for_field() -> None:
    [example] = [b for b in _blocks("json") if '"event"' in b]
    data = json.loads(example)

    body = WebhookBody.model_validate(data)

    assert body.attempt is not None
    assert set(data["task"]) == set(type(body.task).model_fields)
    assert set(data["attempt"]) == set(type(body.attempt).model_fields)


def test_the_documented_retry_schedule_is_the_outbox_backoff() -> None:
    row = next(line for line in DOC.read_text().splitlines() if line.startswith("| waits"))
    unit = {"s": 1, "min": 60, "h": 3600}
    waits = [int(number) * unit[word] for number, word in re.findall(r"(\d+) (s|min|h)\b", row)]

    assert waits == [backoff(tries) for tries in range(1, 7)]
    text = DOC.read_text()
    assert f"(default {WebhookSettings().max_attempts}:" in text
    assert f"(default {WebhookSettings().timeout:g})" in text
    assert "±10 %" in text
