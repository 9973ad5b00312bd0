#!/usr/bin/env python3
"""Place one callback attempt through raw AMI and record its events.

Sends the daemon's Originate (ami/originate.py, docs/call-flow.md), collects every event of the call
(any ``Linkedid``/``Uniqueid``/``DestLinkedid``/``DestUniqueid`` starting with the
call uuid, plus the OriginateResponse) until every channel of the call has hung up,
and writes them as raw AMI text: ``Key: value`` lines, a blank line after each event.

Example (the test PBX of tools/testpbx)::

    tools/record_call.py --a 1001 --b 1102 --out tests/fixtures/ami/success.ami

Needs only the standard library and the repository's `ami` package.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ami.originate import CallRequest
from ami.originate import originate_fields as ami_originate_fields

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
    """The daemon's own Originate of the attempt (ami/originate.py)."""
    variables = {}
    for item in args.var if args.var is not None else DEFAULT_VARS:
        name, _, value = item.partition("=")
        variables[name] = value
    request = CallRequest(
        call_uuid=call_uuid,
        a_numbers=args.a,
        b_number=args.b,
        a_channel=args.channel,
        b_channel=args.channel,
        a_ring_timeout=args.a_timeout,
        b_ring_timeout=args.b_timeout,
        a_caller_id_number=args.a_cid_num,
        a_caller_id_name=args.a_cid_name,
        b_caller_id_number=args.b_cid_num,
        account_code=args.account,
        max_talk_time=args.max_talk,
        variables=variables,
    )
    fields: list[tuple[str, str]] = [("ActionID", call_uuid)]
    for key, value in ami_originate_fields(request).items():
        fields += [(key, v) for v in ([value] if isinstance(value, str) else value)]
    return fields


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
    p.add_argument("--max-talk", type=int, default=0, help="seconds B may talk (0: no limit)")
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
