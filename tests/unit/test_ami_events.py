"""RawEvent: an event read from its text gives what the parsed headers give."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from ami.events import RawEvent, header, parse_headers
from ami.protocol import parse_frame, split_blocks

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"

# Names that differ in case only, share a prefix, or are empty; values with colons,
# spaces, non-ASCII text whose lower case is longer ("İ"), and nothing at all.
NAMES = ["Event", "Uniqueid", "UniqueID", "uniqueid", "Unique", "Linkedid", "DialStatus", ""]
VALUES = st.text(alphabet="aZ09 :;İé-/@\r", max_size=12)


@st.composite
def frames(draw: st.DrawFn) -> str:
    lines = draw(
        st.lists(
            st.one_of(
                st.tuples(st.sampled_from(NAMES), st.sampled_from([": ", ":", ":  "]), VALUES),
                st.tuples(st.just("no colon here"), st.just(""), st.just("")),
            ),
            max_size=8,
        )
    )
    ending = draw(st.sampled_from(["\r\n", "\n"]))
    return ending.join(f"{name}{sep}{value}" for name, sep, value in lines)


@given(frames())
def test_every_lookup_gives_what_the_parsed_headers_give(text: str) -> None:
    parsed = parse_headers(text)
    event = RawEvent(text)
    for name in [*NAMES, "Absent", "Event:", "a\nb"]:
        assert event.get(name) == parsed.get(name), name
        assert (name in event) == (name in parsed), name
        assert header(event, name, "-") == header(parsed, name, "-"), name
    assert dict(event) == parsed
    assert event == parsed
    assert event.text == text


def test_a_repeated_header_holds_all_its_values() -> None:
    event = RawEvent("Event: Status\r\nVariable: a=1\r\nVariable: b=2\r\nvariable: c=3")
    assert event["Variable"] == "a=1\nb=2"
    assert header(event, "VARIABLE") == "a=1\nb=2"  # the first name that matches


def test_recorded_frames_read_the_same_either_way() -> None:
    for path in sorted(FIXTURES.glob("*.ami")):
        for raw in split_blocks(path.read_text()):
            frame = parse_frame(raw)
            assert frame.headers is not None
            assert dict(frame.headers) == parse_headers(raw[:-4].decode())
