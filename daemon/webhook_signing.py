"""The Standard Webhooks headers of one webhook try (docs/webhooks.md).

The signature comes from the `standardwebhooks` package, so callbackd signs exactly as
receivers using that specification verify.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from standardwebhooks import Webhook

from config.settings import webhook_signer


class SigningError(Exception):
    """The configured secret cannot sign; the message never contains the secret."""


def webhook_headers(msg_id: str, sent_at: datetime, body: str, secret: str) -> dict[str, str]:
    """Content-Type, webhook-id, webhook-timestamp and, when `secret` is not empty,
    webhook-signature over `{msg_id}.{timestamp}.{body}`."""
    seconds = math.floor(sent_at.timestamp())
    headers = {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(seconds),
    }
    if secret:
        headers["webhook-signature"] = _signer(secret).sign(
            msg_id, datetime.fromtimestamp(seconds, UTC), body
        )
    return headers


def _signer(secret: str) -> Webhook:
    try:
        return webhook_signer(secret)
    except ValueError as exc:  # the config refuses such a secret: only a guard
        raise SigningError(f"webhooks.secret {exc}") from None
