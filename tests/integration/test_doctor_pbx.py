"""`callbackd doctor` against the real test PBX: a user set up as shipped passes every
check; a user without the event filter, one without the Originate right, a wrong
secret and an AMI nobody listens on each fail naming the fix, without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from callbackd.doctor import diagnose
from config import Settings
from tests.webhook_receiver import free_port

pytestmark = pytest.mark.pbx
CALLBACKD = Path(sys.executable).with_name("callbackd")


def _settings(testpbx: Any, tmp_path: Path, **ami: object) -> Settings:
    return Settings.model_validate(
        {
            "api": {"tokens": {"acme-secret-token": "acme"}},
            "store": {"path": str(tmp_path / "cb.db")},
            "ami": {
                "host": testpbx.host,
                "port": testpbx.port,
                "username": testpbx.username,
                "secret": testpbx.secret,
                **ami,
            },
        }
    )


async def _verdicts(settings: Settings) -> dict[str, tuple[bool | None, str]]:
    report = await diagnose(settings)
    return {check.name: (check.ok, check.text) for check in report.checks}


async def test_the_shipped_ami_user_passes_every_check(testpbx: Any, tmp_path: Path) -> None:
    verdicts = await _verdicts(_settings(testpbx, tmp_path))

    assert {name: ok for name, (ok, _) in verdicts.items()} == {
        "API tokens": True,
        "store": True,
        "AMI login": True,
        "AMI rights": True,
        "dialplan": True,
        "AMI events": True,
        "AMI event filter": True,
    }


async def test_a_user_without_the_event_filter_is_told_to_add_it(
    testpbx: Any, tmp_path: Path
) -> None:
    verdicts = await _verdicts(_settings(testpbx, tmp_path, username="callbackd-unfiltered"))

    ok, text = verdicts["AMI event filter"]
    assert ok is False
    assert "eventfilter lines of config/asterisk/manager_callbackd.conf" in text
    assert verdicts["AMI events"][0] is True


async def test_a_user_without_the_originate_right_is_told_which_class_to_add(
    testpbx: Any, tmp_path: Path
) -> None:
    verdicts = await _verdicts(_settings(testpbx, tmp_path, username="callbackd-no-originate"))

    ok, text = verdicts["AMI rights"]
    assert ok is False
    assert "may not send Originate" in text and "write = originate,call,reporting" in text
    assert verdicts["dialplan"][0] is True


async def test_a_wrong_secret_is_named_as_such(testpbx: Any, tmp_path: Path) -> None:
    verdicts = await _verdicts(_settings(testpbx, tmp_path, secret="not-the-secret"))

    ok, text = verdicts["AMI login"]
    assert ok is False
    assert "Authentication failed" in text and "manager.conf" in text
    assert "not-the-secret" not in text


def test_the_command_names_an_unreachable_ami_and_exits_1_without_a_traceback(
    tmp_path: Path,
) -> None:
    config = tmp_path / "callbackd.toml"
    config.write_text(
        f'[api.tokens]\n"acme-secret-token" = "acme"\n[store]\npath = "{tmp_path / "cb.db"}"\n'
        f'[ami]\nport = {free_port()}\nsecret = "x"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLBACKD_")}

    done = subprocess.run(
        [str(CALLBACKD), "doctor", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )

    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ok   API tokens")
    assert any(line.startswith("FAIL AMI login: connect to") for line in lines)
    assert "is Asterisk running" in done.stdout
