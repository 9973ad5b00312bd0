#!/usr/bin/env python3
"""Place one callback attempt through raw AMI and record its events.

Sends the single Originate of docs/call-flow.md, collects every event of the call
(any ``Linkedid``/``Uniqueid``/``DestLinkedid``/``DestUniqueid`` starting with the
call uuid, plus the OriginateResponse) until every channel of the call has hung up,
and writes them as raw AMI text: ``Key: value`` lines, a blank line after each event.

Example (the test PBX of tools/testpbx)::

    tools/record_call.py --a 1001 --b 1102 --out tests/fixtures/ami/success.ami

Needs only the standard library.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import uuid

Event = list[tuple[str, str]]
DEFAULT_VARS = ["ORDER_ID=42", "CUSTOMER=acme"]


def header(msg: Event, key: str) -> str | None:
    key = key.lower()
    for k, v in msg:
        if k.lower() == key:
            return v
    return None


def render(msg: Event) -> str:
    return "".join(f"{k}: {v}\r\n" for k, v in msg) + "\r\n"


class Ami:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.bytes_in = 0

    @classmethod
    async def connect(cls, host: str, port: int) -> Ami:
        reader, writer = await asyncio.open_connection(host, port)
        banner = await reader.readline()
        if not banner.startswith(b"Asterisk Call Manager/"):
            raise RuntimeError(f"not an AMI server: {banner!r}")
        return cls(reader, writer)

    async def send(self, fields: list[tuple[str, str]]) -> None:
        for k, v in fields:
            if "\r" in v or "\n" in v:
                raise ValueError(f"line break in header {k}")
        self.writer.write(render(fields).encode())
        await self.writer.drain()

    async def read(self) -> Event:
        msg: Event = []
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("AMI connection closed")
            self.bytes_in += len(line)
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if not text:
                if msg:
                    return msg
                continue
            key, _, value = text.partition(":")
            msg.append((key, value.lstrip(" ")))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


def write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def originate_fields(args: argparse.Namespace, call_uuid: str) -> list[tuple[str, str]]:
    """The one Originate of docs/call-flow.md."""
    a_dial = "&".join(args.channel.format(number=n) for n in args.a)
    variables = [
        ("CBD_CALL_UUID", call_uuid),
        ("CBD_A_DIAL", a_dial),
        ("CBD_A_TIMEOUT", str(args.a_timeout)),
        ("CBD_A_CID_NUM", args.a_cid_num),
        ("CBD_A_CID_NAME", args.a_cid_name),
        ("CBD_B_DIAL", args.channel.format(number=args.b)),
        ("CBD_B_TIMEOUT", str(args.b_timeout)),
        ("CBD_B_CID_NUM", args.b_cid_num),
        ("CBD_B_OPTS", args.b_opts),
    ]
    for item in args.var if args.var is not None else DEFAULT_VARS:
        name, _, value = item.partition("=")
        variables.append((f"_{name}", value))
    return [
        ("Action", "Originate"),
        ("ActionID", call_uuid),
        ("Channel", "Local/s@callbackd-a"),
        ("Context", "callbackd-b"),
        ("Exten", "s"),
        ("Priority", "1"),
        ("ChannelId", call_uuid),
        ("OtherChannelId", f"{call_uuid}-a"),
        ("Timeout", str((args.a_timeout + 5) * 1000)),
        ("Account", args.account),
        ("Async", "true"),
        *(("Variable", f"{k}={v}") for k, v in variables),
    ]


def belongs(msg: Event, call_uuid: str) -> bool:
    for key in ("Linkedid", "Uniqueid", "DestLinkedid", "DestUniqueid"):
        value = header(msg, key)
        if value and value.startswith(call_uuid):
            return True
    return header(msg, "Event") == "OriginateResponse" and header(msg, "ActionID") == call_uuid


async def record(args: argparse.Namespace) -> int:
    call_uuid = args.uuid or str(uuid.uuid4())
    ami = await Ami.connect(args.host, args.port)
    await ami.send(
        [
            ("Action", "Login"),
            ("ActionID", "login"),
            ("Username", args.user),
            ("Secret", args.secret),
        ]
    )
    while True:
        msg = await ami.read()
        if header(msg, "ActionID") == "login":
            break
    if header(msg, "Response") != "Success":
        print(f"login failed: {header(msg, 'Message')}", file=sys.stderr)
        return 1

    fields = originate_fields(args, call_uuid)
    events: list[Event] = []
    channels: set[str] = set()
    hung_up: set[str] = set()
    all_count = all_bytes = 0
    originate_done = False
    response: Event | None = None
    start = time.monotonic()
    deadline = start + args.max_seconds
    ami.bytes_in = 0
    await ami.send(fields)
    while True:
        now = time.monotonic()
        done = originate_done and channels and channels <= hung_up
        # After the last hang-up, take what is still on its way for a moment.
        limit = min(deadline, now + args.linger) if done else deadline
        try:
            msg = await asyncio.wait_for(ami.read(), timeout=max(limit - now, 0.01))
        except TimeoutError:
            if done:
                break
            print(f"call {call_uuid} still up after {args.max_seconds} s", file=sys.stderr)
            await ami.close()
            return 1
        if header(msg, "Event") is None and header(msg, "ActionID") == call_uuid:
            response = msg
            if header(msg, "Response") != "Success":
                print(f"Originate refused: {header(msg, 'Message')}", file=sys.stderr)
                await ami.close()
                return 1
            continue
        if header(msg, "Event") is None:
            continue
        all_count += 1
        all_bytes += len(render(msg))
        if not belongs(msg, call_uuid):
            continue
        events.append(msg)
        name = header(msg, "Event")
        uid = header(msg, "Uniqueid") or ""
        if name == "Newchannel":
            channels.add(uid)
        elif name == "Hangup":
            hung_up.add(uid)
        elif name == "OriginateResponse":
            originate_done = True
    elapsed = time.monotonic() - start
    await ami.close()

    text = "".join(render(e) for e in events)
    await asyncio.to_thread(write_text, args.out, text)
    names: dict[str, int] = {}
    for e in events:
        n = header(e, "Event") or "?"
        names[n] = names.get(n, 0) + 1
    print(f"call {call_uuid}: {len(events)} events, {len(text.encode())} bytes -> {args.out}")
    print(f"  all events on the connection meanwhile: {all_count}, {all_bytes} bytes")
    print(f"  {elapsed:.1f} s; " + ", ".join(f"{k} {v}" for k, v in sorted(names.items())))
    if args.show_originate:
        print(render(fields), end="")
        if response:
            print(render(response), end="")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--a", action="append", required=True, help="A number (repeat: ring together)")
    p.add_argument("--b", required=True, help="B number")
    p.add_argument("--out", required=True, help="file to write the events to")
    p.add_argument("--a-timeout", type=int, default=30)
    p.add_argument("--b-timeout", type=int, default=30)
    p.add_argument("--a-cid-num", default="4950000001")
    p.add_argument("--a-cid-name", default="callbackd")
    p.add_argument("--b-cid-num", default="", help="empty: B sees the A number that answered")
    p.add_argument("--b-opts", default="", help="empty or S(n)")
    p.add_argument(
        "--var",
        action="append",
        help="task variable NAME=VALUE, set on both legs (repeat; default: "
        + " ".join(DEFAULT_VARS)
        + ")",
    )
    p.add_argument("--account", default="test")
    p.add_argument("--channel", default="Local/{number}@phones", help="A/B channel template")
    p.add_argument("--uuid", help="call uuid (default: a new uuid4)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5038)
    p.add_argument("--user", default="callbackd")
    p.add_argument("--secret", default="callbackd-test")
    p.add_argument("--max-seconds", type=float, default=120.0)
    p.add_argument(
        "--linger", type=float, default=0.5, help="seconds to keep listening after the last hang-up"
    )
    p.add_argument("--show-originate", action="store_true")
    return asyncio.run(record(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
