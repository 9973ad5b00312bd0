"""The decisions of several hosts sharing one store, as pure functions: when a host is
gone, when a gone host's call can no longer be up, and when a host may still act on
its claims. The SQL that applies them is in daemon/store/pg/cluster.py.

Heartbeats are stamped with the database's clock, so "gone" compares two readings of
one clock. A host judges its own lease with its monotonic clock alone, from the moment
it *sent* its last heartbeat that the database took: that is no later than the
database's stamp, so the host stops acting before the others may think it gone, however
wrong its wall clock is and however long it was frozen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

# Past the longest call, what a gone host's call is still given: the hang-up reaching
# Asterisk's channels, a slow Originate answer. A few seconds of a call that outlives it
# would be cut short by nothing: the attempt is only closed in the store.
CALL_END_SLACK = timedelta(seconds=30)
# A host stops acting this much before its lease ends, for the time a write or an
# Originate takes to land once it was decided.
LEASE_MARGIN_S = 2.0


def host_gone(last_heartbeat: datetime, db_now: datetime, host_timeout: float) -> bool:
    """True when a host last heard of at `last_heartbeat` has been silent too long (both
    times from the database's clock)."""
    return db_now - last_heartbeat > timedelta(seconds=host_timeout)


def longest_call_seconds(a_ring: int, b_ring: int, max_talk_time: int) -> int:
    """How long a call of a host can last from its Originate; 0 = no limit (no talk
    limit: a call may go on for ever)."""
    return 0 if max_talk_time <= 0 else a_ring + b_ring + max_talk_time


class Verdict(StrEnum):
    """What the surviving hosts may do with an attempt of a gone host."""

    KEEP = "keep"  # its call may still be up: wait
    CLOSE = "close"  # no call of it can be up: close it "interrupted"
    WAIT_FOR_RELEASE = "wait_for_release"  # no talk limit: only an operator knows


@dataclass(frozen=True)
class GoneHost:
    last_heartbeat: datetime  # database clock
    host_timeout: float
    longest_call: int  # seconds, 0 = no limit (longest_call_seconds)
    released: bool = False  # `callbackd cluster release HOST`


def attempt_verdict(host: GoneHost, db_now: datetime) -> Verdict:
    """May the attempts a gone host had in a call be closed at `db_now`?

    The host sent no Originate after its lease ended, which is no later than
    last_heartbeat + host_timeout; a call placed by then is over `longest_call` after
    it. Released by an operator: the operator has checked that host's PBX."""
    if host.released:
        return Verdict.CLOSE
    if not host_gone(host.last_heartbeat, db_now, host.host_timeout):
        return Verdict.KEEP
    if host.longest_call <= 0:
        return Verdict.WAIT_FOR_RELEASE
    lease_end = host.last_heartbeat + timedelta(seconds=host.host_timeout)
    if db_now >= lease_end + timedelta(seconds=host.longest_call) + CALL_END_SLACK:
        return Verdict.CLOSE
    return Verdict.KEEP


@dataclass(frozen=True)
class Lease:
    """This host's right to act on its claims (send an Originate, a webhook, write a
    result), measured on its monotonic clock from when it sent its last heartbeat that
    the database took."""

    heartbeat_sent: float  # time.monotonic() when that heartbeat was sent
    host_timeout: float

    def valid(self, monotonic_now: float) -> bool:
        return monotonic_now < self.heartbeat_sent + self.host_timeout - LEASE_MARGIN_S
