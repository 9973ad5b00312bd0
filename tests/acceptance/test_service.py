"""`callbackd run` as systemd runs it: a real subprocess with $NOTIFY_SOCKET and a
watchdog, reloaded with SIGHUP (good and bad config), stopped with SIGTERM; its log is
JSON lines without a secret. And the unit file itself: hardened to exposure <= 2.0."""

from __future__ import annotations

import asyncio
import configparser
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from config.settings import CREDENTIAL_FILES, TOKENS_CREDENTIAL
from tests.acceptance.conftest import NotifySocket

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "callbackd.service"
CALLBACKD = Path(sys.executable).with_name("callbackd")
WAIT = 20.0  # bound on each wait for the daemon

OLD_TOKEN = "old-token-5f1c2a"
NEW_TOKEN = "new-token-9b7e3d"
AMI_SECRET = "ami-secret-4c8d1e"
WEBHOOK_SECRET = "whsec_c2VydmljZS1zZWNyZXQtMGE5ZjJi"
CONFIG = """
[api]
listen = "127.0.0.1:{port}"
[api.tokens]
"{token}" = "acme"
[store]
path = "{store}"
[ami]
secret = "{ami}"
[webhooks]
secret = "{webhook}"
[log]
level = "info"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    def __init__(self, proc: asyncio.subprocess.Process, notify: NotifySocket, port: int):
        self.proc = proc
        self.notify = notify
        self.base = f"http://127.0.0.1:{port}"

    async def next_message(self) -> dict[str, str]:
        return await self.notify.next_message()

    async def status_of(self, token: str) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.base}/client/@me/task_scheduler/", headers=headers) as response,
        ):
            return response.status

    async def reload(self) -> dict[str, str]:
        self.proc.send_signal(signal.SIGHUP)
        assert (await self.next_message())["RELOADING"] == "1"
        ready = await self.next_message()
        assert ready["READY"] == "1"
        return ready


@pytest.fixture
async def daemon(tmp_path: Path, notify_socket: NotifySocket) -> AsyncIterator[Daemon]:
    port = free_port()
    config = tmp_path / "callbackd.toml"
    write_config(config, port, OLD_TOKEN)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALLBACKD_", "JOURNAL_"))}
    env |= {"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "400000"}
    with (tmp_path / "stderr.log").open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            str(CALLBACKD), "run", "--config", str(config), env=env, stderr=stderr
        )
    running = Daemon(proc, notify_socket, port)
    try:
        yield running
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def write_config(config: Path, port: int, token: str, extra: str = "") -> None:
    store = config.with_name("callbackd.db")
    text = CONFIG.format(
        port=port, token=token, store=store, ami=AMI_SECRET, webhook=WEBHOOK_SECRET
    )
    config.write_text(text + extra)


async def test_notify_reload_and_stop_as_systemd_sees_them(daemon: Daemon, tmp_path: Path) -> None:
    config = tmp_path / "callbackd.toml"
    port = int(daemon.base.rpartition(":")[2])

    ready = await daemon.next_message()
    assert ready == {"READY": "1", "STATUS": f"listening on 127.0.0.1:{port}"}
    # READY means the store is open and the API answers.
    assert (tmp_path / "callbackd.db").is_file()
    assert await daemon.status_of(OLD_TOKEN) == 200
    assert await daemon.status_of(NEW_TOKEN) == 401

    write_config(config, port, NEW_TOKEN)
    assert "config reloaded" in (await daemon.reload())["STATUS"]
    assert await daemon.status_of(NEW_TOKEN) == 200
    assert await daemon.status_of(OLD_TOKEN) == 401

    write_config(config, port, OLD_TOKEN, "[calls]\nmax_concurrent = 0\n")
    assert "reload failed" in (await daemon.reload())["STATUS"]
    assert await daemon.status_of(NEW_TOKEN) == 200  # the running config stayed

    daemon.proc.send_signal(signal.SIGTERM)
    assert await daemon.next_message() == {"STOPPING": "1"}
    async with asyncio.timeout(WAIT):
        assert await daemon.proc.wait() == 0
    assert {"WATCHDOG": "1"} in daemon.notify.messages

    log = (tmp_path / "stderr.log").read_text()
    lines = [json.loads(line) for line in log.splitlines()]
    # No AMI is reachable here: its link-down line is not what this test is about.
    errors = [x for x in lines if x["level"] == "error" and x["logger"] != "ami.client"]
    assert [x["event"] for x in errors] == ["config reload failed, keeping the running config"]
    assert any("calls.max_concurrent" in x.get("error", "") for x in lines)
    assert {"listening", "config reloaded", "stopping", "stopped"} <= {x["event"] for x in lines}
    for secret in (OLD_TOKEN, NEW_TOKEN, AMI_SECRET, WEBHOOK_SECRET):
        assert secret not in log


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser


def unit_values(key: str) -> list[str]:
    """Every value of a [Service] key (the unit repeats some, e.g. LoadCredential)."""
    pattern = re.compile(rf"^{re.escape(key)}=(.*)$", re.MULTILINE)
    return pattern.findall(UNIT.read_text())


def test_unit_is_a_notify_service_that_reloads_with_sighup() -> None:
    service = unit()["Service"]
    assert service["Type"] == "notify"
    assert "WatchdogSec" in service
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["ExecStart"].endswith("callbackd run --config /etc/callbackd/callbackd.toml")
    assert service["DynamicUser"] == "yes"
    assert service["StateDirectory"] == "callbackd"
    assert service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == ""
    assert service["RestrictAddressFamilies"] == "AF_UNIX AF_INET AF_INET6"
    assert unit_values("SystemCallFilter")


def test_unit_loads_every_credential_the_settings_read() -> None:
    loaded = {value.partition(":")[0] for value in unit_values("LoadCredential")}
    assert loaded == {*CREDENTIAL_FILES, TOKENS_CREDENTIAL}


def test_unit_exposure_level_is_at_most_2() -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is not installed (`make pytest` installs systemd)")
    result = subprocess.run(
        [tool, "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for callbackd\.service: ([\d.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout


def test_a_reader_that_stops_early_gets_no_traceback() -> None:
    # `callbackd openapi | head -1`: the document is larger than a pipe holds.
    with subprocess.Popen(
        [str(CALLBACKD), "openapi"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()
        errors = proc.stderr.read().decode()
        status = proc.wait(timeout=60)

    assert first.strip() == b"{"
    assert (status, errors) == (1, "")
