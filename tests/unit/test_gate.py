"""Which refusals of an Originate hold every start (the attempt given back, no try used)
and which end the attempt: the table docs/decisions.md shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from daemon.calls.gate import REFUSAL_PAUSE, OriginateGate, Refusal, classify_refusal, gives_back

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("message", "refusal", "given_back"),
    [
        ("Asterisk is shutting down", Refusal.STOPPING, True),
        ("Permission denied", Refusal.NOT_PERMITTED, True),
        ("Originate Access Forbidden: app or data blacklisted", Refusal.NOT_PERMITTED, True),
        ("Extension does not exist.", Refusal.NO_DIALPLAN, True),
        ("Originate failed", Refusal.PBX_FAILED, True),
        ("Invalid channel", Refusal.FINAL, False),
        ("Invalid priority", Refusal.FINAL, False),
        ("Channel not specified", Refusal.FINAL, False),
        ("", Refusal.FINAL, False),
    ],
)
def test_each_refusal_is_sorted_by_what_asterisk_says(
    message: str, refusal: Refusal, given_back: bool
) -> None:
    assert classify_refusal(message) is refusal
    assert gives_back(refusal) is given_back


def test_a_pbx_wide_refusal_holds_the_starts_and_names_the_fix() -> None:
    gate = OriginateGate()

    assert gate.refused("Extension does not exist.", T0) is Refusal.NO_DIALPLAN

    assert not gate.may_start and not gate.open
    assert gate.error is not None
    assert "Extension does not exist." in gate.error and "dialplan reload" in gate.error


def test_a_refusal_of_one_call_or_while_asterisk_stops_holds_nothing() -> None:
    gate = OriginateGate()

    gate.refused("Invalid channel", T0)
    gate.refused("Asterisk is shutting down", T0)

    assert gate.may_start and gate.open and gate.error is None


def test_after_the_pause_one_try_is_let_through_and_an_accepted_originate_ends_the_hold() -> None:
    gate = OriginateGate()
    gate.refused("Permission denied", T0)

    assert not gate.try_again(T0 + REFUSAL_PAUSE - timedelta(seconds=1))
    assert gate.try_again(T0 + REFUSAL_PAUSE)
    assert gate.may_start and not gate.open  # /readyz names it until one passes

    assert gate.accepted()
    assert gate.open and gate.error is None
    assert not gate.accepted()  # nothing held any more
