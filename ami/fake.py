"""A fake Asterisk Manager Interface on 127.0.0.1 that speaks the real wire format.

Shipped in the package so unit tests and benchmarks share it. It answers the actions
callbackd uses (Login, Logoff, Ping, Originate, Hangup, CoreShowChannels, ShowDialPlan,
Filter), logs every action it receives, and lets a test misbehave on purpose: drop the
link, go half-open, split writes at any byte offset, play a recorded event stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from types import TracebackType

from ami.events import AmiEvent, header
from ami.originate import REQUIRED_CONTEXTS
from ami.protocol import FROM_CLIENT, FrameDecoder, encode_frame, split_blocks

WAIT_LIMIT = 5.0
OriginateScript = Callable[[AmiEvent], Sequence[AmiEvent]]


def answered_originate(action: AmiEvent) -> list[AmiEvent]:
    """Default Originate reaction: the originated channel appears and is answered."""
    channel = header(action, "Channel", "Local/s@callbackd-a") + ";1"
    common = {
        "Channel": channel,
        "Context": header(action, "Context"),
        "Exten": header(action, "Exten"),
    }
    return [
        {"Event": "Newchannel", **common, "ChannelState": "0", "ChannelStateDesc": "Down"},
        {"Event": "OriginateResponse", "Response": "Success", **common, "Reason": "4"},
    ]


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.logged_in = False
        self.answering = True
        self.filters: list[str] = []
        self.closed = asyncio.Event()
        self._write_lock = asyncio.Lock()

    def wants(self, data: bytes) -> bool:
        if not (self.logged_in and self.answering):
            return False
        text = data.decode("utf-8", errors="replace")
        allow = [f for f in self.filters if not f.startswith("!")]
        deny = [f[1:] for f in self.filters if f.startswith("!")]
        if allow and not any(re.search(f, text) for f in allow):
            return False
        return not any(re.search(f, text) for f in deny)

    async def write(self, data: bytes, chunk: int | None) -> None:
        async with self._write_lock:
            try:
                if chunk is None:
                    self.writer.write(data)
                    await self.writer.drain()
                    return
                for i in range(0, len(data), chunk):
                    self.writer.write(data[i : i + chunk])
                    await self.writer.drain()
                    # Two loop turns: the peer's read runs before the next chunk is written.
                    await asyncio.sleep(0)
                    await asyncio.sleep(0)
            except ConnectionError:
                pass


class FakeAmiServer:
    """``async with FakeAmiServer() as ami:`` then connect to ``ami.host``/``ami.port``."""

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        username: str = "callbackd",
        secret: str = "fake-secret",  # noqa: S107 - a test double's default
        originate_script: OriginateScript = answered_originate,
        contexts: Iterable[str] = REQUIRED_CONTEXTS,
        version: str = "9.0.0",
    ) -> None:
        self.username = username
        self.secret = secret
        self.originate_script = originate_script
        self.contexts = list(contexts)
        self.version = version
        self.port = 0
        self.actions: list[AmiEvent] = []
        """Every action received, in order, including those not answered."""
        self.channels: list[AmiEvent] = []
        """What CoreShowChannels lists (and Hangup may remove): CoreShowChannel fields."""
        self.logins = 0
        self.originate_error: str | None = None
        """When set, Originate is answered with ``Response: Error`` and this message."""
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._chunk: int | None = None
        self._action_arrived = asyncio.Event()
        self._handlers: dict[str, Callable[[_Connection, AmiEvent], Awaitable[None]]] = {
            "ping": self._ping,
            "filter": self._filter,
            "originate": self._originate,
            "hangup": self._hangup,
            "coreshowchannels": self._core_show_channels,
            "showdialplan": self._show_dialplan,
        }

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.drop_connections()

    async def __aenter__(self) -> FakeAmiServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # Controls for tests

    def count(self, action: str) -> int:
        """How many actions named ``action`` arrived (answered or not)."""
        return sum(1 for a in self.actions if header(a, "Action").lower() == action.lower())

    async def wait_for_action(self, action: str, count: int = 1) -> AmiEvent:
        """The ``count``-th received action named ``action``, waiting (at most
        WAIT_LIMIT seconds, then TimeoutError) for it if needed."""
        async with asyncio.timeout(WAIT_LIMIT):
            while True:
                self._action_arrived.clear()
                seen = [a for a in self.actions if header(a, "Action").lower() == action.lower()]
                if len(seen) >= count:
                    return seen[count - 1]
                await self._action_arrived.wait()

    async def push_events(self, events: Iterable[AmiEvent]) -> None:
        """Send events to every logged-in, answering connection."""
        for event in events:
            await self._broadcast(encode_frame(event))

    async def push_raw(self, data: bytes) -> None:
        """Send raw bytes, unchecked, to every logged-in, answering connection."""
        for conn in list(self._connections):
            if conn.logged_in and conn.answering:
                await conn.write(data, self._chunk)

    async def replay(self, raw_text: str) -> None:
        """Play a recorded stream (text blocks separated by blank lines, as in
        tests/fixtures/ami/*.ami). Only events are sent: the recording's responses
        answered the recorder's actions, not the current client's."""
        for block in split_blocks(raw_text):
            if block.startswith(b"Event:"):
                await self._broadcast(block)

    async def drop_connections(self) -> None:
        """Close every open connection, as when Asterisk restarts."""
        conns = list(self._connections)
        for conn in conns:
            conn.writer.close()
        for conn in conns:
            await conn.closed.wait()

    def stop_answering(self) -> None:
        """Make the open connections half-open: actions are still read and logged but
        nothing is written back. Connections made later answer normally."""
        for conn in self._connections:
            conn.answering = False

    def split_writes(self, n: int | None) -> None:
        """Write everything from now on in ``n``-byte chunks (None: whole frames)."""
        if n is not None and n < 1:
            raise ValueError("chunk size must be at least 1")
        self._chunk = n

    # Protocol

    async def _broadcast(self, frame: bytes) -> None:
        for conn in list(self._connections):
            if conn.wants(frame):
                await conn.write(frame, self._chunk)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(reader, writer)
        self._connections.add(conn)
        try:
            await conn.write(f"Asterisk Call Manager/{self.version}\r\n".encode(), self._chunk)
            decoder = FrameDecoder(FROM_CLIENT)
            while data := await reader.read(65536):
                for frame in decoder.feed(data):
                    if frame.headers is None:
                        continue
                    self.actions.append(frame.headers)
                    self._action_arrived.set()
                    if conn.answering and not await self._answer(conn, frame.headers):
                        return
        except ConnectionError:
            pass
        finally:
            self._connections.discard(conn)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            conn.closed.set()

    async def _reply(self, conn: _Connection, action: AmiEvent, fields: dict[str, str]) -> None:
        if "ActionID" in action:
            fields = {"Response": fields.pop("Response"), "ActionID": action["ActionID"], **fields}
        await conn.write(encode_frame(fields), self._chunk)

    async def _answer(self, conn: _Connection, action: AmiEvent) -> bool:
        """Answer one action; False closes the connection."""
        name = header(action, "Action").lower()
        if name == "login":
            if (header(action, "Username"), header(action, "Secret")) != (
                self.username,
                self.secret,
            ):
                await self._reply(
                    conn, action, {"Response": "Error", "Message": "Authentication failed"}
                )
                return False  # Asterisk closes the session after a refused login
            await self._reply(
                conn, action, {"Response": "Success", "Message": "Authentication accepted"}
            )
            conn.logged_in = True
            self.logins += 1
            await conn.write(
                encode_frame(
                    {"Event": "FullyBooted", "Privilege": "system,all", "Status": "Fully Booted"}
                ),
                self._chunk,
            )
            return True
        if name == "logoff":
            await self._reply(
                conn, action, {"Response": "Goodbye", "Message": "Thanks for all the fish."}
            )
            return False
        if not conn.logged_in:
            await self._reply(conn, action, {"Response": "Error", "Message": "Permission denied"})
            return True
        handler = self._handlers.get(name)
        if handler is None:
            await self._reply(
                conn, action, {"Response": "Error", "Message": "Invalid/unknown command"}
            )
        else:
            await handler(conn, action)
        return True

    async def _ping(self, conn: _Connection, action: AmiEvent) -> None:
        await self._reply(
            conn, action, {"Response": "Success", "Ping": "Pong", "Timestamp": f"{time.time():.6f}"}
        )

    async def _filter(self, conn: _Connection, action: AmiEvent) -> None:
        conn.filters.append(header(action, "Filter"))
        await self._reply(
            conn, action, {"Response": "Success", "Message": "Filter Added Successfully"}
        )

    async def _originate(self, conn: _Connection, action: AmiEvent) -> None:
        if self.originate_error is not None:
            await self._reply(conn, action, {"Response": "Error", "Message": self.originate_error})
            return
        await self._reply(
            conn, action, {"Response": "Success", "Message": "Originate successfully queued"}
        )
        channel_id = header(action, "ChannelId")
        for scripted in self.originate_script(action):
            event = dict(scripted)
            if channel_id:
                event.setdefault("Uniqueid", channel_id)
                event.setdefault("Linkedid", channel_id)
            if event.get("Event") == "OriginateResponse" and "ActionID" in action:
                event.setdefault("ActionID", action["ActionID"])
            await self._broadcast(encode_frame(event))

    async def _hangup(self, conn: _Connection, action: AmiEvent) -> None:
        # Asterisk looks the channel up by name or by uniqueid.
        wanted = header(action, "Channel")
        gone = [c for c in self.channels if wanted in (header(c, "Channel"), header(c, "Uniqueid"))]
        if not gone:
            await self._reply(conn, action, {"Response": "Error", "Message": "No such channel"})
            return
        self.channels = [c for c in self.channels if c not in gone]
        await self._reply(conn, action, {"Response": "Success", "Message": "Channel Hungup"})
        cause = header(action, "Cause", "16")
        for channel in gone:
            await self._broadcast(
                encode_frame(
                    {"Event": "Hangup", **channel, "Cause": cause, "Cause-txt": "Normal Clearing"}
                )
            )

    async def _list(
        self,
        conn: _Connection,
        action: AmiEvent,
        what: str,
        items: Sequence[AmiEvent],
        complete: str,
    ) -> None:
        action_id = {"ActionID": action["ActionID"]} if "ActionID" in action else {}
        await self._reply(
            conn,
            action,
            {"Response": "Success", "EventList": "start", "Message": f"{what} will follow"},
        )
        for item in items:
            await conn.write(encode_frame({**item, **action_id}), self._chunk)
        await conn.write(
            encode_frame(
                {
                    "Event": complete,
                    **action_id,
                    "EventList": "Complete",
                    "ListItems": str(len(items)),
                }
            ),
            self._chunk,
        )

    async def _core_show_channels(self, conn: _Connection, action: AmiEvent) -> None:
        items = [{"Event": "CoreShowChannel", **c} for c in self.channels]
        await self._list(conn, action, "Channels", items, "CoreShowChannelsComplete")

    async def _show_dialplan(self, conn: _Connection, action: AmiEvent) -> None:
        wanted = header(action, "Context")
        contexts = [c for c in self.contexts if not wanted or c == wanted]
        if not contexts:
            await self._reply(
                conn, action, {"Response": "Error", "Message": f"Did not find context {wanted}"}
            )
            return
        items: list[AmiEvent] = [
            {
                "Event": "ListDialplan",
                "Context": context,
                "Extension": "s",
                "Priority": "1",
                "Application": "NoOp",
                "AppData": "",
                "Registrar": "pbx_config",
            }
            for context in contexts
        ]
        await self._list(conn, action, "DialPlan", items, "ShowDialPlanComplete")
