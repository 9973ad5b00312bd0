"""The one AMI connection of callbackd: connect, log in, keep alive, reconnect,
send actions, and hand every event to one consumer in arrival order.

Why not panoramisk's Manager: each hazard callbackd must avoid lives in its I/O
layer, not in a corner that a subclass could patch —
  1. ``AMIProtocol.close`` queues unanswered actions and ``Manager`` re-sends them on
     the next ``FullyBooted``: an Originate caught by a reconnect rings A twice;
  2. ``Action.multi`` treats an async Originate as a list action, so the
     ``OriginateResponse`` event is swallowed into its future, and a dropped link
     leaves that future pending forever;
  3. ``Action.multi`` reads ``self['async']``: an Originate without ``Async`` raises
     ``KeyError`` inside ``data_received``;
  4. ``data_received`` decodes every TCP read on its own with ``errors='ignore'``:
     a UTF-8 character split across reads vanishes (``José`` -> ``Jos``);
  5. ``dispatch`` runs coroutine handlers with ``ensure_future``: a ``Hangup`` can be
     handled before its ``Newchannel``;
  6. ``ping`` sends Ping and never looks for the Pong: a half-open link goes unseen.
Overriding ``data_received``, ``handle_message``, ``close``, ``connection_made``,
``login``, ``ping`` and ``dispatch`` would leave nothing of panoramisk but its name,
and its one parsing piece, ``Message.from_line``, rewrites values (unquotes
``Result``, adds a ``content`` key, drops the last line of ``Response: Fail``). So this
module owns the link on asyncio streams and ``ami.protocol`` owns the wire format;
callbackd imports panoramisk nowhere. The fixes, in one line each: no action is
ever re-sent; only list actions (``EventList: start``) collect events, so
``OriginateResponse`` reaches ``events``; ``Async: true`` is always set; frames are
decoded when complete; one queue in arrival order; each Ping must be answered
within ``ping_timeout`` or the link is closed and rebuilt.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import structlog

from ami.events import AmiEvent, ConnectionChange, action_id, header, name
from ami.protocol import BANNER_PREFIX, FrameDecoder, encode_frame

Fields = Mapping[str, str | Sequence[str]]


class Logger(Protocol):
    def debug(self, event: str, **kw: Any) -> Any: ...
    def info(self, event: str, **kw: Any) -> Any: ...
    def warning(self, event: str, **kw: Any) -> Any: ...
    def error(self, event: str, **kw: Any) -> Any: ...


@dataclass(frozen=True)
class ConnectionSettings:
    """Where the client connects, how it logs in, and its timers (plain values: the
    daemon's `[ami]` config section is turned into these by the composition root)."""

    host: str
    port: int
    username: str
    secret: str
    ping_interval: float = 10.0
    ping_timeout: float = 5.0
    connect_timeout: float = 5.0
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    # While Asterisk is restarting (nothing listens, or it answers that it is shutting
    # down), retries stay this close: it can be back any moment, and a refused local
    # connection costs nothing.
    reconnect_restarting_max: float = 1.0
    action_timeout: float = 10.0

    def __repr__(self) -> str:  # the secret stays out of logs and tracebacks
        return (
            f"ConnectionSettings(host={self.host!r}, port={self.port}, username={self.username!r})"
        )


class AmiError(Exception):
    """Base of everything this module raises about AMI."""


class AmiNotConnected(AmiError):
    """Not logged in: nothing was sent."""


class AmiSentButUnanswered(AmiError):
    """The action was sent and its complete answer never came; ``action_id`` names it."""

    def __init__(self, message: str, action_id: str) -> None:
        super().__init__(message)
        self.action_id = action_id


class AmiConnectionLost(AmiSentButUnanswered):
    """The link dropped after the action was sent and before its response."""


class AmiActionTimeout(AmiSentButUnanswered, TimeoutError):
    """No complete response within the timeout; the link itself may still be up."""


class AmiOriginateUnknown(AmiSentButUnanswered):
    """The Originate was sent but its response never came (link dropped or timeout).

    The call may or may not exist: reconcile from events / CoreShowChannels, never
    send the Originate again.
    """


class AmiActionError(AmiError):
    """Asterisk answered ``Response: Error``; the message is Asterisk's."""

    def __init__(self, message: str, response: AmiEvent) -> None:
        super().__init__(message)
        self.message = message
        self.response = response


@dataclass(frozen=True)
class OriginateSent:
    """Asterisk queued the Originate. Its ``OriginateResponse`` event (same
    ``ActionID``) arrives later in ``AmiClient.events``."""

    action_id: str
    message: str


class Down(StrEnum):
    """Why the link is down, as far as the wait before the next try cares."""

    RESTARTING = "restarting"  # refused, closed, "shutting down": back any moment
    FAULT = "fault"  # login refused, no answer, not AMI: an operator's problem


def reconnect_delay(
    failures: int,
    down: Down,
    *,
    minimum: float,
    maximum: float,
    restarting_max: float,
    jitter: float,
) -> float:
    """Seconds to wait before the next connection attempt.

    Doubles from ``minimum`` per consecutive failure, up to ``restarting_max`` while
    Asterisk is restarting and up to ``maximum`` for a fault that a retry soon would
    only repeat; ``jitter`` in [0, 1] takes up to half off, so many daemons restarted
    together spread out. Never below ``minimum``.
    """
    cap = min(maximum, restarting_max) if down is Down.RESTARTING else maximum
    ceiling = min(cap, minimum * 2.0 ** min(failures, 64))
    return max(minimum, ceiling * (1.0 - 0.5 * jitter))


# Login answers of an Asterisk on its way down (or not up yet), not a refusal of ours.
_TRANSIENT_LOGIN_ANSWERS = ("shutting down", "fully booted")


def login_refusal(message: str) -> Down:
    """What a refused Login means: Asterisk in transition, or a fault to fix."""
    text = message.lower()
    return Down.RESTARTING if any(t in text for t in _TRANSIENT_LOGIN_ANSWERS) else Down.FAULT


@dataclass(frozen=True)
class _LinkEnd:
    reason: str
    down: Down
    was_logged_in: bool


class _Pending:
    __slots__ = ("frames", "future", "listing")

    def __init__(self) -> None:
        self.future: asyncio.Future[list[AmiEvent]] = asyncio.get_running_loop().create_future()
        self.frames: list[AmiEvent] = []
        self.listing = False

    def finish(self) -> None:
        if not self.future.done():
            self.future.set_result(self.frames)


_ERROR_RESPONSES = frozenset({"error", "fail", "failure"})


class AmiClient:
    """One AMI link, kept logged in until ``stop()``.

    ``events`` receives every AMI event in arrival order, with a ``ConnectionChange``
    whenever the login state changes; it is meant for exactly one consumer. It is
    unbounded on purpose: dropping an event could lose a call's outcome.
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        *,
        logger: Logger | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.events: asyncio.Queue[AmiEvent | ConnectionChange] = asyncio.Queue()
        self._log: Logger = logger if logger is not None else structlog.get_logger(__name__)
        self._jitter = jitter
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[str, _Pending] = {}
        self._ids = f"cbd-{secrets.token_hex(4)}"
        self._next_id = 0
        self._login_id: str | None = None
        self._logged_in = asyncio.Event()
        self._last_error: str | None = None
        self._logged_error: str | None = None
        self._reconnects = 0
        self._events_received = 0
        self._version = ""
        self._refusal: tuple[str, Down] | None = None
        self._down_since: float | None = None  # loop time the link went down
        self._outage_retries = 0  # tries since then

    # State

    @property
    def logged_in(self) -> bool:
        return self._logged_in.is_set()

    @property
    def last_error(self) -> str | None:
        """Why the link is (or last was) down, e.g. ``login refused: Authentication
        failed``; None once logged in again."""
        return self._last_error

    @property
    def reconnects(self) -> int:
        """Connection attempts made after the first one."""
        return self._reconnects

    @property
    def events_received(self) -> int:
        return self._events_received

    # Lifecycle

    async def start(self) -> None:
        """Start connecting in the background; returns at once."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ami-client")

    async def stop(self) -> None:
        """Close the link (with a Logoff if logged in) and stop reconnecting."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def wait_logged_in(self, timeout: float) -> bool:  # noqa: ASYNC109 - the API asked for it
        """True once logged in; False if ``timeout`` seconds pass first."""
        try:
            async with asyncio.timeout(timeout):
                await self._logged_in.wait()
        except TimeoutError:
            return False
        return True

    # Actions

    async def originate(self, fields: Fields) -> OriginateSent:
        """Send one Originate, always ``Async: true``, exactly once.

        Raises AmiNotConnected (nothing sent), AmiActionError (Asterisk refused it),
        AmiOriginateUnknown (sent, but the answer was lost: reconcile, never resend),
        ValueError (a header would break the frame; nothing sent).
        """
        request: dict[str, str | Sequence[str]] = {
            k: v for k, v in fields.items() if k.lower() not in ("action", "async")
        }
        request = {"Action": "Originate", **request, "Async": "true"}
        try:
            frames = await self._request(request, within=self.settings.action_timeout)
        except AmiSentButUnanswered as exc:
            raise AmiOriginateUnknown(f"Originate sent, answer lost: {exc}", exc.action_id) from exc
        response = _checked(frames)
        return OriginateSent(action_id(response), header(response, "Message"))

    async def hangup(self, channel: str, cause: int = 16) -> None:
        """Hang up ``channel``; AmiActionError("No such channel") if it is gone."""
        await self.action({"Action": "Hangup", "Channel": channel, "Cause": str(cause)})

    async def core_show_channels(self) -> list[AmiEvent]:
        """The ``CoreShowChannel`` events: one per channel Asterisk has now."""
        frames = await self.action({"Action": "CoreShowChannels"})
        return [f for f in frames if name(f) == "CoreShowChannel"]

    async def action(self, fields: Fields, *, timeout: float | None = None) -> list[AmiEvent]:  # noqa: ASYNC109
        """Send one action; return its response followed by its list events (with the
        ``...Complete`` event). Bounded by ``timeout`` (default ``action_timeout``).

        Raises AmiNotConnected, AmiConnectionLost, AmiActionTimeout, AmiActionError,
        ValueError. Use ``originate()`` for Originate.
        """
        if any(
            k.lower() == "action" and isinstance(v, str) and v.lower() == "originate"
            for k, v in fields.items()
        ):
            raise ValueError(
                "send Originate with originate(), which guarantees Async and no resend"
            )
        frames = await self._request(fields, within=timeout or self.settings.action_timeout)
        _checked(frames)
        return frames

    async def _request(
        self, fields: Fields, *, within: float, login: bool = False
    ) -> list[AmiEvent]:
        """Send once and wait for the complete answer. Never re-sent by anything."""
        if any(k.lower() == "actionid" for k in fields):
            raise ValueError("ActionID is set by AmiClient")
        if "Action" not in fields:
            raise ValueError("an AMI action needs an 'Action' header")
        self._next_id += 1
        aid = f"{self._ids}-{self._next_id}"
        data = encode_frame({**fields, "ActionID": aid})  # ValueError before anything is sent
        writer = self._writer
        if writer is None or writer.is_closing() or not (login or self.logged_in):
            raise AmiNotConnected(f"AMI not logged in ({self._last_error or 'connecting'})")
        pending = self._pending[aid] = _Pending()
        if login:
            self._login_id = aid
        try:
            writer.write(data)
            async with asyncio.timeout(within):
                return await pending.future
        except TimeoutError:
            raise AmiActionTimeout(
                f"no answer to {fields['Action']} within {within}s", aid
            ) from None
        finally:
            del self._pending[aid]

    # The link

    async def _run(self) -> None:
        failures = 0
        loop = asyncio.get_running_loop()
        while True:
            end = await self._connect_once()
            failures = 0 if end.was_logged_in else failures + 1
            if end.was_logged_in or self._down_since is None:
                self._down_since = loop.time()
            self._note_down(end.reason)
            delay = reconnect_delay(
                max(failures - 1, 0),
                end.down,
                minimum=self.settings.reconnect_min,
                maximum=self.settings.reconnect_max,
                restarting_max=self.settings.reconnect_restarting_max,
                jitter=self._jitter(),
            )
            self._log.info(
                "ami_retry",
                delay=round(delay, 3),
                reason=end.reason,
                down=str(end.down),
                retry=self._outage_retries + 1,
                down_for=round(loop.time() - self._down_since, 3),
            )
            await asyncio.sleep(delay)
            self._reconnects += 1
            self._outage_retries += 1

    def _outcome(self, task: asyncio.Task[tuple[str, Down]]) -> tuple[str, Down]:
        exc = task.exception()
        if exc is None:
            return task.result()
        if isinstance(exc, AmiError):
            return str(exc), Down.FAULT
        # A bug here must be loud; the link is rebuilt so calls can still be placed.
        self._log.error("ami_client_bug", exc_info=exc)
        return f"internal error: {exc!r}", Down.FAULT

    def _note_down(self, reason: str) -> None:
        """Record why the link is down; log each distinct reason once as an error (each
        retry has its own info line)."""
        self._last_error = reason
        if reason != self._logged_error:
            self._logged_error = reason
            self._log.error(
                "ami_link_down", reason=reason, host=self.settings.host, port=self.settings.port
            )

    async def _connect_once(self) -> _LinkEnd:
        """One connection, from TCP connect to its end."""
        s = self.settings
        try:
            async with asyncio.timeout(s.connect_timeout):
                reader, writer = await asyncio.open_connection(s.host, s.port)
        except (OSError, TimeoutError) as exc:
            # Refused: the host is up and nothing listens, Asterisk is (re)starting.
            # Anything else (no route, no answer) is not fixed by trying again soon.
            down = Down.RESTARTING if isinstance(exc, ConnectionRefusedError) else Down.FAULT
            reason = f"connect to {s.host}:{s.port} failed: {exc or type(exc).__name__}"
            return _LinkEnd(reason, down, False)
        tasks: list[asyncio.Task[tuple[str, Down]]] = []
        reason = "client stopped"
        self._refusal = None
        try:
            try:
                async with asyncio.timeout(s.connect_timeout):
                    banner = await reader.readuntil(b"\r\n")
            except (OSError, asyncio.IncompleteReadError) as exc:
                # Closed before the banner: an Asterisk on its way down.
                reason = f"no AMI banner from {s.host}:{s.port} ({type(exc).__name__})"
                return _LinkEnd(reason, Down.RESTARTING, False)
            except (TimeoutError, asyncio.LimitOverrunError):
                reason = f"no AMI banner from {s.host}:{s.port}"
                return _LinkEnd(reason, Down.FAULT, False)
            if not banner.startswith(BANNER_PREFIX):
                reason = f"{s.host}:{s.port} is not AMI (banner {banner[:40]!r})"
                return _LinkEnd(reason, Down.FAULT, False)
            self._version = banner[len(BANNER_PREFIX) :].decode("ascii", "replace").strip()
            self._writer = writer
            tasks = [
                asyncio.create_task(self._read(reader)),
                asyncio.create_task(self._login_and_keep_alive()),
            ]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            # A refused login may also show up first as the close that follows it.
            reason, down = self._refusal or self._outcome(done.pop())
            return _LinkEnd(reason, down, self.logged_in)
        except asyncio.CancelledError:
            if self.logged_in:
                writer.write(encode_frame({"Action": "Logoff"}))
            raise
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            was_logged_in = self.logged_in
            self._writer = None
            self._logged_in.clear()
            for aid, pending in self._pending.items():
                if not pending.future.done():
                    pending.future.set_exception(AmiConnectionLost(f"AMI link lost: {reason}", aid))
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            if was_logged_in:
                self.events.put_nowait(ConnectionChange(logged_in=False, reason=reason))

    async def _read(self, reader: asyncio.StreamReader) -> tuple[str, Down]:
        decoder = FrameDecoder()
        while True:
            try:
                data = await reader.read(65536)
            except OSError as exc:
                return f"connection error: {exc}", Down.RESTARTING
            if not data:
                return "connection closed by Asterisk", Down.RESTARTING
            for frame in decoder.feed(data):
                if frame.problem:
                    self._log.warning("ami_bad_frame", problem=frame.problem)
                if frame.headers is not None:
                    self._dispatch(frame.headers)

    def _dispatch(self, msg: AmiEvent) -> None:
        """Route one frame, synchronously, so arrival order is kept everywhere."""
        # Most frames are events with no action in flight: skip the ActionID lookup,
        # which scans every header when the frame has none.
        pending = self._pending.get(action_id(msg)) if self._pending else None
        if "Event" not in msg:  # a response (OriginateResponse has both headers)
            if pending is None:
                self._log.debug("ami_unmatched_response", action_id=action_id(msg))
                return
            pending.frames.append(msg)
            if action_id(msg) == self._login_id:
                self._on_login_response(msg)
            if header(msg, "EventList").lower() == "start":
                pending.listing = True
            else:
                pending.finish()
            return
        # Only a list action collects events; any other event with an ActionID (the
        # OriginateResponse of an async Originate) is an event like every other.
        if pending is not None and pending.listing:
            pending.frames.append(msg)
            if header(msg, "EventList").lower() == "complete":
                pending.finish()
            return
        self._events_received += 1
        self.events.put_nowait(msg)

    def _on_login_response(self, msg: AmiEvent) -> None:
        # Runs inside _dispatch so the marker precedes the first event after login.
        self._login_id = None
        if header(msg, "Response") != "Success":
            message = header(msg, "Message") or header(msg, "Response")
            self._refusal = f"login refused: {message}", login_refusal(message)
            return
        self._logged_in.set()
        self._last_error = self._logged_error = None
        down_for = None
        if self._down_since is not None:
            down_for = round(asyncio.get_running_loop().time() - self._down_since, 3)
            self._down_since = None
        self._outage_retries = 0
        self._log.info(
            "ami_logged_in",
            host=self.settings.host,
            port=self.settings.port,
            version=self._version,
            down_for=down_for,
        )
        self.events.put_nowait(ConnectionChange(logged_in=True, reason="logged in"))

    async def _login_and_keep_alive(self) -> tuple[str, Down]:
        s = self.settings
        login = {"Action": "Login", "Username": s.username, "Secret": s.secret, "Events": "on"}
        try:
            await self._request(login, within=s.connect_timeout, login=True)
        except AmiActionTimeout:
            return f"no answer to Login within {s.connect_timeout}s", Down.FAULT
        if not self.logged_in:
            return self._refusal or ("login refused", Down.FAULT)
        while True:
            await asyncio.sleep(s.ping_interval)
            try:
                await self._request({"Action": "Ping"}, within=s.ping_timeout)
            except AmiActionTimeout:
                return f"no answer to Ping within {s.ping_timeout}s (half-open link)", Down.FAULT


def _checked(frames: list[AmiEvent]) -> AmiEvent:
    response = frames[0]
    if header(response, "Response").lower() in _ERROR_RESPONSES:
        raise AmiActionError(header(response, "Message") or "Response: Error", response)
    return response
