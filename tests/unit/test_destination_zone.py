"""Calling hours in the A number's own zone, where it has exactly one."""

from __future__ import annotations

import pytest

from daemon.destination_zone import ZoneChoice, destination_zone

BERLIN = "Europe/Berlin"

CASES = [
    ("+74951234567", ZoneChoice("Europe/Moscow", "the number's own zone")),
    ("+12125550100", ZoneChoice("America/New_York", "the number's own zone")),
    ("+81312345678", ZoneChoice("Asia/Tokyo", "the number's own zone")),
    # Russian mobiles: +7 is shared with Kazakhstan, 16 zones
    ("+79161234567", ZoneChoice(BERLIN, "the interval's zone: the number maps to 16 zones")),
    # NANP toll-free: every zone of the plan
    ("+18005550100", ZoneChoice(BERLIN, "the interval's zone: the number maps to 42 zones")),
    ("1005", ZoneChoice(BERLIN, "the interval's zone: the number has no country code")),
    ("+999", ZoneChoice(BERLIN, "the interval's zone: the number is not a known numbering plan's")),
]


@pytest.mark.parametrize(("number", "expected"), CASES)
def test_the_zone_of_a_number(number: str, expected: ZoneChoice) -> None:
    assert destination_zone(number, BERLIN) == expected
