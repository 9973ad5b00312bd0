"""The ladder of one attempt: its A and B legs, step by step, drawn from the stored AMI
events (pure). The console draws it; the steps and the derived times are what an
operator of a PBX reads off a CDR view: post-dial delay, time to answer, talk time,
hang-up cause, who hung up first.

The legs are the channels dialled by the two halves of the Originate (docs/call-flow.md):
the A side (uniqueid `<call_uuid>-a`) dials every A number, the B side (`<call_uuid>`)
dials B. The bridge of A with B is the engine's own decision, replayed with the same
`CallTracker`, so the picture cannot disagree with the stored result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from ami.events import AmiEvent, header, name
from ami.outcome import CallTracker, Milestone, dial_side
from daemon.models import format_event_time, parse_time

StepKind = Literal["dialled", "ringing", "answered", "not_answered", "bridged", "hung_up"]
RINGING_STATES = frozenset({"RINGING", "PROGRESS"})


class LadderStep(BaseModel):
    """One step of a leg, as an AMI event told it."""

    at: str = Field(
        description="When the event arrived, UTC 'YYYY-MM-DD HH:MM:SS.mmm' (whole seconds "
        "for events stored before callbackd kept milliseconds)."
    )
    offset: float = Field(description="Seconds since the call's first event.")
    kind: StepKind = Field(description="What happened.")
    text: str = Field(description="The step in plain words, with status and cause.")


class Leg(BaseModel):
    """One dialled phone of the call: an A number or B."""

    side: Literal["A", "B"] = Field(description="A (called first) or B.")
    number: str = Field(description="The number dialled.")
    channel: str = Field(description="The Asterisk channel that rang it.")
    caller_id_number: str = Field(description="The caller ID number this phone was shown.")
    caller_id_name: str = Field(description="The caller ID name this phone was shown.")
    dial_status: str | None = Field(description="Dial()'s status: ANSWER, BUSY, NOANSWER, ...")
    hangup_cause: int | None = Field(description="The Q.850 cause of its hang-up.")
    hangup_cause_text: str = Field(description="The cause in Asterisk's words.")
    post_dial_delay: float | None = Field(
        description="Seconds from dialling to ringing; null without a ringing event."
    )
    time_to_answer: float | None = Field(description="Seconds from dialling to the answer.")
    talk_time: float | None = Field(description="Seconds from the bridge to its hang-up.")
    steps: list[LadderStep] = Field(description="Its steps in arrival order.")


class Ladder(BaseModel):
    """The legs of one attempt's call, drawn from its stored AMI events."""

    call_uuid: str = Field(description="The attempt's call uuid.")
    started_at: str | None = Field(description="When its first event arrived (UTC).")
    legs: list[Leg] = Field(description="Every phone dialled: the A numbers, then B.")
    bridged_at: str | None = Field(description="When A and B were connected (UTC).")
    hung_up_first: Literal["A", "B"] | None = Field(
        description="The leg whose phone hung up first once A and B were connected."
    )
    event_count: int = Field(description="How many AMI events the call has stored.")


@dataclass
class _Draft:
    side: Literal["A", "B"]
    uniqueid: str
    number: str
    channel: str
    caller_id_number: str
    caller_id_name: str
    dialled: datetime
    dial_status: str | None = None
    cause: int | None = None
    cause_text: str = ""
    ringing: datetime | None = None
    answered: datetime | None = None
    bridged: datetime | None = None
    hung_up: datetime | None = None
    hung_up_seq: int = 0  # arrival order: events of one read share their time
    # For a Local channel (the test PBX's phones), when its other half, the phone
    # itself, hung up: that comes first, while the Hangup of the half the call dialled
    # races the other leg's.
    phone_hung_up_seq: int = 0
    steps: list[tuple[datetime, StepKind, str]] = field(default_factory=list)


def _shown(value: str) -> str:
    return "" if value in ("<unknown>", "") else value


def ladder(call_uuid: str, b_number: str, timed_events: Iterable[tuple[str, AmiEvent]]) -> Ladder:
    """The legs of the call `call_uuid` from its events, (received_at, headers) in
    arrival order."""
    tracker = CallTracker(call_uuid, {}, b_number)
    legs: dict[str, _Draft] = {}  # by the dialled channel's uniqueid
    first: datetime | None = None
    count = 0
    for received_at, ev in timed_events:
        count += 1
        at = parse_time(received_at)
        first = first or at
        _step(legs, call_uuid, b_number, ev, at, count)
        for milestone in tracker.feed(ev, at):
            if milestone is Milestone.BRIDGED:
                _bridged(legs, tracker, at)
    hung_up_first = _first_to_hang_up(legs.values()) if tracker.bridged_time else None
    return Ladder(
        call_uuid=call_uuid,
        started_at=_text(first),
        legs=[_leg(draft, first) for draft in legs.values()],
        bridged_at=_text(tracker.bridged_time),
        hung_up_first=hung_up_first,
        event_count=count,
    )


def _step(
    legs: dict[str, _Draft], call_uuid: str, b_number: str, ev: AmiEvent, at: datetime, seq: int
) -> None:
    kind = name(ev)
    uid = header(ev, "Uniqueid")
    dialled_side = dial_side(ev, call_uuid) if kind in ("DialBegin", "DialEnd") else None
    if kind == "DialBegin" and dialled_side is not None:
        side: Literal["A", "B"] = "A" if dialled_side == "A" else "B"
        dial_string = header(ev, "DialString")
        draft = _Draft(
            side=side,
            uniqueid=header(ev, "DestUniqueid"),
            number=b_number if side == "B" else dial_string.split("@", 1)[0],
            channel=header(ev, "DestChannel"),
            # What the dialled phone is shown is its channel's connected line (the
            # Originate's own dial of one A number has no caller channel at all).
            caller_id_number=_shown(header(ev, "DestConnectedLineNum"))
            or _shown(header(ev, "CallerIDNum")),
            caller_id_name=_shown(header(ev, "DestConnectedLineName"))
            or _shown(header(ev, "CallerIDName")),
            dialled=at,
        )
        shown = draft.caller_id_number or "the default caller ID"
        draft.steps.append((at, "dialled", f"dialled {dial_string}, showing {shown}"))
        legs[draft.uniqueid] = draft
        return
    dest = header(ev, "DestUniqueid")
    if kind == "DialEnd" and dest in legs and dialled_side is not None:
        draft = legs[dest]
        draft.dial_status = header(ev, "DialStatus")
        if draft.dial_status == "ANSWER":
            draft.answered = at
            draft.steps.append((at, "answered", "answered"))
        else:
            draft.steps.append((at, "not_answered", f"not answered: {draft.dial_status}"))
        return
    ringing_of = _ringing_channel(ev)
    if ringing_of in legs and legs[ringing_of].ringing is None:
        draft = legs[ringing_of]
        draft.ringing = at
        draft.steps.append((at, "ringing", "ringing"))
        return
    if kind == "Hangup" and header(ev, "Channel").endswith(";2"):
        dialled_half = header(ev, "Channel")[:-1] + "1"
        for other in legs.values():
            if other.channel == dialled_half and not other.phone_hung_up_seq:
                other.phone_hung_up_seq = seq
    if kind == "Hangup" and uid in legs:
        draft = legs[uid]
        draft.hung_up, draft.hung_up_seq = at, seq
        cause = header(ev, "Cause")
        draft.cause = int(cause) if cause.isdigit() else None
        draft.cause_text = header(ev, "Cause-txt")
        words = f"hung up, cause {cause or '?'}" + (
            f" ({draft.cause_text})" if draft.cause_text else ""
        )
        draft.steps.append((at, "hung_up", words))


def _ringing_channel(ev: AmiEvent) -> str:
    """The uniqueid of the channel that this event says is ringing, if it says so."""
    kind = name(ev)
    if kind == "Newstate" and header(ev, "ChannelStateDesc") == "Ringing":
        return header(ev, "Uniqueid")
    if kind == "DialState" and header(ev, "DialStatus") in RINGING_STATES:
        return header(ev, "DestUniqueid")
    return ""


def _bridged(legs: dict[str, _Draft], tracker: CallTracker, at: datetime) -> None:
    """A and B are connected: the A leg that answered and the B leg."""
    answered_a = tracker.answered_a.uniqueid if tracker.answered_a else ""
    b_leg = tracker.b_leg.uniqueid if tracker.b_leg else ""
    for uid in (answered_a, b_leg):
        if uid in legs:
            legs[uid].bridged = at
            legs[uid].steps.append((at, "bridged", "connected with the other leg"))


def _first_to_hang_up(drafts: Iterable[_Draft]) -> Literal["A", "B"] | None:
    bridged = [d for d in drafts if d.bridged is not None and d.hung_up is not None]
    if not bridged:
        return None
    return min(bridged, key=lambda d: d.phone_hung_up_seq or d.hung_up_seq).side


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def _text(moment: datetime | None) -> str | None:
    return format_event_time(moment) if moment else None


def _leg(draft: _Draft, first: datetime | None) -> Leg:
    origin = first or draft.dialled
    return Leg(
        side=draft.side,
        number=draft.number,
        channel=draft.channel,
        caller_id_number=draft.caller_id_number,
        caller_id_name=draft.caller_id_name,
        dial_status=draft.dial_status,
        hangup_cause=draft.cause,
        hangup_cause_text=draft.cause_text,
        post_dial_delay=_seconds(draft.dialled, draft.ringing),
        time_to_answer=_seconds(draft.dialled, draft.answered),
        talk_time=_seconds(draft.bridged, draft.hung_up),
        steps=[
            LadderStep(at=_text(at) or "", offset=_seconds(origin, at) or 0, kind=kind, text=text)
            for at, kind, text in draft.steps
        ],
    )
