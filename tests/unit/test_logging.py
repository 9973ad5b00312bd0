"""Log lines as an operator and journald see them: shape, priority prefix, call keys,
stdlib loggers in the same pipeline, and no secret ever written."""

from __future__ import annotations

import io
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import structlog

from config import Settings
from config.settings import LogSettings
from daemon.logsetup import (
    REDACTED,
    call_context,
    call_log,
    configure_logging,
    flush_logs,
    secrets_of,
    set_level,
)

AMI_SECRET = "ami-Secret-7f3a"
TOKEN = "tok-acme-0123456789"
WEBHOOK_SECRET = "whsec_c2VjcmV0LXNpZ25pbmcta2V5"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


pytestmark = pytest.mark.usefixtures("restored_logging")


def written(out: io.StringIO) -> str:
    """What reached `out`: lines are written by the log writer thread."""
    assert flush_logs()
    return out.getvalue()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def configured(fmt: str = "json", level: str = "debug", **kw: Any) -> io.StringIO:
    out = io.StringIO()
    configure_logging(LogSettings(format=fmt, level=level), stream=out, env={}, **kw)
    return out


def test_a_line_is_one_json_object_with_time_level_logger_and_event() -> None:
    out = configured()
    structlog.get_logger("callbackd").info("listening", listen="127.0.0.1:8080")
    [line] = json_lines(written(out))
    assert line["event"] == "listening"
    assert line["level"] == "info"
    assert line["logger"] == "callbackd"
    assert line["listen"] == "127.0.0.1:8080"
    assert line["timestamp"].endswith("Z")


def test_auto_format_is_json_off_a_terminal_and_console_on_one() -> None:
    piped = configured("auto")
    structlog.get_logger("callbackd").info("hello")
    assert json_lines(written(piped))[0]["event"] == "hello"

    tty = Tty()
    configure_logging(LogSettings(format="auto"), stream=tty, env={})
    structlog.get_logger("callbackd").info("hello", who="operator")
    text = written(tty)
    assert not text.startswith("{")
    assert "hello" in text
    assert "who=operator" in text


def test_under_journald_each_line_has_the_syslog_priority_prefix(tmp_path: Path) -> None:
    with (tmp_path / "journal").open("w+") as stream:
        st = os.fstat(stream.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        configure_logging(LogSettings(format="auto", level="debug"), stream=stream, env=env)
        log = structlog.get_logger("callbackd")
        log.debug("d")
        log.info("i")
        log.warning("w")
        log.error("e")
        assert flush_logs()
        stream.seek(0)
        lines = stream.read().splitlines()
    assert [line[:3] for line in lines] == ["<7>", "<6>", "<4>", "<3>"]
    assert json.loads(lines[1][3:])["event"] == "i"


def test_under_journald_every_line_is_one_json_object_whoever_logs_it(tmp_path: Path) -> None:
    with (tmp_path / "journal").open("w+") as stream:
        st = os.fstat(stream.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        configure_logging(LogSettings(format="auto", level="info"), stream=stream, env=env)

        def busy(n: int) -> None:
            for i in range(500):
                structlog.get_logger("callbackd").info("line", thread=n, i=i, text="x\ny" * 50)

        threads = [threading.Thread(target=busy, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        try:
            raise RuntimeError("a traceback\nof several lines")
        except RuntimeError:
            logging.getLogger("aiohttp.server").exception("handler failed")
        for thread in threads:
            thread.join()
        assert flush_logs()
        stream.seek(0)
        lines = stream.read().splitlines()
    assert len(lines) == 4 * 500 + 1
    objects = [json.loads(line[3:]) for line in lines]
    assert {line[:3] for line in lines} == {"<6>", "<3>"}
    assert sorted((x["thread"], x["i"]) for x in objects if "thread" in x) == [
        (n, i) for n in range(4) for i in range(500)
    ]
    [failed] = [x for x in objects if x["event"] == "handler failed"]
    assert "a traceback" in failed["exception"]


def test_journal_stream_of_another_file_gives_plain_json(tmp_path: Path) -> None:
    out = configured("auto")
    configure_logging(LogSettings(format="auto"), stream=out, env={"JOURNAL_STREAM": "1:2"})
    structlog.get_logger("callbackd").info("x")
    assert written(out).startswith("{")


@pytest.mark.parametrize("name", ["aiohttp.access", "aiohttp.server", "psycopg", "panoramisk"])
def test_library_loggers_come_out_as_the_same_json_lines(name: str) -> None:
    out = configured()
    logging.getLogger(name).warning("peer %s went away", "10.0.0.1")
    [line] = json_lines(written(out))
    assert line["logger"] == name
    assert line["level"] == "warning"
    assert line["event"] == "peer 10.0.0.1 went away"
    assert "timestamp" in line


def test_lines_about_a_call_carry_task_attempt_and_call_uuid() -> None:
    out = configured()
    call_log(42, 2, "c0ffee-uuid").info("A answered", number="+74951230001")
    with call_context(43, 1, "other-uuid"):
        structlog.get_logger("callbackd.engine").info("originate sent")
        logging.getLogger("panoramisk").info("action sent")
    structlog.get_logger("callbackd").info("not about a call")
    lines = json_lines(written(out))
    assert [(x.get("task_id"), x.get("attempt"), x.get("call_uuid")) for x in lines] == [
        (42, 2, "c0ffee-uuid"),
        (43, 1, "other-uuid"),
        (43, 1, "other-uuid"),
        (None, None, None),
    ]


def test_set_level_applies_to_loggers_bound_before_it() -> None:
    out = configured(level="info")
    bound = call_log(1, 1, "u")
    bound.info("before")
    set_level("warning")
    bound.info("dropped")
    structlog.get_logger("callbackd").info("dropped too")
    logging.getLogger("aiohttp.server").info("dropped as well")
    bound.warning("kept")
    assert [x["event"] for x in json_lines(written(out))] == ["before", "kept"]


def test_a_new_format_applies_to_loggers_bound_before_it() -> None:
    configured("json")
    bound = call_log(1, 1, "u")
    tty = Tty()
    configure_logging(LogSettings(format="console"), stream=tty, env={})
    bound.info("after the reload")
    assert "after the reload" in written(tty)
    assert not written(tty).startswith("{")


def test_psycopg_debug_chatter_is_never_logged() -> None:
    out = configured(level="debug")
    logging.getLogger("psycopg").debug("connection attempt: host=127.0.0.1")
    assert written(out) == ""


def _settings_with_secrets() -> Settings:
    return Settings(
        api={"tokens": {TOKEN: "acme"}},
        ami={"secret": AMI_SECRET},
        webhooks={"secret": WEBHOOK_SECRET},
    )


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_no_secret_appears_in_any_log_line(fmt: str) -> None:
    settings = _settings_with_secrets()
    out = configured(fmt, secrets=secrets_of(settings))
    log = structlog.get_logger("callbackd")
    log.info(f"login with {AMI_SECRET}")
    log.info("request", headers={"Authorization": f"Bearer {TOKEN}"}, tokens=[TOKEN])
    log.info("by key", mapping={TOKEN: "acme"})
    log.info("settings", raw=settings.api.tokens, obj=settings)
    log.warning("signing", secret=WEBHOOK_SECRET, nested={"a": [{"b": (WEBHOOK_SECRET,)}]})
    call_log(1, 1, "u").info("ami", action={"Secret": AMI_SECRET})
    logging.getLogger("panoramisk").info("Action: Login\r\nSecret: %s", AMI_SECRET)
    logging.getLogger("aiohttp.access").info("GET /?token=%s", TOKEN)
    try:
        raise RuntimeError(f"AMI refused secret {AMI_SECRET}")
    except RuntimeError:
        log.exception("login failed")
        logging.getLogger("aiohttp.server").exception("handler failed with %s", TOKEN)
    text = written(out)
    assert len(text.splitlines()) >= 10
    for secret in (AMI_SECRET, TOKEN, WEBHOOK_SECRET):
        assert secret not in text
    assert REDACTED in text
    assert "login failed" in text


def test_a_secret_added_by_a_reload_is_redacted_from_then_on() -> None:
    out = configured()
    log = structlog.get_logger("callbackd")
    configure_logging(
        LogSettings(format="json"), secrets=["brand-new-token-xyz"], stream=out, env={}
    )
    log.info("token brand-new-token-xyz used")
    assert "brand-new-token-xyz" not in written(out)


def test_values_that_are_not_secrets_are_kept_as_they_are() -> None:
    out = configured(secrets=[AMI_SECRET])
    structlog.get_logger("callbackd").info("n", count=3, ratio=0.5, ok=True, none=None)
    [line] = json_lines(written(out))
    assert (line["count"], line["ratio"], line["ok"], line["none"]) == (3, 0.5, True, None)


def test_values_json_has_no_type_for_are_written_as_their_repr_and_text_stays_utf8() -> None:
    out = configured(secrets=[AMI_SECRET])

    class Opaque:
        def __repr__(self) -> str:
            return "<opaque 7>"

    structlog.get_logger("callbackd").info("n", obj=Opaque(), name="José", numbers=("1", 2))
    [line] = json_lines(written(out))
    assert (line["obj"], line["name"], line["numbers"]) == ("<opaque 7>", "José", ["1", 2])
    assert "José" in written(out)


def test_a_secret_in_a_key_that_is_not_text_is_still_redacted() -> None:
    out = configured(secrets=[AMI_SECRET])
    structlog.get_logger("callbackd").info("n", by_id={7: AMI_SECRET}, tokens=(AMI_SECRET,))
    assert AMI_SECRET not in written(out)
    assert REDACTED in written(out)
