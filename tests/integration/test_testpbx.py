"""The test PBX is up and carries the dialplan callbackd needs, and its SIP far end."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.pbx import FAREND_SCRIPT, SipFarEnd, TestPbx, ami_action, pbx_ports

pytestmark = pytest.mark.pbx


async def test_callbackd_and_phones_contexts_are_loaded(testpbx: TestPbx) -> None:
    replies = await ami_action(testpbx, "ShowDialPlan")

    assert replies[0]["Response"] == "Success"
    assert replies[-1]["Event"] == "ShowDialPlanComplete"
    entries = [r for r in replies if r.get("Event") == "ListDialplan"]
    extensions = {(e["Context"], e["Extension"]) for e in entries}
    assert ("callbackd-a", "s") in extensions
    assert ("callbackd-b", "s") in extensions
    assert ("phones", "_XXXX") in extensions
    dials = {e["Context"] for e in entries if e.get("Application") == "Dial"}
    assert {"callbackd-a", "callbackd-b"} <= dials


async def test_the_callbackd_user_has_no_rights_beyond_its_own(testpbx: TestPbx) -> None:
    # Reloading needs the `system`/`config` classes the shipped user does not have.
    replies = await ami_action(testpbx, "Reload", ("Module", "manager"))

    assert replies[0]["Response"] == "Error"
    assert "Permission denied" in replies[0]["Message"]


async def test_the_pjsip_trunk_dials_the_far_end_on_the_ports_of_this_pbx(
    testpbx: TestPbx,
) -> None:
    ports = pbx_ports(os.environ)

    endpoint = testpbx.cli("pjsip show endpoint farend")
    transports = testpbx.cli("pjsip show transports")

    assert f"sip:farend@127.0.0.1:{ports['FAREND_PORT']}" in endpoint
    assert f"127.0.0.1:{ports['SIP_PORT']}" in transports


def test_a_far_end_whose_port_is_taken_says_so_and_does_not_start(
    sip_farend: SipFarEnd, tmp_path: Path
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        env = os.environ | {
            "CALLBACKD_TESTPBX_DIR": str(tmp_path),
            "CALLBACKD_TESTPBX_FAREND_PORT": str(port),
        }

        done = subprocess.run(
            [str(FAREND_SCRIPT), "start"], env=env, capture_output=True, text=True, check=False
        )

    assert done.returncode == 1
    assert f"UDP 127.0.0.1:{port} is in use" in done.stderr
    assert not (tmp_path / "farend" / "sipp.pid").exists()
