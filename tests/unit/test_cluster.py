"""The decisions of several hosts as tables: when a host is gone, when a gone host's
calls may be closed, when a host may still act on its claims."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from daemon.cluster import (
    CALL_END_SLACK,
    LEASE_MARGIN_S,
    GoneHost,
    Lease,
    Verdict,
    attempt_verdict,
    host_gone,
    longest_call_seconds,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("silent_for", "timeout", "gone"),
    [(0, 30, False), (29.9, 30, False), (30, 30, False), (30.1, 30, True), (3600, 30, True)],
)
def test_a_host_is_gone_only_once_silent_for_longer_than_the_timeout(
    silent_for: float, timeout: float, gone: bool
) -> None:
    assert host_gone(T0, at(silent_for), timeout) is gone


@pytest.mark.parametrize(
    ("a_ring", "b_ring", "talk", "longest"), [(30, 30, 600, 660), (45, 20, 1, 66), (30, 30, 0, 0)]
)
def test_the_longest_call_is_both_ring_times_and_the_talk_limit(
    a_ring: int, b_ring: int, talk: int, longest: int
) -> None:
    assert longest_call_seconds(a_ring, b_ring, talk) == longest


SLACK = CALL_END_SLACK.total_seconds()


@pytest.mark.parametrize(
    ("host", "now", "verdict"),
    [
        # alive: its calls are its own
        (GoneHost(T0, 30, 660), at(10), Verdict.KEEP),
        # gone, but a call it placed just before its lease ended may still be up
        (GoneHost(T0, 30, 660), at(31), Verdict.KEEP),
        (GoneHost(T0, 30, 660), at(30 + 660 + SLACK - 1), Verdict.KEEP),
        # no call of it can be up any more
        (GoneHost(T0, 30, 660), at(30 + 660 + SLACK), Verdict.CLOSE),
        # no talk limit: a call may last for ever, so only an operator can tell
        (GoneHost(T0, 30, 0), at(31), Verdict.WAIT_FOR_RELEASE),
        (GoneHost(T0, 30, 0), at(10**6), Verdict.WAIT_FOR_RELEASE),
        # released by the operator, who checked that host's PBX
        (GoneHost(T0, 30, 0, released=True), at(31), Verdict.CLOSE),
        (GoneHost(T0, 30, 660, released=True), at(31), Verdict.CLOSE),
    ],
)
def test_a_gone_hosts_call_is_closed_only_when_it_cannot_be_up(
    host: GoneHost, now: datetime, verdict: Verdict
) -> None:
    assert attempt_verdict(host, now) is verdict


@pytest.mark.parametrize(
    ("now", "valid"),
    [
        (100.0, True),
        (100 + 30 - LEASE_MARGIN_S - 0.01, True),
        (100 + 30 - LEASE_MARGIN_S, False),
        # frozen (SIGSTOP) for an hour: the monotonic clock went on, the lease is over
        (100 + 3600, False),
    ],
)
def test_a_host_acts_only_while_its_lease_runs(now: float, valid: bool) -> None:
    assert Lease(heartbeat_sent=100.0, host_timeout=30).valid(now) is valid


def test_the_lease_ends_before_the_others_may_call_the_host_gone() -> None:
    # The heartbeat is stamped by the database after it was sent, so the lease (counted
    # from sending) ends first, by LEASE_MARGIN_S at least.
    sent, stamped, timeout = 100.0, 100.5, 30.0
    lease_end = sent + timeout - LEASE_MARGIN_S
    gone_from = stamped + timeout
    assert not Lease(sent, timeout).valid(lease_end)
    assert lease_end < gone_from
