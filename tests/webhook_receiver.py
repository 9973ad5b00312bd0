"""A real webhook receiver for tests: an aiohttp server on 127.0.0.1.

It records every request, answers with a scripted sequence of statuses (then 200), can
hold requests unanswered (a slow receiver), and can be down (its port closed) and come
back on the same port. Tests await its arrivals instead of sleeping.

`verify_signature` checks a request the way a receiver following the Standard Webhooks
specification would, written from the specification, not with the package the daemon
signs with.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

WAIT = 5.0  # seconds a test waits for requests before failing


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it, and the status it answered."""

    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def timestamp(self) -> str:
        return self.headers["webhook-timestamp"]

    def json(self) -> Any:
        return json.loads(self.body)


def verify_signature(secret: str, received: Received) -> bool:
    """True when one `v1,<base64>` entry of webhook-signature is the HMAC-SHA256 of
    `{webhook-id}.{webhook-timestamp}.{body}` keyed with the base64 after `whsec_`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{received.webhook_id}.{received.timestamp}.".encode() + received.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = received.headers.get("webhook-signature", "").split(" ")
    return any(
        entry.partition(",")[0] == "v1" and hmac.compare_digest(entry.partition(",")[2], expected)
        for entry in offered
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class WebhookReceiver:
    """Start with `await receiver.start()`; `stop()` takes it down (connection refused),
    `start()` again brings it back on the same port."""

    def __init__(self, statuses: Iterable[int] = (), port: int | None = None) -> None:
        self.port = port or free_port()
        self.requests: list[Received] = []
        self.arrivals = 0
        self._statuses: deque[int] = deque(statuses)
        self._changed = asyncio.Condition()
        self._open = asyncio.Event()
        self._open.set()
        self._runner: web.AppRunner | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def answer(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, in order (then 200)."""
        self._statuses.extend(statuses)

    def hold(self) -> None:
        """Leave requests unanswered until `release()`: a slow receiver."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def wait_arrivals(self, n: int) -> None:
        """Until `n` requests have arrived (answered or held); at most WAIT seconds."""
        await self._wait(lambda: self.arrivals >= n)

    async def wait_requests(self, n: int) -> list[Received]:
        """Until `n` requests have been answered (at most WAIT seconds); returns them all."""
        await self._wait(lambda: len(self.requests) >= n)
        return list(self.requests)

    def ids(self) -> Counter[str]:
        """How many times each webhook-id arrived."""
        return Counter(r.webhook_id for r in self.requests)

    def delivered(self) -> list[Received]:
        """The first 2xx-answered request of each webhook-id, in arrival order."""
        seen: set[str] = set()
        firsts = []
        for r in self.requests:
            if 200 <= r.status < 300 and r.webhook_id not in seen:
                seen.add(r.webhook_id)
                firsts.append(r)
        return firsts

    async def _wait(self, ready: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT), self._changed:
            await self._changed.wait_for(ready)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        async with self._changed:
            self.arrivals += 1
            self._changed.notify_all()
        await self._open.wait()
        status = self._statuses.popleft() if self._statuses else 200
        received = Received(
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            status=status,
        )
        async with self._changed:
            self.requests.append(received)
            self._changed.notify_all()
        return web.Response(status=status, text="ok" if status < 300 else "no")
