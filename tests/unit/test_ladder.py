"""The ladder of an attempt, drawn from real recorded AMI streams of the test PBX."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ami.events import AmiEvent, parse_headers
from daemon.ladder import Ladder, ladder
from daemon.models import format_event_time

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def recorded(file: str) -> tuple[str, list[AmiEvent]]:
    """The recording's call uuid and its events."""
    text = (FIXTURES / file).read_text()
    found = re.search(r"Linkedid: (\S+)", text)
    assert found is not None
    blocks = [b for b in text.replace("\r\n", "\n").split("\n\n") if b.startswith("Event:")]
    return found.group(1), [parse_headers(block) for block in blocks]


def drawn(file: str, b_number: str = "1102", seconds_apart: int = 1) -> Ladder:
    """The ladder of a recording whose events arrived `seconds_apart` from each other."""
    call_uuid, events = recorded(file)
    timed = [
        ((T0 + timedelta(seconds=i * seconds_apart)).strftime("%Y-%m-%d %H:%M:%S"), ev)
        for i, ev in enumerate(events)
    ]
    return ladder(call_uuid, b_number, timed)


def kinds(drawing: Ladder, side: str) -> list[list[str]]:
    return [[step.kind for step in leg.steps] for leg in drawing.legs if leg.side == side]


def test_a_connected_call_shows_both_legs_answered_bridged_and_hung_up() -> None:
    drawing = drawn("success.ami")
    assert kinds(drawing, "A") == [["dialled", "ringing", "answered", "bridged", "hung_up"]]
    assert kinds(drawing, "B") == [["dialled", "ringing", "answered", "bridged", "hung_up"]]
    a, b = drawing.legs
    assert (a.number, b.number) == ("1105", "1102")
    assert a.caller_id_number == "4950000001"  # what A was shown
    assert b.caller_id_number == "1105"  # B sees the A number that answered
    assert (a.dial_status, b.dial_status) == ("ANSWER", "ANSWER")
    assert b.hangup_cause == 16
    assert drawing.hung_up_first == "B"  # B talked 2 s and hung up
    assert drawing.bridged_at is not None
    for leg in (a, b):
        assert leg.post_dial_delay is not None
        assert leg.time_to_answer is not None
        assert leg.post_dial_delay <= leg.time_to_answer
        assert leg.talk_time is not None and leg.talk_time > 0


def test_a_call_of_one_a_number_draws_the_originates_own_dial_as_the_a_leg() -> None:
    drawing = drawn("one_a_success.ami")
    assert kinds(drawing, "A") == [["dialled", "ringing", "answered", "bridged", "hung_up"]]
    assert kinds(drawing, "B") == [["dialled", "ringing", "answered", "bridged", "hung_up"]]
    a, b = drawing.legs
    assert (a.number, b.number) == ("1105", "1102")
    assert a.caller_id_number == "4950000001"  # what A was shown
    assert b.caller_id_number == "1105"  # B sees the A number
    assert (a.dial_status, b.dial_status) == ("ANSWER", "ANSWER")


def test_who_hung_up_first_is_told_by_the_phone_not_by_the_dialled_half() -> None:
    # The Hangups of the two dialled Local halves race each other; the phone's own
    # half (;2) of the leg that hung up comes before both. Here A's ;1 is moved ahead
    # of B's ;1, as it arrives on a busy PBX.
    call_uuid, events = recorded("one_a_success.ami")
    hangups = [i for i, ev in enumerate(events) if ev.get("Event") == "Hangup"]
    b_phone, b_dialled, a_dialled, a_phone = (events[i] for i in hangups)
    assert b_phone["Channel"].endswith(";2") and a_dialled["Uniqueid"] == call_uuid
    events[hangups[0] : hangups[-1] + 1] = [b_phone, a_dialled, b_dialled, a_phone]
    timed = [((T0 + timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S"), ev)
             for i, ev in enumerate(events)]  # fmt: skip

    assert ladder(call_uuid, "1102", timed).hung_up_first == "B"


def test_times_are_counted_from_the_events_arrival() -> None:
    drawing = drawn("success.ami", seconds_apart=2)
    a = drawing.legs[0]
    dialled, ringing, answered = a.steps[:3]
    assert a.post_dial_delay == ringing.offset - dialled.offset
    assert a.time_to_answer == answered.offset - dialled.offset
    assert drawing.started_at == "2026-03-02 12:00:00.000"
    assert drawing.event_count == len(recorded("success.ami")[1])


@pytest.mark.parametrize(
    ("file", "status", "cause"),
    [
        ("a_busy.ami", "BUSY", 17),
        ("a_congestion.ami", "CONGESTION", 34),
        ("a_unallocated.ami", "NOANSWER", 1),
        ("a_no_answer.ami", "NOANSWER", None),
    ],
)
def test_an_a_number_that_fails_is_one_leg_with_its_status_and_cause(
    file: str, status: str, cause: int | None
) -> None:
    drawing = drawn(file)
    [a] = drawing.legs
    assert a.side == "A"
    assert a.dial_status == status
    assert a.steps[0].kind == "dialled"
    assert "not_answered" in [step.kind for step in a.steps]
    if cause is not None:
        assert a.hangup_cause == cause
    assert a.time_to_answer is None and a.talk_time is None
    assert drawing.bridged_at is None and drawing.hung_up_first is None


def test_b_busy_shows_a_answered_and_b_not() -> None:
    drawing = drawn("b_busy.ami", b_number="2000")
    a, b = drawing.legs
    assert "answered" in [s.kind for s in a.steps] and "bridged" not in [s.kind for s in a.steps]
    assert b.side == "B" and b.dial_status == "BUSY" and b.hangup_cause == 17
    assert drawing.hung_up_first is None


def test_two_a_numbers_ring_together_and_one_answers() -> None:
    drawing = drawn("two_a_second_answers.ami")
    a_legs = [leg for leg in drawing.legs if leg.side == "A"]
    assert {leg.number: leg.dial_status for leg in a_legs} == {"1302": "CANCEL", "1105": "ANSWER"}
    [winner] = [leg for leg in a_legs if leg.dial_status == "ANSWER"]
    assert "bridged" in [s.kind for s in winner.steps]


def test_without_ringing_events_the_post_dial_delay_is_unknown() -> None:
    call_uuid, events = recorded("success.ami")
    quiet = [("2026-03-02 12:00:00", ev) for ev in events if ev.get("Event") != "Newstate"]
    drawing = ladder(call_uuid, "1102", quiet)
    assert all(leg.post_dial_delay is None for leg in drawing.legs)
    assert all(leg.time_to_answer == 0 for leg in drawing.legs)


def test_no_events_draw_no_legs() -> None:
    drawing = ladder("c0ffee", "1102", [])
    assert drawing.legs == [] and drawing.started_at is None and drawing.event_count == 0


def test_dial_state_ringing_alone_gives_the_post_dial_delay() -> None:
    """The shipped AMI filter passes DialState but not Newstate."""
    call_uuid, events = recorded("success_unfiltered.ami")
    timed = [
        ((T0 + timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S"), ev)
        for i, ev in enumerate(ev for ev in events if ev.get("Event") != "Newstate")
    ]
    drawing = ladder(call_uuid, "1102", timed)
    for leg in drawing.legs:
        assert [s.kind for s in leg.steps][:2] == ["dialled", "ringing"]
        ringing = leg.steps[1]
        assert leg.post_dial_delay == ringing.offset - leg.steps[0].offset > 0


def test_milliseconds_of_the_arrival_times_are_kept() -> None:
    call_uuid, events = recorded("success.ami")
    start = T0 + timedelta(milliseconds=250)
    timed = [
        (format_event_time(start + timedelta(milliseconds=150 * i)), ev)
        for i, ev in enumerate(events)
    ]
    a = ladder(call_uuid, "1102", timed).legs[0]
    dialled, ringing = a.steps[:2]
    assert re.fullmatch(r"2026-03-02 12:00:\d\d\.\d\d0", dialled.at)
    assert a.post_dial_delay == round(ringing.offset - dialled.offset, 3)
    # A whole number of the 150 ms between two events, not rounded to seconds.
    assert a.post_dial_delay is not None and round(a.post_dial_delay * 1000) % 150 == 0
    assert dialled.offset % 1 != 0 or ringing.offset % 1 != 0
