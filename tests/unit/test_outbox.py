"""The pure parts of webhook delivery: backoff, the retry decision, webhook ids, headers."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.outbox import (
    BACKOFF_CAP,
    Retry,
    after_failure,
    backoff,
    spread,
    webhook_id,
)
from daemon.webhook_signing import SigningError, webhook_headers
from tests.webhook_receiver import Received, verify_signature

NOW = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(b"a 32 byte key for the unit tests").decode()


@pytest.mark.parametrize(
    ("tries", "seconds"),
    [(1, 5), (2, 30), (3, 120), (4, 600), (5, 1800), (6, 3600), (7, 3600), (100, 3600)],
)
def test_backoff_grows_then_stays_at_one_hour(tries: int, seconds: float) -> None:
    assert backoff(tries) == seconds


def test_backoff_needs_a_failed_try() -> None:
    with pytest.raises(ValueError):
        backoff(0)


@given(st.integers(min_value=1, max_value=1000))
def test_backoff_never_shrinks_and_never_passes_the_cap(tries: int) -> None:
    assert backoff(tries) <= backoff(tries + 1) <= BACKOFF_CAP


@given(st.floats(min_value=0, max_value=1e6))
def test_spread_stays_within_ten_percent(seconds: float) -> None:
    assert seconds * 0.9 <= spread(seconds) <= seconds * 1.1


@pytest.mark.parametrize(
    ("tries_before", "max_attempts", "expected"),
    [
        (0, 6, Retry(tries=1, given_up=False, next_try=NOW + timedelta(seconds=5))),
        (1, 6, Retry(tries=2, given_up=False, next_try=NOW + timedelta(seconds=30))),
        (4, 6, Retry(tries=5, given_up=False, next_try=NOW + timedelta(minutes=30))),
        (5, 6, Retry(tries=6, given_up=True, next_try=NOW)),
        (0, 1, Retry(tries=1, given_up=True, next_try=NOW)),
        (9, 100, Retry(tries=10, given_up=False, next_try=NOW + timedelta(hours=1))),
    ],
)
def test_a_failed_try_is_retried_until_max_attempts(
    tries_before: int, max_attempts: int, expected: Retry
) -> None:
    assert after_failure(tries_before, max_attempts, NOW) == expected


def test_the_injected_jitter_shapes_the_pause() -> None:
    retry = after_failure(0, 6, NOW, jitter=lambda seconds: seconds * 2)
    assert retry.next_try == NOW + timedelta(seconds=10)


ROW = (7, 42, "before", "2024-03-01 10:00:00", "https://hooks.example/cb", '{"event":"before"}')


def test_a_webhook_id_is_stable_and_names_its_outbox_row() -> None:
    assert webhook_id(*ROW) == webhook_id(*ROW)
    assert re.fullmatch(r"msg_7_[0-9a-f]{12}", webhook_id(*ROW))


@pytest.mark.parametrize("field", range(1, len(ROW)))
def test_a_webhook_id_differs_when_the_row_differs(field: int) -> None:
    other = list(ROW)
    other[field] = 43 if field == 1 else f"{ROW[field]}x"
    assert webhook_id(*other) != webhook_id(*ROW)  # type: ignore[arg-type]


def _received(headers: dict[str, str], body: str) -> Received:
    lower = {k.lower(): v for k, v in headers.items()}
    return Received(path="/", headers=lower, body=body.encode(), status=200)


def test_headers_carry_id_timestamp_and_a_signature_receivers_verify() -> None:
    body = '{"event": "success", "task": {"id": 1}}'
    headers = webhook_headers("msg_1_abc", NOW + timedelta(microseconds=900), body, SECRET)
    assert headers["Content-Type"] == "application/json"
    assert headers["webhook-id"] == "msg_1_abc"
    assert headers["webhook-timestamp"] == str(int(NOW.timestamp()))
    assert headers["webhook-signature"].startswith("v1,")
    assert verify_signature(SECRET, _received(headers, body))
    assert not verify_signature(SECRET, _received(headers, body + " "))


def test_without_a_secret_no_signature_is_sent() -> None:
    headers = webhook_headers("msg_1_abc", NOW, "{}", "")
    assert "webhook-signature" not in headers
    assert headers["webhook-id"] == "msg_1_abc"


@pytest.mark.parametrize("secret", ["whsec_", "whsec_Sekr3"])
def test_a_secret_that_cannot_sign_is_reported_without_showing_it(secret: str) -> None:
    with pytest.raises(SigningError) as raised:
        webhook_headers("msg_1_abc", NOW, "{}", secret)
    assert "webhooks.secret" in str(raised.value)
    assert "Sekr3" not in str(raised.value)
    assert raised.value.__cause__ is None
