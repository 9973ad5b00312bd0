"""The `callbackd` command: help, env twins of flags, check-config, migrate, and the
`call` timeline read from a real store file."""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from pydantic import BaseModel

from callbackd.cli import _parser, main
from config import ExtensionProfile, Settings, load_settings
from config.warnings import config_warnings
from daemon.logsetup import reset_logging
from daemon.store.db import Database
from tests.stored_events import INSERT_EVENT_BATCH, event_batch
from tests.unit.test_outcome import call_uuid, recording

CALL_1 = "3b1f6c1e-0a4e-4d0b-9a51-000000000001"
CALL_2 = "3b1f6c1e-0a4e-4d0b-9a51-000000000002"
PLAN_1 = {
    "a_numbers": ["+74951230001", "+74951230002"],
    "b_number": "101",
    "a_caller_id_number": "4951234567",
    "a_caller_id_name": "Sales",
    "b_caller_id_number": "",
}
EVENTS_1 = [
    {"Event": "Newchannel", "Channel": "Local/s@callbackd-a-00000001;1", "Uniqueid": CALL_1},
    {
        "Event": "DialEnd",
        "Channel": "Local/s@callbackd-a-00000001;2",
        "DestChannel": "PJSIP/carrier-00000002",
        "DialStatus": "BUSY",
    },
    {
        "Event": "Hangup",
        "Channel": "Local/s@callbackd-a-00000001;1",
        "Cause": "17",
        "Cause-txt": "User busy",
        "ChannelStateDesc": "Down",
    },
]


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield  # check-config and migrate configure logging, onto pytest's captured stderr
    reset_logging()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def write_config(tmp_path: Path, store: Path, extra: str = "") -> Path:
    config = tmp_path / "callbackd.toml"
    config.write_text(f'[store]\npath = "{store}"\n[log]\nformat = "json"\n{extra}')
    return config


@pytest.fixture
async def store(tmp_path: Path) -> Path:
    """A migrated store with a task of two attempts, rows written by plain SQL."""
    path = tmp_path / "callbackd.db"
    db = await Database.open(path)
    await db.close()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(
            """
            INSERT INTO queues (id, client_id, name, create_date)
                VALUES (7, 'acme', 'sales', '2024-03-01 09:00:00');
            INSERT INTO tasks (id, scheduler_id, params, status, finish_result, finish_comment,
                               attempts_made, create_date)
                VALUES (42, 7, '{}', 'finished', 'success', 'A and B talked', 2,
                        '2024-03-01 09:59:00');
            """
        )
        conn.execute(
            "INSERT INTO attempts (call_uuid, task_id, attempt_no, scheduler_id, state, plan,"
            " start_time, end_time, a_dial_status, a_hangup_cause, result, result_comment)"
            " VALUES (?, 42, 1, 7, 'ended', ?, '2024-03-01 10:00:00', '2024-03-01 10:00:05',"
            " 'BUSY', 17, 'failed', 'A busy')",
            (CALL_1, json.dumps(PLAN_1)),
        )
        conn.execute(
            "INSERT INTO attempts (call_uuid, task_id, attempt_no, scheduler_id, state, plan,"
            " start_time, a_answer_time, bridged_time, end_time, answered_a_number,"
            " a_dial_status, b_dial_status, a_hangup_cause, b_hangup_cause, result,"
            " result_comment)"
            " VALUES (?, 42, 2, 7, 'ended', ?, '2024-03-01 10:01:05', '2024-03-01 10:01:09',"
            " '2024-03-01 10:01:14', '2024-03-01 10:02:14', '+74951230002', 'ANSWER', 'ANSWER',"
            " 16, 16, 'success', 'A and B talked')",
            (CALL_2, json.dumps(PLAN_1)),
        )
        timed = [(f"2024-03-01 10:00:0{seq}.250", event) for seq, event in enumerate(EVENTS_1)]
        half = len(timed) // 2
        conn.executemany(  # the later batch first: read back in arrival order all the same
            INSERT_EVENT_BATCH,
            [
                event_batch(CALL_1, len(timed), timed[half:]),
                event_batch(CALL_1, half, timed[:half]),
            ],
        )
    return path


def test_help_explains_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("run", "check-config", "migrate", "call", "openapi"):
        assert re.search(rf"^\s+{command}\s+\S", out, re.MULTILINE), command


def test_every_flag_names_its_environment_twin() -> None:
    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands._name_parser_map.items():
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert "env CALLBACKD_" in (action.help or ""), (name, action.option_strings)


def test_config_flag_defaults_from_callbackd_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, tmp_path / "x.db")
    monkeypatch.setenv("CALLBACKD_CONFIG", str(config))
    code, out, _ = run(capsys, "check-config")
    assert (code, out.strip()) == (0, f"{config}: ok (2 warnings)")


def test_check_config_names_the_bad_key_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, tmp_path / "x.db", "[calls]\nmax_concurrent = 0\n")
    code, out, err = run(capsys, "check-config", "--config", str(config))
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "calls.max_concurrent" in err


def test_migrate_creates_the_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "new" / "callbackd.db"
    code, out, _ = run(capsys, "migrate", "--config", str(write_config(tmp_path, db)))
    assert code == 0
    assert "up to date" in out
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] >= 1


def test_openapi_prints_the_document(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "openapi")
    assert code == 0
    assert json.loads(out)["openapi"].startswith("3.1")


def test_call_by_task_id_prints_every_attempt_with_its_events_in_order(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "call", "42", "--store", str(store))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("task 42  queue 7  finished/success")
    assert "(A and B talked)" in lines[0]
    assert f"attempt 1  call {CALL_1}  ended  result failed: A busy" in lines
    assert f"attempt 2  call {CALL_2}  ended  result success: A and B talked" in lines
    assert '  A +74951230001, +74951230002  caller ID "Sales" <4951234567>  answered -' in lines
    assert any("dial status A BUSY B -" in x and "hangup cause A 17 B -" in x for x in lines)
    assert any("duration 69s  bridged 60s" in x for x in lines)
    events = [x.strip() for x in lines if x.startswith("    2024-")]
    assert [e.split()[2] for e in events] == ["Newchannel", "DialEnd", "Hangup"]
    assert "PJSIP/carrier-00000002" in events[1]
    assert "DialStatus=BUSY" in events[1]
    assert events[2].endswith("ChannelStateDesc=Down Cause=17 Cause-txt=User busy")
    assert "no AMI events recorded" in out  # attempt 2 has none


def test_call_shows_the_pbx_refusal_the_cancel_and_the_attempts_given_back(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with closing(sqlite3.connect(store)) as conn, conn:
        conn.execute(
            "UPDATE attempts SET refusal = 'Invalid channel', result = 'rejected',"
            " result_comment = 'rejected by the PBX' WHERE call_uuid = ?",
            (CALL_2,),
        )
        conn.execute(
            "UPDATE attempts SET cancel_time = '2024-03-01 10:00:03' WHERE call_uuid = ?",
            (CALL_1,),
        )
        conn.execute(
            "INSERT INTO given_back (task_id, time, refusal, count)"
            " VALUES (42, '2024-03-01 09:59:30', 'Extension does not exist.', 3)"
        )

    code, out, _ = run(capsys, "call", "42", "--store", str(store))

    assert code == 0
    lines = out.splitlines()
    assert lines[1] == (
        "given back 3 time(s), no try used; the last at 2024-03-01 09:59:30: "
        "the PBX refused the Originate (Extension does not exist.)"
    )
    assert "  the PBX refused the Originate: Invalid channel" in lines
    assert "  no AMI events recorded: the PBX refused the Originate (Invalid channel)" in lines
    assert "  cancelled 2024-03-01 10:00:03: the task was cancelled and its call hung up" in lines
    assert any(
        x.startswith("  decision:") and x.endswith("the task was cancelled at 2024-03-01 10:00:03")
        for x in lines
    )


def test_call_by_uuid_prints_that_attempt_only(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "call", CALL_2, "--store", str(store))
    assert code == 0
    assert out.startswith("task 42")
    assert f"call {CALL_2}" in out
    assert CALL_1 not in out


def test_call_takes_the_store_from_the_config(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, store)
    code, out, _ = run(capsys, "call", CALL_1, "--config", str(config))
    assert code == 0
    assert "DialStatus=BUSY" in out


def test_call_store_flag_defaults_from_its_environment_twin(
    store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CALLBACKD_STORE__PATH", str(store))
    code, out, _ = run(capsys, "call", "42")
    assert code == 0
    assert "attempt 2" in out


def test_call_opens_the_store_read_only(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = store.stat().st_mtime_ns
    store.chmod(0o444)
    try:
        code, _, _ = run(capsys, "call", "42", "--store", str(store))
    finally:
        store.chmod(0o644)
    assert code == 0
    assert store.stat().st_mtime_ns == before


@pytest.mark.parametrize("ident", ["999", "no-such-uuid"])
def test_call_for_an_unknown_id_says_so(
    store: Path, capsys: pytest.CaptureFixture[str], ident: str
) -> None:
    code, out, err = run(capsys, "call", ident, "--store", str(store))
    assert code == 1
    assert out == ""
    assert ident in err


def test_call_without_a_store_file_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.db"
    code, _, err = run(capsys, "call", "1", "--store", str(missing))
    assert code == 1
    assert "no such store file" in err
    assert not missing.exists()


EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "callbackd.example.toml"


def test_the_example_config_passes_check_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials(tmp_path)))
    code, out, err = run(capsys, "check-config", "--config", str(EXAMPLE))
    assert (code, out.strip(), err) == (0, f"{EXAMPLE}: ok", "")


def credentials(tmp_path: Path) -> Path:
    """A systemd credentials directory with the AMI secret and one API token."""
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "ami_secret").write_text("ami-secret-from-credential")
    (creds / "api_tokens").write_text("panel-token-0123 acme\n")
    return creds


def test_check_config_warns_of_an_empty_ami_secret_and_no_tokens_but_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = write_config(tmp_path, tmp_path / "x.db")
    code, out, err = run(capsys, "check-config", "--config", str(config))
    assert (code, out) == (0, f"{config}: ok (2 warnings)\n")
    lines = err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{config}: warning: ami.secret is empty")
    assert lines[1].startswith(f"{config}: warning: no API tokens")


@pytest.mark.parametrize(
    ("extra", "warned"),
    [
        ("", ["ami.secret is empty", "no API tokens"]),
        ('[ami]\nsecret = "s3cret-x"\n', ["no API tokens"]),
        ('[api.tokens]\n"panel-token-0123" = "acme"\n', ["ami.secret is empty"]),
        ('[ami]\nsecret = "s3cret-x"\n[api.tokens]\n"panel-token-0123" = "acme"\n', []),
    ],
)
def test_config_warnings_name_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str, warned: list[str]
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    settings = load_settings(write_config(tmp_path, tmp_path / "x.db", extra))
    found = config_warnings(settings)
    assert len(found) == len(warned)
    for line, start in zip(found, warned, strict=True):
        assert line.startswith(start)


def test_the_example_config_shows_every_key_of_the_settings() -> None:
    text = EXAMPLE.read_text()
    for section, field in Settings.model_fields.items():
        model = ExtensionProfile if section == "extensions" else field.annotation
        assert isinstance(model, type)
        if not issubclass(model, BaseModel):  # a key outside any section
            assert re.search(rf"^{section} = ", text, re.MULTILINE), section
            continue
        for key in model.model_fields:
            shown = re.search(rf"^(# )?{key} = ", text, re.MULTILINE)
            assert shown or f"[{section}.{key}]" in text, f"{section}.{key}"


async def test_call_timeline_marks_the_events_that_decided_a_recorded_success(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:

    events = recording("success.ami")
    uuid = call_uuid(events)
    path = tmp_path / "callbackd.db"
    await _migrate(path)
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "INSERT INTO queues (id, client_id, name, create_date) VALUES (1, 'a', 'q', 'x')"
        )
        conn.execute(
            "INSERT INTO tasks (id, scheduler_id, params, status, create_date)"
            " VALUES (1, 1, '{}', 'finished', 'x')"
        )
        conn.execute(
            "INSERT INTO attempts (call_uuid, task_id, attempt_no, scheduler_id, state, plan,"
            " start_time, result, result_comment)"
            " VALUES (?, 1, 1, 1, 'ended', ?, '2024-03-01 10:00:00', 'success',"
            " 'A and B connected')",
            (uuid, json.dumps({"a_numbers": ["1105"], "b_number": "1102"})),
        )
        conn.execute(
            INSERT_EVENT_BATCH,
            event_batch(uuid, len(events), [("2024-03-01 10:00:00", ev) for ev in events]),
        )

    code, out, _ = run(capsys, "call", "--store", str(path), uuid)

    assert code == 0
    marked = [line.split("<- ", 1)[1] for line in out.splitlines() if "<- " in line]
    assert marked == [
        "A answered",
        "B answered",
        "A and B bridged",
        "last channel gone: the call is over",
    ]
    assert "decision: success: A and B connected" in out


async def _migrate(path: Path) -> None:
    db = await Database.open(path)
    await db.close()
