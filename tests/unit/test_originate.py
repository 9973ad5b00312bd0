"""The Originate of an attempt: the direct shape for one A number, the Local shape for
several (docs/call-flow.md)."""

from __future__ import annotations

import pytest

from ami.originate import CallRequest, originate_fields


def request(*a_numbers: str, **overrides: object) -> CallRequest:
    fields: dict[str, object] = {
        "call_uuid": "c-1",
        "a_numbers": a_numbers,
        "b_number": "200",
        "a_channel": "PJSIP/{number}@carrier",
        "b_channel": "PJSIP/{number}@carrier",
        "a_ring_timeout": 30,
        "b_ring_timeout": 25,
        "a_caller_id_number": "4951234567",
        "a_caller_id_name": "Acme",
        **overrides,
    }
    return CallRequest(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "dial"),
    [
        ({}, r"CBD_DIAL=PJSIP/200@carrier\,25\,f\(101\)"),
        ({"b_caller_id_number": "777"}, r"CBD_DIAL=PJSIP/200@carrier\,25\,f\(777\)"),
        ({"max_talk_time": 60}, r"CBD_DIAL=PJSIP/200@carrier\,25\,f\(101\)S\(60\)"),
    ],
)
def test_one_a_number_rings_a_itself_and_dials_b_from_its_channel(
    overrides: dict[str, object], dial: str
) -> None:
    fields = originate_fields(request("101", variables={"ORDER_ID": "7, 8"}, **overrides))

    assert fields["Channel"] == "PJSIP/101@carrier"
    assert (fields["Context"], fields["Exten"], fields["Priority"]) == ("callbackd-dial", "s", "1")
    assert fields["ChannelId"] == "c-1"
    assert "OtherChannelId" not in fields
    assert fields["Timeout"] == "30000"  # the Originate itself rings A
    assert fields["CallerID"] == '"Acme" <4951234567>'
    # B's Dial() arguments, and the task variable inherited by B's channel.
    assert fields["Variable"] == [dial, r"_ORDER_ID=7\, 8"]


def test_several_a_numbers_ring_together_through_a_local_channel() -> None:
    fields = originate_fields(request("101", "102"))

    assert fields["Channel"] == "Local/s@callbackd-a"
    assert fields["Context"] == "callbackd-b"
    assert fields["OtherChannelId"] == "c-1-a"
    assert fields["Timeout"] == "35000"
    assert r"CBD_A_DIAL=PJSIP/101@carrier&PJSIP/102@carrier" in fields["Variable"]
