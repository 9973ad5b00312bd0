"""`make run`'s first config (tools/dev_run.py) points at the test PBX that the same
environment starts, and is a config callbackd loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import load_settings
from tools.dev_run import MARKER, write_config


@pytest.mark.parametrize(("env_port", "port"), [(None, 5038), ("5105", 5105)])
def test_the_written_config_uses_the_test_pbx_port_of_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_port: str | None, port: int
) -> None:
    for name in ("CALLBACKD_TESTPBX_AMI_PORT", "CALLBACKD_AMI__PORT"):
        monkeypatch.delenv(name, raising=False)
    if env_port is not None:
        monkeypatch.setenv("CALLBACKD_TESTPBX_AMI_PORT", env_port)
    config = tmp_path / "callbackd.toml"

    token = write_config(config)

    settings = load_settings(config)
    assert config.read_text().startswith(MARKER)
    assert settings.ami.port == port
    assert settings.api.tokens == {token: "demo"}
