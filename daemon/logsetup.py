"""Logging: one structlog pipeline for our own lines and for the stdlib loggers of
aiohttp, psycopg and panoramisk. JSON lines when stderr is not a terminal (with the
`<N>` syslog priority prefix journald reads when stderr is the journal), a readable
console on a terminal. Every line passes the secret redactor last before rendering,
and goes to the output through `daemon.logsink`, so a blocked or closed stream never
holds up the caller.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog
from pydantic_core import to_json
from structlog.typing import EventDict, Processor, WrappedLogger

from config import Settings
from config.settings import LogSettings
from daemon.logsink import LineSink, stream_writer

REDACTED = "[redacted]"
# Values a log line holds as they are, with no text in them to redact.
_PLAIN_SCALARS = (int, float, bool)
# journald's priorities (syslog(3)), read from a `<N>` prefix on each stream line.
SYSLOG_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}
# Third-party loggers never log below INFO: psycopg's DEBUG lines are every connection
# attempt of the shared store, which a database restart turns into a stream.
NOISY = ("psycopg",)


class Redactor:
    """Replaces every occurrence of a known secret, in any field, key or nested value.

    Secrets are only ever added (a token removed by a reload must still never be
    logged), and a line is redacted after exceptions were formatted into it."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, secrets: Iterable[str]) -> None:
        new = {s for s in secrets if s} - self._secrets
        if not new:
            return
        self._secrets |= new
        # Longest first, so a secret that contains another is replaced whole.
        ordered = sorted(self._secrets, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def scrub(self, value: Any) -> Any:
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self._pattern.sub(REDACTED, value)
        if isinstance(value, bool | int | float | None):
            return value
        if isinstance(value, Mapping):
            return {self.scrub(k): self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.scrub(v) for v in value]
        # Anything else is rendered through repr() anyway; redact that text.
        return self._pattern.sub(REDACTED, repr(value))

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        if self._pattern is None or self._plainly_clean(self._pattern, event_dict):
            return event_dict
        return {key: self.scrub(value) for key, value in event_dict.items()}

    @staticmethod
    def _plainly_clean(pattern: re.Pattern[str], event_dict: EventDict) -> bool:
        """True for the usual line: keys and values plain text or numbers, none of them
        holding a secret, found by one search over them all (joined by a NUL, so a match
        across two of them only sends the line the long way). Anything else, a nested
        value say, is scrubbed item by item."""
        texts: list[str] = []
        for key, value in event_dict.items():
            if type(key) is not str:
                return False
            texts.append(key)
            if type(value) is str:
                texts.append(value)
            elif value is not None and type(value) not in _PLAIN_SCALARS:
                return False
        return pattern.search("\0".join(texts)) is None


REDACTOR = Redactor()
# At exit, the lines still queued get this long to be written; a stream that blocks
# (a pipe nobody reads) must not hold up a stop.
EXIT_FLUSH_SECONDS = 1.0


class _SinkHandler(logging.Handler):
    """The root logger's handler: formats a stdlib record and queues the line."""

    def __init__(self, sink: LineSink, stream: TextIO) -> None:
        super().__init__()
        self.sink = sink
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a bad record must not take its caller down
            self.handleError(record)
            return
        self.sink.put(line)


_handler: _SinkHandler | None = None  # ours on the root logger


class _Output:
    """The last processor of our own lines: renders them the way the handler's
    formatter renders foreign ones (configure_logging swaps the renderer)."""

    def __init__(self) -> None:
        self.renderers: list[Processor] = []

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> Any:
        rendered: Any = event_dict
        for processor in self.renderers:
            rendered = processor(logger, method_name, rendered)
        return rendered


_OUTPUT = _Output()


class _LineWriter:
    """What structlog loggers write their rendered lines to: the sink of our root
    handler, without the stdlib round trip (a LogRecord, caller lookup
    and formatting per line cost more than the rendering). The level check stays the
    stdlib one, so set_level() governs these lines too."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._levels = logging.getLogger(name)

    # What filter_by_level asks, under the stdlib's names.
    @property
    def disabled(self) -> bool:
        return self._levels.disabled

    def getEffectiveLevel(self) -> int:
        return self._levels.getEffectiveLevel()

    def _write(self, line: str) -> None:
        handler = _handler
        if handler is None:  # logging was reset under a logger bound before
            sys.stderr.write(line + "\n")
            return
        handler.sink.put(line)

    debug = info = warning = error = critical = exception = msg = _write


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value a config holds: the AMI secret, webhook secret, API tokens,
    the store URL and its password."""
    from daemon.store.pg.url import password_of  # psycopg only when it is asked

    store_url = settings.store.url.get_secret_value()
    return [
        settings.ami.secret.get_secret_value(),
        settings.webhooks.secret.get_secret_value(),
        *settings.api.tokens,
        *((store_url, password_of(store_url)) if store_url else ()),
    ]


def stream_is_journal(stream: TextIO, env: Mapping[str, str]) -> bool:
    """True when `stream` is the journal stream systemd connected us to
    (JOURNAL_STREAM names its device and inode, systemd.exec(5))."""
    device, _, inode = env.get("JOURNAL_STREAM", "").partition(":")
    if not device.isdigit() or not inode.isdigit():
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


def _json_text(event_dict: EventDict, **_: Any) -> str:
    """One JSON line, by pydantic-core's writer (a third of json.dumps's time; every
    line about a call is rendered on the event loop). Non-ASCII text stays UTF-8, and
    what JSON has no type for is written as its repr(), as structlog's renderer does."""
    return to_json(event_dict, fallback=repr).decode()


def _json_renderer() -> structlog.processors.JSONRenderer:
    return structlog.processors.JSONRenderer(serializer=_json_text)


class _JournalRenderer:
    """JSON with the `<N>` prefix that journald turns into the line's priority."""

    def __init__(self) -> None:
        self._json = _json_renderer()

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
        priority = SYSLOG_PRIORITY.get(event_dict.get("level", "info"), 6)
        line = self._json(logger, method_name, event_dict)
        return f"<{priority}>{line.decode() if isinstance(line, bytes) else line}"


def _renderer(settings: LogSettings, stream: TextIO, env: Mapping[str, str]) -> list[Processor]:
    json_lines = settings.format == "json" or (settings.format == "auto" and not stream.isatty())
    if not json_lines:
        return [structlog.dev.ConsoleRenderer(colors=False)]
    if stream_is_journal(stream, env):
        return [_JournalRenderer()]
    return [_json_renderer()]


def _level(name: str) -> int:
    return logging.getLevelNamesMapping()[name.upper()]


def set_level(name: str) -> None:
    """Change the level of every logger at once (config reload)."""
    level = _level(name)
    logging.getLogger().setLevel(level)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(level, logging.INFO))


def configure_logging(
    settings: LogSettings,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Set up the pipeline; safe to call again (a reload with a new format does)."""
    stream = sys.stderr if stream is None else stream
    env = os.environ if env is None else env
    REDACTOR.add(secrets)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderers: list[Processor] = [
        structlog.processors.format_exc_info,
        REDACTOR,
        *_renderer(settings, stream, env),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderers],
    )
    _OUTPUT.renderers = renderers
    global _handler
    root = logging.getLogger()
    old = _handler
    if old is not None:
        root.removeHandler(old)
    # The same stream keeps its sink (a reload must not reorder or lose queued lines).
    sink = old.sink if old is not None and old.stream is stream else _new_sink(stream)
    if old is not None and old.sink is not sink:
        old.sink.close()
    _handler = _SinkHandler(sink, stream)
    _handler.setFormatter(formatter)
    root.addHandler(_handler)
    set_level(settings.level)
    # The level check is the stdlib one, so set_level() also governs structlog loggers,
    # including ones bound before a reload.
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            _OUTPUT,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=_LineWriter,
        cache_logger_on_first_use=False,
    )


def _new_sink(stream: TextIO) -> LineSink:
    def notice(dropped: int) -> None:
        # Runs on the writer thread once writing works again; the line is queued like
        # any other, in the format configured then.
        if _handler is not None and _handler.sink is sink:
            structlog.get_logger("callbackd.log").warning(
                "log lines dropped: the output was blocked", dropped=dropped
            )

    sink = LineSink(stream_writer(stream), notice=notice)
    return sink


def flush_logs(timeout: float = EXIT_FLUSH_SECONDS) -> bool:
    """Wait until every line logged so far is written; False after `timeout` seconds
    (the output is blocked). Lines are written by a thread of their own."""
    handler = _handler
    return True if handler is None else handler.sink.flush(timeout)


def dropped_log_lines() -> int:
    """Lines lost since the start because the output was blocked or closed."""
    handler = _handler
    return 0 if handler is None else handler.sink.dropped


atexit.register(flush_logs)


def reset_logging() -> None:
    """Undo configure_logging(): our handler off the root logger (its queued lines
    written first), structlog defaults."""
    global _handler
    if _handler is not None:
        logging.getLogger().removeHandler(_handler)
        _handler.sink.flush(EXIT_FLUSH_SECONDS)
        _handler.sink.close()
        _handler = None
    structlog.reset_defaults()


def call_log(task_id: int, attempt: int, call_uuid: str) -> structlog.stdlib.BoundLogger:
    """The logger for lines about one attempt's call: each carries the three keys."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger("callbackd.call")
    return logger.bind(task_id=task_id, attempt=attempt, call_uuid=call_uuid)


@contextmanager
def call_context(task_id: int, attempt: int, call_uuid: str) -> Iterator[None]:
    """Binds the three call keys for every line logged inside the block (in this task),
    including lines of code that does not know about the call."""
    with structlog.contextvars.bound_contextvars(
        task_id=task_id, attempt=attempt, call_uuid=call_uuid
    ):
        yield
