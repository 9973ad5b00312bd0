"""decide() and CallTracker on the event streams the real Asterisk sent (tests/fixtures/ami,
decoded with the project's own wire decoder), on hand-written orders Asterisk may also
use, and Hypothesis properties over prefixes and repeats of the recordings."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ami.events import AmiEvent, header, name
from ami.originate import channel, dial_string_of
from ami.outcome import CallTracker, Milestone, Outcome, Result, decide
from ami.protocol import FrameDecoder
from daemon.models import CallRecord

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"
PHONES = "Local/{number}@phones"  # the channel template of the recordings (README)
FAREND = "PJSIP/{number}@farend"  # ... of the sip_* ones, over the test PBX's SIP trunk
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@cache
def recording(file: str) -> tuple[AmiEvent, ...]:
    raw = (FIXTURES / file).read_bytes()
    frames = FrameDecoder().feed(raw)
    assert [f.problem for f in frames if f.problem] == []
    assert len(frames) == raw.count(b"\r\n\r\nEvent: ") + raw.startswith(b"Event: ")
    return tuple(f.headers for f in frames if f.headers is not None)


def call_uuid(events: Sequence[AmiEvent]) -> str:
    """Every channel of a call carries Linkedid = the call uuid."""
    return header(events[0], "Linkedid")


def dial_strings(a_numbers: Sequence[str], template: str = PHONES) -> dict[str, str]:
    return {dial_string_of(channel(template, n)): n for n in a_numbers}


def template_of(file: str) -> str:
    return FAREND if "sip_" in file else PHONES


def timed(events: Sequence[AmiEvent]) -> list[tuple[AmiEvent, datetime]]:
    """One second between events, so a time names the event that set it."""
    return [(ev, T0 + timedelta(seconds=i)) for i, ev in enumerate(events)]


def at(index: int) -> datetime:
    return T0 + timedelta(seconds=index)


def decide_file(file: str, a_numbers: Sequence[str]) -> Outcome:
    events = recording(file)
    return decide(call_uuid(events), dial_strings(a_numbers, template_of(file)), timed(events))


@dataclass(frozen=True)
class Recorded:
    file: str
    a_numbers: tuple[str, ...]
    result: Result
    comment: str
    a_status: str | None
    b_status: str | None
    a_cause: int | None
    b_cause: int | None
    answered: str | None = None
    invalid: tuple[str, ...] = ()
    a_tech: int | None = None  # the SIP code of the A leg's end (Hangup TechCause)
    b_tech: int | None = None


# What each recording (tests/fixtures/ami/README.md) must decide.
RECORDED = [
    Recorded("success.ami", ("1105",), Result.SUCCESS, "A and B connected",
             "ANSWER", "ANSWER", 16, 16, answered="1105"),
    Recorded("success_unfiltered.ami", ("1105",), Result.SUCCESS, "A and B connected",
             "ANSWER", "ANSWER", 16, 16, answered="1105"),
    Recorded("a_busy.ami", ("2000",), Result.A_BUSY, "A busy", "BUSY", None, 17, None),
    Recorded("a_no_answer.ami", ("3000",), Result.A_NO_ANSWER, "A did not answer",
             "NOANSWER", None, 0, None),
    Recorded("a_congestion.ami", ("4000",), Result.A_CONGESTION, "A congestion",
             "CONGESTION", None, 34, None),
    # Causes 1 and 28 end in NOANSWER too: only the Hangup cause tells them apart.
    Recorded("a_unallocated.ami", ("5000",), Result.A_INVALID, "A number invalid",
             "NOANSWER", None, 1, None, invalid=("5000",)),
    Recorded("a_invalid_number.ami", ("6000",), Result.A_INVALID, "A number invalid",
             "NOANSWER", None, 28, None, invalid=("6000",)),
    Recorded("b_busy.ami", ("8000",), Result.B_BUSY, "B busy",
             "ANSWER", "BUSY", 16, 17, answered="8000"),
    Recorded("b_no_answer.ami", ("8000",), Result.B_NO_ANSWER, "B did not answer",
             "ANSWER", "NOANSWER", 16, 0, answered="8000"),
    Recorded("b_congestion.ami", ("8000",), Result.B_CONGESTION, "B congestion",
             "ANSWER", "CONGESTION", 16, 34, answered="8000"),
    # B 5000 is an unallocated number (cause 1): its channel exists, so it is invalid,
    # not unavailable.
    Recorded("b_unavailable.ami", ("8000",), Result.B_INVALID, "B number invalid",
             "ANSWER", "NOANSWER", 16, 1, answered="8000"),
    Recorded("a_hangup_before_b.ami", ("7100",), Result.A_HUNG_UP,
             "A hung up before B answered", "ANSWER", "CANCEL", 16, 16, answered="7100"),
    Recorded("two_a_second_answers.ami", ("1302", "1105"), Result.SUCCESS,
             "A and B connected", "ANSWER", "ANSWER", 16, 16, answered="1105"),
    Recorded("two_a_busy.ami", ("2000", "2001"), Result.A_BUSY, "A busy",
             "BUSY", None, 17, None),
    Recorded("b_max_talk.ami", ("8000",), Result.SUCCESS, "A and B connected",
             "ANSWER", "ANSWER", 16, 16, answered="8000"),
    Recorded("rejected.ami", ("8000",), Result.REJECTED, "rejected by the PBX",
             "ANSWER", None, 16, None, answered="8000"),
    # Over the PJSIP trunk to the SIPp far end (docs/sip-trunk.md).
    Recorded("sip_success.ami", ("2000001",), Result.SUCCESS, "A and B connected",
             "ANSWER", "ANSWER", 16, 16, answered="2000001"),
    # A ring timeout cancels the INVITE (CANCEL, 487): cause 0, as for a Local phone.
    Recorded("sip_a_no_answer.ami", ("1800001",), Result.A_NO_ANSWER, "A did not answer",
             "NOANSWER", None, 0, None),
    # 603 Decline and 403 Forbidden are cause 21 behind a NOANSWER.
    Recorded("sip_a_declined.ami", ("6030001",), Result.A_REJECTED, "A rejected",
             "NOANSWER", None, 21, None, a_tech=603),
    Recorded("sip_a_forbidden.ami", ("4030001",), Result.A_REJECTED, "A rejected",
             "NOANSWER", None, 21, None, a_tech=403),
    Recorded("sip_b_declined.ami", ("2000001",), Result.B_REJECTED, "B rejected",
             "ANSWER", "NOANSWER", 16, 21, answered="2000001", b_tech=603),
    # 480 Temporarily Unavailable is cause 19, "no answer from user".
    Recorded("sip_a_temporarily_unavailable.ami", ("4800001",), Result.A_NO_ANSWER,
             "A did not answer", "NOANSWER", None, 19, None, a_tech=480),
    # One A number: the Originate rings A's own channel (docs/call-flow.md).
    Recorded("one_a_success.ami", ("1105",), Result.SUCCESS, "A and B connected",
             "ANSWER", "ANSWER", 16, 16, answered="1105"),
    Recorded("one_a_success_unfiltered.ami", ("1105",), Result.SUCCESS, "A and B connected",
             "ANSWER", "ANSWER", 16, 16, answered="1105"),
    Recorded("one_a_busy.ami", ("2000",), Result.A_BUSY, "A busy", "BUSY", None, 17, None),
    # The Originate's ring timer ends A's ringing without a DialEnd: cause 19 tells.
    Recorded("one_a_no_answer.ami", ("3000",), Result.A_NO_ANSWER, "A did not answer",
             "NOANSWER", None, 19, None),
    Recorded("one_a_unallocated.ami", ("5000",), Result.A_INVALID, "A number invalid",
             "NOANSWER", None, 1, None, invalid=("5000",)),
    # A's channel dialled B and is hung up with B's cause: not recorded as A's.
    Recorded("one_a_b_busy.ami", ("8000",), Result.B_BUSY, "B busy",
             "ANSWER", "BUSY", None, 17, answered="8000"),
    # B 90000 has no extension: its channel is never dialled, Dial() says CHANUNAVAIL.
    Recorded("one_a_b_unavailable.ami", ("8000",), Result.B_UNAVAILABLE, "B unavailable",
             "ANSWER", "CHANUNAVAIL", None, None, answered="8000"),
    Recorded("one_a_hangup_before_b.ami", ("7100",), Result.A_HUNG_UP,
             "A hung up before B answered", "ANSWER", None, 0, None, answered="7100"),
    Recorded("one_a_b_max_talk.ami", ("8000",), Result.SUCCESS, "A and B connected",
             "ANSWER", "ANSWER", 16, 16, answered="8000"),
    Recorded("one_a_sip_success.ami", ("2000001",), Result.SUCCESS, "A and B connected",
             "ANSWER", "ANSWER", 16, 16, answered="2000001"),
    Recorded("one_a_sip_a_no_answer.ami", ("1800001",), Result.A_NO_ANSWER,
             "A did not answer", "NOANSWER", None, 19, None, a_tech=480),
    Recorded("one_a_sip_b_declined.ami", ("2000001",), Result.B_REJECTED, "B rejected",
             "ANSWER", "NOANSWER", None, 21, answered="2000001", b_tech=603),
    # An invalid B does not make the A number that answered invalid.
    Recorded("one_a_sip_b_not_found.ami", ("2000001",), Result.B_INVALID, "B number invalid",
             "ANSWER", "NOANSWER", None, 1, answered="2000001", b_tech=404),
]  # fmt: skip


def test_every_recording_has_a_row() -> None:
    assert sorted(r.file for r in RECORDED) == sorted(p.name for p in FIXTURES.glob("*.ami"))


@pytest.mark.parametrize("case", RECORDED, ids=lambda c: c.file)
def test_each_recording_decides_the_outcome_the_call_had(case: Recorded) -> None:
    outcome = decide_file(case.file, case.a_numbers)

    assert outcome.result is case.result
    assert outcome.comment == case.comment
    assert outcome.a_dial_status == case.a_status
    assert outcome.b_dial_status == case.b_status
    assert outcome.a_hangup_cause == case.a_cause
    assert outcome.b_hangup_cause == case.b_cause
    assert outcome.answered_a_number == case.answered
    assert outcome.invalid_numbers == case.invalid
    assert (outcome.a_tech_cause, outcome.b_tech_cause) == (case.a_tech, case.b_tech)


@pytest.mark.parametrize("case", RECORDED, ids=lambda c: c.file)
def test_times_follow_the_call_a_answer_then_bridge_then_end(case: Recorded) -> None:
    events = recording(case.file)
    outcome = decide_file(case.file, case.a_numbers)

    last_hangup = max(i for i, ev in enumerate(events) if name(ev) == "Hangup")
    assert outcome.end_time == at(last_hangup)
    assert outcome.a_answered is (case.answered is not None)
    assert (outcome.bridged_time is not None) is (case.result is Result.SUCCESS)
    times = [t for t in (outcome.a_answer_time, outcome.bridged_time, outcome.end_time) if t]
    assert times == sorted(times)


# --- hand-written sequences ---------------------------------------------------------

UUID = "0b5e4d1c-2f3a-4b6c-8d7e-9f0a1b2c3d4e"
A_SIDE = UUID + "-a"
A_LEG, B_LEG = "1700000000.10", "1700000000.20"
A_DIALS = dial_strings(["1001"])


def ev(event: str, **fields: str) -> AmiEvent:
    return {"Event": event, "Linkedid": UUID, **fields}


def originate_failure() -> AmiEvent:
    return {
        "Event": "OriginateResponse",
        "Response": "Failure",
        "Channel": "Local/s@callbackd-a",
        "Reason": "0",
        "Uniqueid": UUID,
    }


A_ANSWERS = [
    ev("Newchannel", Uniqueid=UUID),
    ev("Newchannel", Uniqueid=A_SIDE),
    # The Originate's own dial of Local;1: neither A nor B.
    {"Event": "DialBegin", "DestUniqueid": UUID, "DestLinkedid": UUID, "DialString": "s@x"},
    ev("Newchannel", Uniqueid=A_LEG),
    ev("DialBegin", Uniqueid=A_SIDE, DestUniqueid=A_LEG, DialString="1001@phones"),
    ev("DialEnd", Uniqueid=A_SIDE, DestUniqueid=A_LEG, DialStatus="ANSWER"),
    {"Event": "DialEnd", "DestUniqueid": UUID, "DestLinkedid": UUID, "DialStatus": "ANSWER"},
]
A_GOES = [
    ev("Hangup", Uniqueid=A_LEG, Cause="16"),
    ev("Hangup", Uniqueid=A_SIDE, Cause="16"),
    ev("Hangup", Uniqueid=UUID, Cause="16"),
]


def moved(events: Sequence[AmiEvent], pick: int, before: int) -> list[AmiEvent]:
    """The events with the one at ``pick`` moved to just before the one at ``before``."""
    rest = list(events)
    item = rest.pop(pick)
    rest.insert(before if before < pick else before - 1, item)
    return rest


def index_of(events: Sequence[AmiEvent], event: str, **fields: str) -> int:
    return next(
        i
        for i, e in enumerate(events)
        if name(e) == event and all(header(e, k) == v for k, v in fields.items())
    )


def test_an_originate_failure_before_the_first_channel_waits_for_the_channels() -> None:
    # On the test PBX, 300 busy A numbers started 100 at a time: 123 OriginateResponse
    # Failures came before the call's first Newchannel (it skips Stasis, they do not).
    events = recording("a_busy.ami")
    first = moved(events, index_of(events, "OriginateResponse"), 0)

    outcome = decide(call_uuid(events), dial_strings(["2000"]), timed(first))

    assert outcome.result is Result.A_BUSY
    assert outcome.a_hangup_cause == 17
    assert outcome.end_time == at(len(first) - 1)


def test_an_invalid_number_is_told_even_when_its_failure_comes_first() -> None:
    events = recording("a_unallocated.ami")
    first = moved(events, index_of(events, "OriginateResponse"), 0)

    outcome = decide(call_uuid(events), dial_strings(["5000"]), timed(first))

    assert outcome.result is Result.A_INVALID
    assert outcome.invalid_numbers == ("5000",)


def test_an_originate_failure_alone_leaves_the_call_open_for_the_watchdog() -> None:
    tracker = CallTracker(UUID, A_DIALS)

    assert tracker.feed(originate_failure(), T0) == []
    assert not tracker.ended
    assert tracker.outcome().result is Result.INTERRUPTED
    # No channel ever appeared: the engine closes the call and nothing rang.
    tracker.end_time = at(120)
    assert tracker.outcome().result is Result.A_UNAVAILABLE


def test_the_dialled_leg_hanging_up_before_its_dial_end_keeps_its_cause() -> None:
    events = recording("a_unallocated.ami")
    leg = header(events[index_of(events, "DialBegin", Uniqueid=call_uuid(events) + "-a")],
                 "DestUniqueid")  # fmt: skip
    dial_end = index_of(events, "DialEnd", Uniqueid=call_uuid(events) + "-a")
    early = moved(events, index_of(events, "Hangup", Uniqueid=leg), dial_end)

    outcome = decide(call_uuid(events), dial_strings(["5000"]), timed(early))

    assert outcome.result is Result.A_INVALID
    assert outcome.a_hangup_cause == 1


def test_b_entering_the_bridge_before_its_dial_end_still_bridges_on_local_1() -> None:
    events = recording("success.ami")
    uuid = call_uuid(events)
    b_answer = index_of(events, "DialEnd", Uniqueid=uuid)
    b_leg = header(events[b_answer], "DestUniqueid")
    early = moved(events, index_of(events, "BridgeEnter", Uniqueid=b_leg), b_answer)

    outcome = decide(uuid, dial_strings(["1105"]), timed(early))

    assert outcome.result is Result.SUCCESS
    assert outcome.bridged_time == at(index_of(early, "BridgeEnter", Uniqueid=uuid))


def test_a_rejected_a_dial_string_rings_nobody_and_is_rejected() -> None:
    events = [
        ev("Newchannel", Uniqueid=UUID),
        ev("Newchannel", Uniqueid=A_SIDE),
        ev("UserEvent", Uniqueid=A_SIDE, UserEvent="CallbackdRejected", Variable="CBD_A_DIAL"),
        ev("Hangup", Uniqueid=A_SIDE, Cause="21"),
        originate_failure(),
        ev("Hangup", Uniqueid=UUID, Cause="21"),
    ]

    outcome = decide(UUID, A_DIALS, timed(events))

    assert outcome.result is Result.REJECTED
    assert outcome.comment == "rejected by the PBX"
    assert outcome.a_dial_status is None
    assert outcome.answered_a_number is None


def test_b_channel_that_cannot_be_created_is_b_unavailable() -> None:
    events = [
        *A_ANSWERS,
        # Dial() in Local;1 could not create B's channel: no DialBegin, only its result.
        ev("UserEvent", Uniqueid=UUID, UserEvent="CallbackdBDialResult", DialStatus="CHANUNAVAIL"),
        *A_GOES,
    ]

    outcome = decide(UUID, A_DIALS, timed(events))

    assert outcome.result is Result.B_UNAVAILABLE
    assert outcome.comment == "B unavailable"
    assert outcome.b_dial_status == "CHANUNAVAIL"
    assert outcome.answered_a_number == "1001"


def two_a_numbers_failing(first: tuple[str, str], second: tuple[str, str]) -> list[AmiEvent]:
    """A 1001 and 1002 ring together; each (DialStatus, Hangup cause) ends one."""
    events = [ev("Newchannel", Uniqueid=UUID), ev("Newchannel", Uniqueid=A_SIDE)]
    for n, (status, cause) in enumerate([first, second], start=1):
        leg = f"1700000000.1{n}"
        events += [
            ev("Newchannel", Uniqueid=leg),
            ev("DialBegin", Uniqueid=A_SIDE, DestUniqueid=leg, DialString=f"100{n}@phones"),
            ev("Hangup", Uniqueid=leg, Cause=cause),
            ev("DialEnd", Uniqueid=A_SIDE, DestUniqueid=leg, DialStatus=status),
        ]
    return [*events, ev("Hangup", Uniqueid=A_SIDE, Cause="16"), ev("Hangup", Uniqueid=UUID)]


@pytest.mark.parametrize(
    ("first", "second", "result"),
    [
        (("NOANSWER", "21"), ("NOANSWER", "21"), Result.A_REJECTED),
        # a busy phone tells more than a rejection; a rejection more than congestion
        (("NOANSWER", "21"), ("BUSY", "17"), Result.A_BUSY),
        (("CONGESTION", "34"), ("NOANSWER", "21"), Result.A_REJECTED),
        (("NOANSWER", "21"), ("NOANSWER", "1"), Result.A_REJECTED),
        (("NOANSWER", "21"), ("NOANSWER", "0"), Result.A_NO_ANSWER),
    ],
)
def test_with_several_a_numbers_the_most_telling_failure_is_shown(
    first: tuple[str, str], second: tuple[str, str], result: Result
) -> None:
    outcome = decide(
        UUID, dial_strings(["1001", "1002"]), timed(two_a_numbers_failing(first, second))
    )

    assert outcome.result is result


def test_the_originates_own_dial_is_neither_a_nor_b() -> None:
    tracker = CallTracker(UUID, A_DIALS, b_number="2002")
    reached = [m for i, e in enumerate([*A_ANSWERS, *A_GOES]) for m in tracker.feed(e, at(i))]

    outcome = tracker.outcome()
    assert reached == [Milestone.A_ANSWERED, Milestone.ENDED]
    assert outcome.b_dial_status is None
    assert outcome.result is Result.A_HUNG_UP


def test_the_originates_own_busy_dial_end_is_not_a_busy_b() -> None:
    events = [
        ev("Newchannel", Uniqueid=UUID),
        ev("Newchannel", Uniqueid=A_SIDE),
        {"Event": "DialBegin", "DestUniqueid": UUID, "DialString": "s@callbackd-a"},
        ev("Newchannel", Uniqueid=A_LEG),
        ev("DialBegin", Uniqueid=A_SIDE, DestUniqueid=A_LEG, DialString="1001@phones"),
        ev("Hangup", Uniqueid=A_LEG, Cause="17"),
        ev("DialEnd", Uniqueid=A_SIDE, DestUniqueid=A_LEG, DialStatus="BUSY"),
        ev("Hangup", Uniqueid=A_SIDE, Cause="17"),
        {"Event": "DialEnd", "DestUniqueid": UUID, "DialStatus": "BUSY"},
        ev("Hangup", Uniqueid=UUID, Cause="17"),
    ]

    outcome = decide(UUID, A_DIALS, timed(events))

    assert outcome.result is Result.A_BUSY
    assert outcome.b_dial_status is None


def test_events_after_the_end_change_nothing() -> None:
    events = recording("success.ami")
    late = [*events, ev("Hangup", Uniqueid="1700000000.99", Cause="34"), originate_failure()]

    assert decide(call_uuid(events), dial_strings(["1105"]), timed(late)) == decide_file(
        "success.ami", ["1105"]
    )


# --- properties over the recordings ---------------------------------------------------


def bridging_index(case: Recorded) -> int | None:
    """Where a recorded success is bridged: the first BridgeEnter of Local;1 or of B's
    channel after B's DialEnd ANSWER."""
    if case.result is not Result.SUCCESS:
        return None
    events = recording(case.file)
    uuid = call_uuid(events)
    b_answer = index_of(events, "DialEnd", Uniqueid=uuid, DialStatus="ANSWER")
    b_leg = header(events[b_answer], "DestUniqueid")
    return next(
        i
        for i, e in enumerate(events)
        if i > b_answer and name(e) == "BridgeEnter" and header(e, "Uniqueid") in (uuid, b_leg)
    )


def fed(
    case: Recorded, events: Sequence[AmiEvent], times: Sequence[datetime]
) -> tuple[CallTracker, list[Milestone]]:
    """A tracker of the recording's call fed ``events``, and the milestones it reached."""
    tracker = CallTracker(
        call_uuid(recording(case.file)), dial_strings(case.a_numbers, template_of(case.file))
    )
    reached = [m for e, t in zip(events, times, strict=True) for m in tracker.feed(e, t)]
    return tracker, reached


cases_and_prefixes = st.sampled_from(RECORDED).flatmap(
    lambda case: st.tuples(st.just(case), st.integers(0, len(recording(case.file))))
)


@given(cases_and_prefixes)
def test_no_prefix_is_a_success_before_the_bridge(case_prefix: tuple[Recorded, int]) -> None:
    case, n = case_prefix
    events = recording(case.file)[:n]
    outcome = decide(
        call_uuid(recording(case.file)),
        dial_strings(case.a_numbers, template_of(case.file)),
        timed(events),
    )

    bridge = bridging_index(case)
    assert (outcome.result is Result.SUCCESS) is (bridge is not None and n > bridge)
    if outcome.result is not Result.SUCCESS and outcome.end_time is None:
        assert outcome.result is Result.INTERRUPTED


@given(cases_and_prefixes, st.data())
def test_feeding_events_twice_reaches_each_milestone_once(
    case_prefix: tuple[Recorded, int], data: st.DataObject
) -> None:
    case, n = case_prefix
    events = recording(case.file)[:n]
    times = [at(i) for i in range(n)]
    once, reached_once = fed(case, events, times)
    twice = data.draw(st.lists(st.booleans(), min_size=n, max_size=n), label="repeat")
    doubled = [(e, t) for e, t, again in zip(events, times, twice, strict=True)
               for _ in range(1 + again)]  # fmt: skip

    repeated, reached_repeated = fed(case, [e for e, _ in doubled], [t for _, t in doubled])

    assert reached_repeated == reached_once
    assert len(set(reached_once)) == len(reached_once)
    assert repeated.outcome() == once.outcome()


@given(cases_and_prefixes)
def test_feeding_a_prefix_again_reaches_nothing_new(case_prefix: tuple[Recorded, int]) -> None:
    case, n = case_prefix
    events = recording(case.file)[:n]
    times = [at(i) for i in range(n)]
    tracker, _ = fed(case, events, times)
    before = tracker.outcome()

    again = [m for e, t in zip(events, times, strict=True) for m in tracker.feed(e, t)]

    assert again == []
    assert tracker.outcome() == before


# --- catching up after missed events ------------------------------------------------


def channels_after(events: Sequence[AmiEvent]) -> list[AmiEvent]:
    """What CoreShowChannels would list once these events happened."""
    listed: dict[str, AmiEvent] = {}
    for e in events:
        uid = header(e, "Uniqueid")
        if name(e) == "Newchannel":
            listed[uid] = {**e, "Event": "CoreShowChannel", "BridgeId": ""}
        elif name(e) == "Newstate" and uid in listed:
            listed[uid]["ChannelState"] = header(e, "ChannelState")
        elif name(e) == "BridgeEnter" and uid in listed:
            listed[uid]["BridgeId"] = header(e, "BridgeUniqueid")
        elif name(e) == "BridgeLeave" and uid in listed:
            listed[uid]["BridgeId"] = ""
        elif name(e) == "Hangup":
            listed.pop(uid, None)
    return list(listed.values())


@pytest.mark.parametrize(
    ("file", "a_number", "missed_to", "result", "milestones"),
    [
        # Nothing seen from A's answer to the bridge: both come from the channel list.
        ("success.ami", "1105", "BridgeEnter", Result.SUCCESS,
         [Milestone.A_ANSWERED, Milestone.BRIDGED]),
        # A's answer and B's DialBegin missed: B's DialEnd still says how B ended.
        ("b_no_answer.ami", "8000", "DialBegin", Result.B_NO_ANSWER, [Milestone.A_ANSWERED]),
    ],
)  # fmt: skip
def test_a_call_whose_events_were_missed_is_caught_up_from_the_channel_list(
    file: str, a_number: str, missed_to: str, result: Result, milestones: list[Milestone]
) -> None:
    events = recording(file)
    uuid = call_uuid(events)
    start = index_of(events, "DialEnd", Uniqueid=uuid + "-a")
    end = index_of(events, missed_to, Uniqueid=uuid) + 1
    tracker = CallTracker(uuid, dial_strings([a_number]))
    for i, e in enumerate(events[:start]):
        tracker.feed(e, at(i))

    caught = tracker.catch_up(channels_after(events[:end]), at(end))
    for i, e in enumerate(events[end:], start=end):
        tracker.feed(e, at(i))

    assert caught == milestones
    outcome = tracker.outcome()
    assert outcome.result is result
    assert outcome.answered_a_number == a_number
    assert outcome.a_answer_time == at(end)


def test_catching_up_changes_nothing_the_events_already_told() -> None:
    events = recording("success.ami")
    tracker = CallTracker(call_uuid(events), dial_strings(["1105"]))
    bridge = index_of(events, "BridgeEnter", Uniqueid=call_uuid(events))
    for i, e in enumerate(events[: bridge + 1]):
        tracker.feed(e, at(i))
    answered, bridged = tracker.a_answer_time, tracker.bridged_time

    assert tracker.catch_up(channels_after(events[: bridge + 1]), at(999)) == []
    assert (tracker.a_answer_time, tracker.bridged_time) == (answered, bridged)


def test_the_call_record_schema_names_every_result() -> None:
    description = CallRecord.model_fields["result"].description or ""

    assert {r.value for r in Result} <= set(re.findall(r"[a-z_]+", description))
