"""Where rendered log lines go: a bounded queue that one writer thread drains to the
output stream, so no caller ever waits on stdout/stderr. A stream that blocks (a pipe
nobody reads) or fails (a closed pipe: EPIPE) costs lines, never the event loop or the
SIGTERM handling: a full queue drops lines and counts them, and once writing works
again one line says how many were lost.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import threading
from collections.abc import Callable
from typing import TextIO

# About 3 MB of JSON lines: minutes of a busy daemon's logging, held while the reader of
# the stream is slow; beyond it lines are dropped rather than memory grown.
CAPACITY = 10_000
# Lines joined into one write when the writer finds many waiting.
BATCH = 512

Write = Callable[[str], None]
# Told how many lines were dropped since the last notice; logs one line about it.
DropNotice = Callable[[int], None]


def stream_writer(stream: TextIO) -> Write:
    """Writes text to `stream`: straight to its file descriptor when it has one, so no
    text buffer is left holding lines that a broken pipe refuses (Python would report
    them again at exit); else through the stream (in-memory streams of tests)."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        fd = -1
    if fd < 0:

        def write_stream(text: str) -> None:
            stream.write(text)
            stream.flush()

        return write_stream

    with contextlib.suppress(OSError, ValueError):
        stream.flush()  # anything already buffered goes first

    def write_fd(text: str) -> None:
        data = memoryview(text.encode("utf-8", "backslashreplace"))
        while data:
            try:
                data = data[os.write(fd, data) :]
            except BlockingIOError:  # a non-blocking pipe that is full: wait for room
                select.select([], [fd], [])

    return write_fd


class _Flushed:
    """A marker in the queue: set once every line queued before it is written."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_CLOSE = object()


class LineSink:
    """Lines in, written by a daemon thread of their own, in order.

    `put` never blocks and never raises. A stream that failed (closed, EPIPE, EBADF)
    is not written again: its lines count as dropped. Because the thread is a daemon
    thread, a process whose stream blocks forever can still exit."""

    def __init__(
        self, write: Write, *, capacity: int = CAPACITY, notice: DropNotice | None = None
    ) -> None:
        self._write = write
        self._capacity = capacity
        self._notice = notice
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._count_lock = threading.Lock()
        self._dropped = 0  # since the start, for /metrics
        self._unreported = 0  # since the last notice
        self.failure: str | None = None  # why the stream is no longer written
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Lines lost so far: the queue was full, or the stream had failed."""
        return self._dropped

    def put(self, line: str) -> None:
        if self.failure is not None or self._queue.qsize() >= self._capacity:
            self._drop(1)
            return
        self._queue.put(line)

    def flush(self, timeout: float) -> bool:
        """Wait until the lines put so far are written (or dropped); False when
        `timeout` seconds pass first (the stream is blocked)."""
        marker = _Flushed()
        self._queue.put(marker)
        return marker.done.wait(timeout)

    def close(self) -> None:
        """Let the thread write what is queued, then end; returns at once."""
        self._queue.put(_CLOSE)

    def _drop(self, lines: int) -> None:
        with self._count_lock:
            self._dropped += lines
            self._unreported += lines

    def _run(self) -> None:
        while True:
            lines: list[str] = []
            markers: list[_Flushed] = []
            item = self._queue.get()
            while True:
                if item is _CLOSE:
                    self._write_lines(lines)
                    for marker in markers:
                        marker.done.set()
                    return
                if isinstance(item, _Flushed):
                    markers.append(item)
                else:
                    lines.append(str(item))
                if len(lines) >= BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            self._write_lines(lines)
            for marker in markers:
                marker.done.set()

    def _write_lines(self, lines: list[str]) -> None:
        if not lines:
            return
        if self.failure is not None:
            self._drop(len(lines))
            return
        try:
            self._write("".join(f"{line}\n" for line in lines))
        except (OSError, ValueError) as exc:  # EPIPE, EBADF, a closed file object
            self.failure = f"{type(exc).__name__}: {exc}"
            self._drop(len(lines))
            return
        # The notice is a line like any other: it waits until the queue has room for it.
        if self._notice is None or self._queue.qsize() >= self._capacity:
            return
        with self._count_lock:
            unreported, self._unreported = self._unreported, 0
        if unreported:
            self._notice(unreported)
