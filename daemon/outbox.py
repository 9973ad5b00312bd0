"""Delivers the webhooks waiting in the `outbox` table (docs/webhooks.md).

The rows are the state: a webhook is pending until a 2xx sets `delivered_at` or its
last try sets `given_up`, so a restart resends what was not delivered and nothing else.
A task's webhooks go out in order (a row waits until every earlier row of its task is
settled); different tasks go out concurrently, so a slow or dead receiver holds back
only its own task. Between deliveries the loop sleeps until the next row falls due or
until `wake()` says new rows were committed.

webhook-id is `msg_<outbox id>_<digest>`, digest = the first 12 hex digits of SHA-256
over the row's task id, event, created time, URL and body. The row never changes, so the
id is the same on every try and after restarts (receivers de-duplicate by it); the
digest keeps two installs, whose outbox ids both start at 1, from reusing ids.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from collections.abc import Set as AbstractSet
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Literal

import aiohttp
import structlog
from yarl import URL

from config.settings import WebhookSettings
from daemon.clock import Clock, sleep_until_woken
from daemon.metrics import Metrics
from daemon.models import format_time, parse_time
from daemon.netguard import (
    DENIED_MESSAGE,
    AddressDenied,
    GuardedResolver,
    IPNetwork,
    literal_denied,
    parse_networks,
)
from daemon.store.db import Database, StoreUnavailable
from daemon.store.until_stored import until_stored
from daemon.store.webhooks import OutboxRepository
from daemon.webhook_signing import SigningError, webhook_headers

log = structlog.get_logger("callbackd.webhooks")
# A store that cannot be read (the shared store restarting) is tried again after this.
STORE_RETRY = timedelta(seconds=2)
# How soon a host whose lease on the shared store is over looks again: its next
# heartbeat renews the lease (cluster.heartbeat, a few seconds) or the host is gone.
LEASE_RECHECK = timedelta(seconds=1)

# Seconds to wait after the 1st, 2nd, ... failed try; later failures wait BACKOFF_CAP.
BACKOFF_STEPS = (5, 30, 120, 600, 1800)
BACKOFF_CAP = 3600
DEFAULT_CONCURRENCY = 16
USER_AGENT = "callbackd"
_ERROR_LIMIT = 200

Delivery = Literal["delivered", "failed", "given_up", "denied"]


def backoff(tries: int) -> float:
    """Seconds before the next try after `tries` failed tries (tries >= 1):
    5 s, 30 s, 2 min, 10 min, 30 min, then 1 h each."""
    if tries < 1:
        raise ValueError("backoff follows at least one failed try")
    return float(BACKOFF_STEPS[tries - 1] if tries <= len(BACKOFF_STEPS) else BACKOFF_CAP)


def no_jitter(seconds: float) -> float:
    return seconds


def spread(seconds: float) -> float:
    """±10 %, so the webhooks that failed together while a receiver was down do not all
    come back at the same second."""
    return seconds * random.uniform(0.9, 1.1)


@dataclass(frozen=True)
class Retry:
    """What a failed try leaves behind: the try count, and either the next try or
    giving up."""

    tries: int
    given_up: bool
    next_try: datetime


def after_failure(
    tries_before: int,
    max_attempts: int,
    now: datetime,
    jitter: Callable[[float], float] = no_jitter,
) -> Retry:
    tries = tries_before + 1
    if tries >= max_attempts:
        return Retry(tries=tries, given_up=True, next_try=now)
    return Retry(
        tries=tries, given_up=False, next_try=now + timedelta(seconds=jitter(backoff(tries)))
    )


@dataclass(frozen=True)
class Pending:
    """One outbox row on its way out."""

    id: int
    task_id: int
    event: str
    url: str
    body: str
    created: str
    tries: int

    @classmethod
    def of(cls, row: sqlite3.Row) -> Pending:
        return cls(
            id=row["id"],
            task_id=row["task_id"],
            event=row["event"],
            url=row["url"],
            body=row["body"],
            created=row["created"],
            tries=row["tries"],
        )

    @property
    def webhook_id(self) -> str:
        return webhook_id(self.id, self.task_id, self.event, self.created, self.url, self.body)


def webhook_id(outbox_id: int, task_id: int, event: str, created: str, url: str, body: str) -> str:
    digest = hashlib.sha256(
        "\n".join((str(task_id), event, created, url, body)).encode()
    ).hexdigest()
    return f"msg_{outbox_id}_{digest[:12]}"


@dataclass(frozen=True)
class Sent:
    """How one try went: delivered (2xx), failed (will be retried) or denied."""

    result: Literal["delivered", "failed", "denied"]
    error: str = ""


@cache
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return parse_networks(entries)


@asynccontextmanager
async def guarded_session(
    settings: Callable[[], WebhookSettings], limit: int = DEFAULT_CONCURRENCY
) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP session for webhooks whose every connection refuses denied addresses.

    No DNS cache (each connection resolves and checks again, with the deny list of the
    moment), no cookies, no proxy from the environment."""
    resolver = GuardedResolver(lambda: _networks(tuple(settings().deny_networks)))
    connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False, limit=limit)
    try:
        async with aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
        ) as session:
            yield session
    finally:
        await resolver.close()


class WebhookOutbox:
    """Delivers the outbox: `run()` until cancelled, `drain()` at shutdown.

    A `session` passed in is used as it is; make it with `guarded_session` so that names
    resolving to denied networks are refused too (literal IP hosts are checked here
    whatever the session). Without one, `run()` and `drain()` each open their own."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: Callable[[], WebhookSettings],
        metrics: Metrics | None = None,
        session: aiohttp.ClientSession | None = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        jitter: Callable[[float], float] = spread,
        held: AbstractSet[int] = frozenset(),
        may_send: Callable[[], bool] = lambda: True,
    ) -> None:
        self._rows = OutboxRepository(db)
        self._clock = clock
        self._settings = settings
        self._metrics = metrics
        self._session = session
        self._concurrency = concurrency
        self._jitter = jitter
        self._held = held  # tasks whose webhooks wait (see CallEngine.originating)
        # False while this host's lease on the shared store is over (Membership.may_act):
        # another host may be sending these webhooks then.
        self._may_send = may_send
        self._in_flight: dict[int, asyncio.Task[None]] = {}  # task id -> its delivery
        self._listeners: set[asyncio.Event] = set()
        self._dispatch_lock = asyncio.Lock()
        self._crash: BaseException | None = None

    def wake(self) -> None:
        """New rows were committed: look again now instead of at the next due time."""
        for event in self._listeners:
            event.set()

    async def run(self) -> None:
        """Deliver webhooks as they fall due, until cancelled. A store that refuses
        writes for a while only delays the recording of results; a delivery that fails
        for another reason (the store gone, a bug) ends `run` with that error."""
        started: set[asyncio.Task[None]] = set()
        async with self._open_session() as session:
            with self._listening() as poked:
                try:
                    while True:
                        self._raise_crash()
                        poked.clear()
                        try:
                            due_at = await self._dispatch(session, started)
                        except StoreUnavailable as exc:
                            # The shared store restarting or failing over: what is
                            # due waits, as the scheduler's starts do.
                            log.error("the store cannot be read; trying again shortly",
                                      error=str(exc))  # fmt: skip
                            due_at = self._clock.now() + STORE_RETRY
                        await sleep_until_woken(self._clock, poked, due_at)
                finally:
                    await _cancel(started)

    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109 - the shutdown grace
        """Deliver what is due now (and what falls due as earlier rows of its task are
        delivered), waiting for deliveries in flight; gives up after `timeout` seconds,
        leaving the rest in the outbox for the next start."""
        started: set[asyncio.Task[None]] = set()
        async with self._open_session() as session:
            with self._listening() as poked:
                try:
                    async with asyncio.timeout(timeout):
                        while True:
                            self._raise_crash()
                            poked.clear()
                            await self._dispatch(session, started)
                            # A delivery that ended while due rows were read (its task
                            # read as busy) pokes: look again before deciding it is over.
                            if not self._in_flight and not poked.is_set():
                                return
                            await poked.wait()
                except TimeoutError:
                    # Left pending: the next start sends them again, with the same ids.
                    log.warning("outbox drain timed out", in_flight=sorted(self._in_flight))
                finally:
                    await _cancel(started)

    async def settled(self) -> None:
        """Return once no webhook is being delivered and none is due now."""
        with self._listening() as poked:
            while True:
                self._raise_crash()
                poked.clear()
                async with self._dispatch_lock:
                    if not self._in_flight:
                        heads = await self._heads(1)
                        if not heads or parse_time(heads[0]["next_try"]) > self._clock.now():
                            return
                await poked.wait()

    @asynccontextmanager
    async def _open_session(self) -> AsyncIterator[aiohttp.ClientSession]:
        if self._session is not None:
            yield self._session
            return
        async with guarded_session(self._settings, self._concurrency) as session:
            yield session

    @contextmanager
    def _listening(self) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._listeners.add(event)
        try:
            yield event
        finally:
            self._listeners.discard(event)

    def _raise_crash(self) -> None:
        if self._crash is not None:
            raise self._crash

    async def _heads(self, n: int) -> list[sqlite3.Row]:
        return await self._rows.heads([*self._in_flight, *self._held], n)

    async def _dispatch(
        self, session: aiohttp.ClientSession, started: set[asyncio.Task[None]]
    ) -> datetime | None:
        """Start delivering every due head there is a slot for; return when the next
        head falls due, or None when only a finished delivery or `wake()` can help."""
        async with self._dispatch_lock:
            free = self._concurrency - len(self._in_flight)
            now = self._clock.now()
            if not self._may_send():
                return now + LEASE_RECHECK
            for row in await self._heads(max(free, 0) + 1):
                due = parse_time(row["next_try"])
                if due > now:
                    return due
                if free <= 0:
                    return None
                free -= 1
                self._start(session, Pending.of(row), started)
            return None

    def _start(
        self, session: aiohttp.ClientSession, row: Pending, started: set[asyncio.Task[None]]
    ) -> None:
        delivery = asyncio.create_task(self._deliver(session, row), name=row.webhook_id)
        self._in_flight[row.task_id] = delivery
        started.add(delivery)

        def done(task: asyncio.Task[None]) -> None:
            started.discard(task)
            if self._in_flight.get(row.task_id) is task:
                del self._in_flight[row.task_id]
            if not task.cancelled() and task.exception() is not None:
                self._crash = self._crash or task.exception()
            self.wake()

        delivery.add_done_callback(done)

    async def _deliver(self, session: aiohttp.ClientSession, row: Pending) -> None:
        if not self._may_send():
            # The lease ran out since the row was read (the process frozen, say): the
            # row stays pending for whichever host sends it, and nothing is recorded.
            log.warning("lease of this host is over; webhook left to the live hosts",
                        task_id=row.task_id, webhook_id=row.webhook_id)  # fmt: skip
            return
        settings = self._settings()
        sent = await self._send(session, row, settings)
        await self._record_when_stored(row, sent, settings)

    async def _record_when_stored(
        self, row: Pending, sent: Sent, settings: WebhookSettings
    ) -> None:
        """Record a try, waiting while the store refuses writes (a full disk passes).

        The delivery stays in flight meanwhile, so neither this row nor a later one of
        its task goes out again before the result is on disk; if the daemon stops first,
        the row is still pending and the next start sends it again with the same
        webhook-id, which receivers de-duplicate."""
        await until_stored(
            self._clock,
            lambda: self._record(row, sent, settings),
            log,
            task_id=row.task_id,
            webhook_id=row.webhook_id,
        )

    async def _send(
        self, session: aiohttp.ClientSession, row: Pending, settings: WebhookSettings
    ) -> Sent:
        try:
            host = URL(row.url).host or ""
        except ValueError:
            return Sent("failed", "invalid URL")
        if literal_denied(host, _networks(tuple(settings.deny_networks))):
            return Sent("denied", DENIED_MESSAGE)
        try:
            headers = webhook_headers(
                row.webhook_id, self._clock.now(), row.body, settings.secret.get_secret_value()
            )
        except SigningError as exc:
            return Sent("failed", str(exc))
        try:
            async with (
                asyncio.timeout(settings.timeout),
                session.post(
                    row.url, data=row.body.encode(), headers=headers, allow_redirects=False
                ) as response,
            ):
                status = response.status
        except TimeoutError:
            return Sent("failed", f"no answer within {settings.timeout:g} s")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AddressDenied):
                return Sent("denied", DENIED_MESSAGE)
            return Sent("failed", _describe(exc))
        except aiohttp.InvalidURL:
            return Sent("failed", "invalid URL")
        except aiohttp.ClientError as exc:
            return Sent("failed", _describe(exc))
        if 200 <= status < 300:
            return Sent("delivered")
        return Sent("failed", f"HTTP {status}")

    async def _record(self, row: Pending, sent: Sent, settings: WebhookSettings) -> None:
        now = self._clock.now()
        line = log.bind(task_id=row.task_id, webhook_id=row.webhook_id, webhook_event=row.event)
        tries = row.tries + 1
        if sent.result == "delivered":
            await self._rows.delivered(row.id, format_time(now), tries)
            self._count("delivered")
            line.info("webhook delivered", tries=tries)
            return
        if sent.result == "denied":
            retry = Retry(tries=tries, given_up=True, next_try=now)
        else:
            retry = after_failure(row.tries, settings.max_attempts, now, self._jitter)
        await self._rows.failed(
            row.id, retry.tries, sent.error, format_time(retry.next_try), retry.given_up
        )
        if sent.result == "denied":
            self._count("denied")
            line.warning("webhook denied", error=sent.error)
        elif retry.given_up:
            self._count("failed")
            self._count("given_up")
            line.error("webhook given up", tries=retry.tries, error=sent.error)
        else:
            self._count("failed")
            line.warning(
                "webhook try failed",
                tries=retry.tries,
                error=sent.error,
                next_try=format_time(retry.next_try),
            )

    def _count(self, result: Delivery) -> None:
        if self._metrics is None:
            return
        m = self._metrics
        counters = {
            "delivered": m.webhook_deliveries,
            "failed": m.webhook_failures,
            "given_up": m.webhooks_given_up,
            "denied": m.webhooks_given_up,
        }
        counters[result].inc()


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _ERROR_LIMIT else text[: _ERROR_LIMIT - 1] + "…"


async def _cancel(tasks: set[asyncio.Task[None]]) -> None:
    pending = list(tasks)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
