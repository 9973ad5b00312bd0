"""Test PBXs with different AMI ports never share a port: the PJSIP trunk and its SIPp
far end take theirs from the AMI port (tools/testpbx-env.bash)."""

from __future__ import annotations

import os

from tests.pbx import PORT_NAMES, pbx_ports


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLBACKD_TESTPBX_")}
    return env | values


def test_every_port_follows_from_the_ami_port() -> None:
    ports = pbx_ports(clean_env(CALLBACKD_TESTPBX_AMI_PORT="5103"))

    assert ports == {
        "AMI_PORT": 5103,
        "SIP_PORT": 6103,
        "FAREND_PORT": 7103,
        "FAREND_MEDIA_PORT": 10412,
        "FAREND_CTRL_PORT": 8103,
        "RTP_START": 20300,
        "RTP_END": 20399,
    }


def test_neighbouring_test_pbxs_share_no_port() -> None:
    # The default, one checkout per AMI port from 5101, and a second PBX beside each.
    ami_ports = [5038, 5039, *range(5101, 5111), *range(5201, 5211)]
    taken: dict[int, int] = {}
    for ami in ami_ports:
        ports = pbx_ports(clean_env(CALLBACKD_TESTPBX_AMI_PORT=str(ami)))
        # The far end's media takes n and n + 2.
        own = [ports[name] for name in PORT_NAMES] + [ports["FAREND_MEDIA_PORT"] + 2]
        for port in own:
            assert port not in taken, f"AMI {ami} and AMI {taken.get(port)} both use {port}"
            taken[port] = ami


def test_a_port_set_on_its_own_wins() -> None:
    ports = pbx_ports(
        clean_env(CALLBACKD_TESTPBX_AMI_PORT="5103", CALLBACKD_TESTPBX_FAREND_PORT="15060")
    )

    assert (ports["SIP_PORT"], ports["FAREND_PORT"]) == (6103, 15060)
