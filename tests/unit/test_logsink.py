"""The log writer: a stream that blocks or breaks costs lines, never the caller; lost
lines are counted and reported once writing works again."""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import threading

import pytest
import structlog

from config.settings import LogSettings
from daemon.logsetup import configure_logging, dropped_log_lines, flush_logs
from daemon.logsink import LineSink, stream_writer
from daemon.metrics import Metrics

WAIT = 10.0  # a bound on waiting for the writer thread, never reached when it works


class Gate:
    """A stream write that blocks until `open()`, like a pipe nobody reads."""

    def __init__(self) -> None:
        self.written: list[str] = []
        self.entered = threading.Event()
        self._open = threading.Event()

    def write(self, text: str) -> None:
        self.entered.set()
        self._open.wait()
        self.written.append(text)

    def open(self) -> None:
        self._open.set()


pytestmark = pytest.mark.usefixtures("restored_logging")


def test_a_blocked_stream_drops_lines_past_the_capacity_and_reports_them_once() -> None:
    gate = Gate()
    notices: list[int] = []
    sink = LineSink(gate.write, capacity=3, notice=notices.append)
    sink.put("first")
    assert gate.entered.wait(WAIT)  # the writer is stuck on "first"
    for n in range(10):
        sink.put(f"line {n}")  # returns at once although nothing can be written
    assert sink.dropped == 7
    gate.open()
    assert sink.flush(WAIT)
    assert "".join(gate.written) == "first\nline 0\nline 1\nline 2\n"
    assert notices == [7]
    sink.put("later")
    assert sink.flush(WAIT)
    assert notices == [7]  # reported once, not with every later line
    sink.close()


def test_flush_gives_up_on_a_stream_that_stays_blocked() -> None:
    gate = Gate()
    sink = LineSink(gate.write)
    sink.put("stuck")
    assert gate.entered.wait(WAIT)
    assert sink.flush(0.05) is False
    gate.open()
    assert sink.flush(WAIT)
    sink.close()


def test_a_closed_pipe_is_never_an_exception_and_its_lines_count_as_dropped() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "w") as stream:
        sink = LineSink(stream_writer(stream))
        for n in range(5):
            sink.put(f"line {n}")
        assert sink.flush(WAIT)
        sink.put("after the failure")
        assert sink.flush(WAIT)
        assert sink.dropped == 6
        assert sink.failure is not None
        assert "BrokenPipeError" in sink.failure
        sink.close()


def test_a_full_non_blocking_pipe_is_waited_for_and_loses_nothing() -> None:
    read_end, write_end = os.pipe()
    flags = fcntl.fcntl(write_end, fcntl.F_GETFL)
    fcntl.fcntl(write_end, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    line = "x" * 1000
    with os.fdopen(read_end, "rb") as reader, os.fdopen(write_end, "w") as stream:
        sink = LineSink(stream_writer(stream))
        for _ in range(200):  # 200 kB: three times a Linux pipe's buffer
            sink.put(line)
        received = b""
        while received.count(b"\n") < 200:
            received += os.read(reader.fileno(), 65536)
        assert sink.flush(WAIT)
        sink.close()
    assert received == (line + "\n").encode() * 200
    assert sink.dropped == 0


def test_logging_onto_a_blocked_stream_returns_at_once_and_counts_in_metrics() -> None:
    gate = Gate()

    class Blocked(io.StringIO):
        def write(self, text: str) -> int:
            gate.write(text)
            return len(text)

    out = Blocked()
    configure_logging(LogSettings(format="json", level="info"), stream=out, env={})
    log = structlog.get_logger("callbackd")
    log.info("first")
    assert gate.entered.wait(WAIT)
    for n in range(20_000):  # twice the queue: the second half is dropped
        log.info("busy", n=n)
    logging.getLogger("aiohttp.server").warning("a library line, dropped too")
    dropped = dropped_log_lines()
    assert dropped >= 10_000
    scraped = Metrics().registry.get_sample_value("callbackd_log_lines_dropped_total")
    assert scraped == dropped
    gate.open()
    assert flush_logs(WAIT)
    assert flush_logs(WAIT)  # the notice is queued by the writer after the batch it ends
    lines = [json.loads(x) for x in "".join(gate.written).splitlines()]
    [notice] = [x for x in lines if x["event"].startswith("log lines dropped")]
    assert notice["dropped"] == dropped
    assert notice["level"] == "warning"
    assert len(lines) == 1 + 10_000 + 1
