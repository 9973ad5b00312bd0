"""The AMI wire format: encoding a frame, and decoding a byte stream into frames.

Pure and synchronous, shared by the client and the fake server. The decoder works on
bytes and decodes a frame only once it is complete, so a UTF-8 character split across
TCP reads survives (panoramisk decodes every read on its own and drops the pieces).
Its buffer is bounded: an oversized frame is skipped, not accumulated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ami.events import AmiEvent, RawEvent

BANNER_PREFIX = b"Asterisk Call Manager/"
FRAME_END = b"\r\n\r\n"
# Far above any real event (a CoreShowChannel is < 2 KiB), small enough to bound memory.
MAX_FRAME_BYTES = 256 * 1024

_FORBIDDEN = re.compile(r"[\r\n\x00]")
_LINE_BREAK = re.compile(r"\r?\n")


def encode_frame(fields: Mapping[str, str | Sequence[str]]) -> bytes:
    """One AMI frame; a sequence value becomes one header line per item (``Variable``).

    Raises ValueError, before anything can be sent, if a name or value could end the
    header line early (CR, LF, NUL). The message names the header, never the value,
    which may be a secret.
    """
    lines: list[str] = []
    for key, value in fields.items():
        if not key or ":" in key or _FORBIDDEN.search(key):
            raise ValueError(f"invalid AMI header name {key!r}")
        for item in [value] if isinstance(value, str) else value:
            if _FORBIDDEN.search(item):
                raise ValueError(f"AMI header {key!r}: value contains CR, LF or NUL")
            lines.append(f"{key}: {item}")
    return ("\r\n".join(lines)).encode("utf-8") + FRAME_END


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded frame. ``headers`` is None when the frame was unusable and skipped;
    ``problem`` says what was wrong (also set when bad bytes were replaced)."""

    headers: AmiEvent | None
    problem: str | None = None


FROM_ASTERISK = ("Event", "Response")
FROM_CLIENT = ("Action",)


def parse_frame(raw: bytes, kinds: Sequence[str] = FROM_ASTERISK) -> Frame:
    """Headers of one frame (without its terminating blank line); a frame carrying
    none of the ``kinds`` headers is skipped."""
    problem = None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # Keep the frame: losing a Hangup over one odd byte in a caller name is worse.
        text = raw.decode("utf-8", errors="replace")
        problem = "non-UTF-8 bytes replaced"
    headers = RawEvent(text)
    for kind in kinds:
        if kind in headers:
            return Frame(headers, problem)
    return Frame(None, f"frame of {len(raw)} bytes without {' or '.join(kinds)} header")


class FrameDecoder:
    """Feed it bytes as they arrive; it returns the frames completed so far."""

    def __init__(
        self, kinds: Sequence[str] = FROM_ASTERISK, max_frame_bytes: int = MAX_FRAME_BYTES
    ) -> None:
        self._kinds = kinds
        self._max = max_frame_bytes
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf already searched for FRAME_END
        self._skipping = False

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        # Every complete frame of this read is cut off in one piece and split in one
        # call: a read carries dozens of events.
        last = self._buf.rfind(FRAME_END, self._scanned)
        if last < 0:
            return self._incomplete()
        complete = bytes(self._buf[:last])
        del self._buf[: last + len(FRAME_END)]
        self._scanned = 0
        frames: list[Frame] = []
        for raw in complete.split(FRAME_END):
            if self._skipping:
                self._skipping = False  # the end of an oversized frame
            elif len(raw) > self._max:
                frames.append(Frame(None, f"frame over {self._max} bytes skipped"))
            elif raw.strip():
                frames.append(parse_frame(raw, self._kinds))
        return frames + self._incomplete()

    def _incomplete(self) -> list[Frame]:
        """What the rest of the buffer, which holds no frame end, calls for."""
        self._scanned = max(0, len(self._buf) - len(FRAME_END) + 1)
        if len(self._buf) <= self._max:
            return []
        # Keep a possible partial FRAME_END so the end is still found.
        del self._buf[: self._scanned]
        self._scanned = 0
        if self._skipping:
            return []
        self._skipping = True
        return [Frame(None, f"frame over {self._max} bytes skipped")]


def split_blocks(raw_text: str) -> list[bytes]:
    """Recorded AMI text (blocks separated by blank lines, any line ending, an optional
    banner line first) as wire frames, each ending with CRLF CRLF."""
    blocks: list[bytes] = []
    for block in re.split(r"(?:\r?\n)[ \t]*(?:\r?\n)+", raw_text):
        lines = [
            line
            for line in _LINE_BREAK.split(block)
            if line.strip() and not line.startswith(BANNER_PREFIX.decode())
        ]
        if lines:
            blocks.append("\r\n".join(lines).encode("utf-8") + FRAME_END)
    return blocks
