"""The outcome table of docs/call-outcomes.md, proven over SIP: real tasks through the call
engine, dialled as `PJSIP/{number}@farend` over the test PBX's PJSIP trunk to the SIPp
far end (tools/sipfarend), which answers each number as docs/sip-trunk.md says. What
the far end received (its INVITEs, with From and P-Asserted-Identity) is checked too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import pytest

from ami.outcome import COMMENTS, Result
from config import Settings
from daemon.models import FinishResult
from tests.engine_harness import EngineHarness, engine_harness
from tests.pbx import Invite, SipFarEnd, TestPbx

pytestmark = pytest.mark.pbx

# Short rings keep the tier quick: the far end answers after 0.5 s, so 2 s is a ring
# timeout only for the numbers that never answer. Calls where both ends stay on the
# line are ended by the talk limit.
SIP_CALLS = {
    "a_channel": SipFarEnd.CHANNEL,
    "b_channel": SipFarEnd.CHANNEL,
    "a_ring_timeout": 2,
    "b_ring_timeout": 2,
    "max_talk_time": 2,
}
_serial = count(1)


def number(behaviour: str) -> str:
    """A far-end number that does `behaviour` (its first three digits) and that no other
    call of this run dials."""
    return f"{behaviour}{next(_serial):04d}"


@pytest.fixture
async def harness(
    testpbx: TestPbx, sip_farend: SipFarEnd, tmp_path: Path
) -> AsyncIterator[EngineHarness]:
    async with engine_harness(
        tmp_path / "cb.db",
        testpbx.host,
        testpbx.port,
        testpbx.username,
        testpbx.secret,
        Settings(calls=SIP_CALLS),
    ) as h:
        yield h


@dataclass(frozen=True)
class Row:
    """One row of the outcome table: what A and B do, what callbackd must say."""

    a: str  # far-end behaviour of A (docs/sip-trunk.md)
    b: str  # ... of B
    result: Result
    a_status: str | None
    # None: not reported. With one A number, A's own channel dials B; when B fails,
    # Asterisk hangs A up with B's cause, which is B's and not recorded for A.
    a_cause: int | None
    b_status: str | None = None
    b_cause: int | None = None
    b_rings: bool = True  # False: B is never dialled


ROWS = {
    "answer": Row("200", "210", Result.SUCCESS, "ANSWER", 16, "ANSWER", 16),
    "A busy 486": Row("486", "210", Result.A_BUSY, "BUSY", 17, b_rings=False),
    # The Originate's own ring timer ends A's ringing: cause 19, no answer.
    "A no answer": Row("180", "210", Result.A_NO_ANSWER, "NOANSWER", 19, b_rings=False),
    "A unavailable 480": Row("480", "210", Result.A_NO_ANSWER, "NOANSWER", 19, b_rings=False),
    "A congested 503": Row("503", "210", Result.A_CONGESTION, "CONGESTION", 34, b_rings=False),
    "A not found 404": Row("404", "210", Result.A_INVALID, "NOANSWER", 1, b_rings=False),
    "A incomplete 484": Row("484", "210", Result.A_INVALID, "NOANSWER", 28, b_rings=False),
    "A declined 603": Row("603", "210", Result.A_REJECTED, "NOANSWER", 21, b_rings=False),
    "A forbidden 403": Row("403", "210", Result.A_REJECTED, "NOANSWER", 21, b_rings=False),
    "A early media": Row("183", "210", Result.SUCCESS, "ANSWER", 16, "ANSWER", 16),
    "A hangs up at once": Row("220", "180", Result.A_HUNG_UP, "ANSWER", 0, b_rings=False),
    "B busy 486": Row("200", "486", Result.B_BUSY, "ANSWER", None, "BUSY", 17),
    "B no answer": Row("200", "180", Result.B_NO_ANSWER, "ANSWER", None, "NOANSWER", 0),
    "B unavailable 480": Row("200", "480", Result.B_NO_ANSWER, "ANSWER", None, "NOANSWER", 19),
    "B congested 503": Row("200", "503", Result.B_CONGESTION, "ANSWER", None, "CONGESTION", 34),
    "B not found 404": Row("200", "404", Result.B_INVALID, "ANSWER", None, "NOANSWER", 1),
    "B incomplete 484": Row("200", "484", Result.B_INVALID, "ANSWER", None, "NOANSWER", 28),
    "B declined 603": Row("200", "603", Result.B_REJECTED, "ANSWER", None, "NOANSWER", 21),
    "B forbidden 403": Row("200", "403", Result.B_REJECTED, "ANSWER", None, "NOANSWER", 21),
    "B early media": Row("200", "183", Result.SUCCESS, "ANSWER", 16, "ANSWER", 16),
    "B hangs up at once": Row("200", "220", Result.SUCCESS, "ANSWER", 16, "ANSWER", 16),
}


def sip_code(behaviour: str) -> int | None:
    """The SIP response that ends a call of that behaviour, as Asterisk reports it (the
    Hangup's TechCause): the refusals'; a call that rang or talked has none."""
    return int(behaviour) if behaviour[0] in "456" else None


def received(farend: SipFarEnd, since: int, to: str) -> list[Invite]:
    return [invite for invite in farend.invites()[since:] if invite.user == to]


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
async def test_each_sip_outcome_ends_the_attempt_as_the_table_says(
    harness: EngineHarness, sip_farend: SipFarEnd, row: Row
) -> None:
    a, b = number(row.a), number(row.b)
    since = len(sip_farend.invites())

    ended, record = await harness.call(
        a, b, callback_params={"caller_id_name": "Sales", "caller_id_number": "+4930555"}
    )

    assert ended.outcome.result is row.result
    assert ended.outcome.comment == COMMENTS[row.result]
    assert (record.result, record.state) == (str(row.result), "ended")
    assert (record.a_dial_status, record.a_hangup_cause) == (row.a_status, row.a_cause)
    # A ring timeout is the Originate's own: Asterisk reports it as a 480 of its own.
    assert ended.outcome.a_tech_cause == (480 if row.a == "180" else sip_code(row.a))
    if row.b_rings:
        assert (record.b_dial_status, record.b_hangup_cause) == (row.b_status, row.b_cause)
        assert ended.outcome.b_tech_cause == sip_code(row.b)
    assert (record.bridged_time_gmt is not None) is (row.result is Result.SUCCESS)
    assert ended.step is not None
    expected_finish = FinishResult.SUCCESS if row.result is Result.SUCCESS else FinishResult.FAILED
    assert (ended.step.finish_result, ended.step.comment) == (expected_finish, COMMENTS[row.result])
    # What the far end received: one INVITE for A, with the task's caller ID ...
    [a_invite] = received(sip_farend, since, a)
    assert (a_invite.caller_name, a_invite.caller_number) == ("Sales", "+4930555")
    assert a_invite.asserted_number == "+4930555"
    # ... and, once A answered, one for B, showing the A number that answered.
    b_invites = received(sip_farend, since, b)
    if row.b_rings:
        [b_invite] = b_invites
        assert (b_invite.caller_name, b_invite.caller_number) == ("", a)
        assert b_invite.asserted_number == a
    elif row.a_status != "ANSWER":
        assert b_invites == []


async def test_b_is_shown_the_attempts_caller_id_and_a_name_goes_only_to_a(
    harness: EngineHarness, sip_farend: SipFarEnd
) -> None:
    a, b = number("200"), number("210")
    since = len(sip_farend.invites())

    ended, _ = await harness.call(
        a,
        b,
        callback_params={"caller_id_name": "José Müller (Sales)", "caller_id_number": "4951"},
        attempts_src_ani_numbers=["74950001"],
        attempts_dst_ani_numbers=["74990002"],
    )

    assert ended.outcome.result is Result.SUCCESS
    [a_invite] = received(sip_farend, since, a)
    [b_invite] = received(sip_farend, since, b)
    assert (a_invite.caller_name, a_invite.caller_number) == ("José Müller (Sales)", "74950001")
    assert (b_invite.caller_name, b_invite.caller_number) == ("", "74990002")
    assert b_invite.asserted_number == "74990002"


async def test_extended_a_numbers_ring_together_over_sip_and_the_first_to_answer_wins(
    harness: EngineHarness, sip_farend: SipFarEnd
) -> None:
    ringing, answering, busy, b = number("180"), number("200"), number("486"), number("210")
    since = len(sip_farend.invites())

    ended, record = await harness.call(
        ringing, b, callback_params={"extended_a_numbers": [answering, busy]}
    )

    assert ended.outcome.result is Result.SUCCESS
    assert record.answered_a_number == answering
    # Every A number got its INVITE; the one still ringing was cancelled, not answered.
    for dialled in (ringing, answering, busy):
        assert len(received(sip_farend, since, dialled)) == 1
    [b_invite] = received(sip_farend, since, b)
    assert b_invite.caller_number == answering
