"""AMI events as the rest of callbackd sees them: read-only mappings of header name to
value, in arrival order.

An event keeps the header names exactly as Asterisk sent them. A header that Asterisk
repeated (``ChanVariable``, ``Output``) holds all its values joined by ``"\\n"``; values
never contain a newline on the wire, so nothing is lost.

What the client receives is a `RawEvent`: the frame's text, with a header looked up in
it when asked for. The engine asks for four or five headers of an event's twenty, and
stores the event as the text it came in, so splitting every frame into a dict cost
more than everything else the engine does with it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

AmiEvent = Mapping[str, str]


def parse_headers(text: str) -> dict[str, str]:
    """Every header of a frame's text (CRLF or LF line ends); lines without a name
    and a colon are skipped."""
    headers: dict[str, str] = {}
    # Splits at CRLF or a lone LF at a third of the cost of a regex split.
    for line in text.replace("\r\n", "\n").split("\n"):
        key, sep, value = line.partition(":")
        if not sep or not key:
            continue
        value = value.removeprefix(" ")
        headers[key] = f"{headers[key]}\n{value}" if key in headers else value
    return headers


def _is_name(key: str) -> bool:
    """Whether `key` is a header name parse_headers could give."""
    return bool(key) and ":" not in key and "\n" not in key


class _Repeated(Exception):
    """A header name on more than one line: its values are joined in the parsed dict."""


class RawEvent(Mapping[str, str]):
    """One frame as received: its text, and its headers on demand.

    A header is found by searching the text for its line, which is what `parse_headers`
    would give: the name exactly, a colon, the value without one leading space. A name
    on more than one line, and anything that reads the whole event (iteration, `len`,
    equality), take the parsed dict, made once.
    """

    __slots__ = ("_lines", "_lowered", "_parsed")

    def __init__(self, text: str) -> None:
        self._lines = "\n" + text  # every header line follows a newline
        self._lowered: str | None = None
        self._parsed: dict[str, str] | None = None

    @property
    def text(self) -> str:
        """The frame as it came, without its terminating blank line."""
        return self._lines[1:]

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        if not _is_name(key):
            return default
        try:
            value = self._find(self._lines, "\n" + key + ":")
        except _Repeated:
            value = self._headers()[key]
        return default if value is None else value

    def get_ignoring_case(self, key: str) -> str | None:
        """The value of the first header whose name matches `key` ignoring case."""
        if not _is_name(key):
            return None
        if self._lowered is None:
            self._lowered = self._lines.lower()
        if len(self._lowered) == len(self._lines):  # positions in one are in the other
            try:
                return self._find(self._lowered, "\n" + key.lower() + ":")
            except _Repeated:
                pass
        wanted = key.lower()
        return next((v for k, v in self._headers().items() if k.lower() == wanted), None)

    def _find(self, lines: str, marker: str) -> str | None:
        """The value on the line that `marker` starts in `lines`: the text, or its lower
        case. Raises _Repeated if a second line starts with it too."""
        start = lines.find(marker)
        if start < 0:
            return None
        start += len(marker)
        # The original case is sliced out, whichever text was searched.
        end = lines.find("\n", start)
        if end < 0:  # the last line
            return self._lines[start:].removeprefix(" ")
        if lines.find(marker, end) >= 0:
            raise _Repeated
        return self._lines[start:end].removeprefix(" ").removesuffix("\r")  # CRLF or LF

    def _headers(self) -> dict[str, str]:
        if self._parsed is None:
            self._parsed = parse_headers(self._lines)
        return self._parsed

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and _is_name(key) and f"\n{key}:" in self._lines

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers())

    def __len__(self) -> int:
        return len(self._headers())

    def __repr__(self) -> str:
        return f"RawEvent({self._headers()!r})"


@dataclass(frozen=True, slots=True)
class ConnectionChange:
    """Queued among the events whenever the AMI login state changes.

    After ``logged_in=False`` events may have been missed; after the next
    ``logged_in=True`` the consumer should reconcile (e.g. ``CoreShowChannels``).
    """

    logged_in: bool
    reason: str


def header(ev: AmiEvent, key: str, default: str = "") -> str:
    """The value of header ``key``, matched case-insensitively.

    Asterisk is not consistent across events (``Uniqueid`` vs ``UniqueID``).
    """
    value = ev.get(key)
    if value is not None:
        return value
    if isinstance(ev, RawEvent):
        value = ev.get_ignoring_case(key)
        return default if value is None else value
    wanted = key.lower()
    size = len(wanted)
    for k, v in ev.items():
        # Only a name of the same length can match: most are passed over without
        # lower(), which matters because the tracker asks for absent headers often.
        if len(k) == size and k.lower() == wanted:
            return v
    return default


def name(ev: AmiEvent) -> str | None:
    """The event name (``Newchannel``, ``Hangup``, ...), or None for a response."""
    return ev.get("Event")


def uniqueid(ev: AmiEvent) -> str:
    return header(ev, "Uniqueid")


def linkedid(ev: AmiEvent) -> str:
    return header(ev, "Linkedid")


def action_id(ev: AmiEvent) -> str:
    return header(ev, "ActionID")
