"""Which zone calling hours are read in for one A number (calls.interval_zone =
"destination"): the number's own zone when the phonenumbers library maps it to exactly
one, else the interval's. Shared country codes map to many zones (Russian mobiles +7 9xx
to 16, since Kazakhstan shares +7; NANP toll-free numbers to 42): those use the interval's.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import phonenumbers
from phonenumbers import timezone as number_zones

from daemon.intervals import known_zones


class ZoneChoice(NamedTuple):
    """The zone that decided, and why, in the words an attempt records."""

    zone: str
    reason: str


def interval_zone(zone: str) -> ZoneChoice:
    return ZoneChoice(zone, "the interval's zone")


@lru_cache(maxsize=65536)
def number_zone(number: str) -> tuple[str | None, str]:
    """The one zone of a number, or None and why there is none."""
    if not number.startswith("+"):
        return None, "the number has no country code"
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return None, "the number is not a known numbering plan's"
    zones = [z for z in number_zones.time_zones_for_number(parsed) if z in known_zones()]
    if len(zones) != 1:
        return None, f"the number maps to {len(zones)} zones"
    return zones[0], "the number's own zone"


def destination_zone(number: str, zone_of_interval: str) -> ZoneChoice:
    zone, reason = number_zone(number)
    if zone is None:
        return ZoneChoice(zone_of_interval, f"the interval's zone: {reason}")
    return ZoneChoice(zone, reason)
