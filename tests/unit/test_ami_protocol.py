"""The AMI wire format: framing, decoding and encoding, without any socket."""

import pytest

from ami.events import header, name
from ami.protocol import MAX_FRAME_BYTES, FrameDecoder, encode_frame, parse_frame, split_blocks


def headers_of(decoder: FrameDecoder, data: bytes) -> list[dict[str, str]]:
    return [f.headers for f in decoder.feed(data) if f.headers is not None]


def test_frames_are_split_on_the_blank_line() -> None:
    data = b"Event: Newchannel\r\nUniqueid: 1\r\n\r\nEvent: Hangup\r\nUniqueid: 1\r\n\r\nEvent: Pa"
    decoder = FrameDecoder()
    assert headers_of(decoder, data) == [
        {"Event": "Newchannel", "Uniqueid": "1"},
        {"Event": "Hangup", "Uniqueid": "1"},
    ]
    assert headers_of(decoder, b"rtial\r\n\r\n") == [{"Event": "Partial"}]


def test_utf8_character_split_across_reads_is_kept_at_every_offset() -> None:
    data = "Event: Newchannel\r\nCallerIDName: José Ñandú\r\n\r\n".encode()
    for cut in range(1, len(data)):
        decoder = FrameDecoder()
        frames = headers_of(decoder, data[:cut]) + headers_of(decoder, data[cut:])
        assert frames == [{"Event": "Newchannel", "CallerIDName": "José Ñandú"}], cut


def test_byte_by_byte_feeding_yields_the_same_frames() -> None:
    data = "Response: Success\r\nMessage: ok\r\n\r\nEvent: X\r\nA: é\r\n\r\n".encode()
    decoder = FrameDecoder()
    frames = [h for i in range(len(data)) for h in headers_of(decoder, data[i : i + 1])]
    assert frames == [{"Response": "Success", "Message": "ok"}, {"Event": "X", "A": "é"}]


def test_repeated_headers_keep_every_value() -> None:
    frame = parse_frame(b"Event: VarSet\r\nChanVariable: A=1\r\nChanVariable: B=2")
    assert frame.headers == {"Event": "VarSet", "ChanVariable": "A=1\nB=2"}


def test_values_keep_colons_and_empty_values_survive() -> None:
    frame = parse_frame(b"Event: X\r\nChannel: PJSIP/a:b-1\r\nAccountCode: \r\nExten:")
    assert frame.headers == {"Event": "X", "Channel": "PJSIP/a:b-1", "AccountCode": "", "Exten": ""}


def test_frame_without_event_or_response_is_skipped_with_a_reason() -> None:
    frame = parse_frame(b"Foo: bar\r\nnot a header")
    assert frame.headers is None
    assert frame.problem is not None and "without Event or Response" in frame.problem


def test_non_utf8_bytes_are_replaced_and_the_event_kept() -> None:
    frame = parse_frame(b"Event: Hangup\r\nCallerIDName: Jos\xe9\r\nUniqueid: 7")
    assert frame.headers is not None
    assert name(frame.headers) == "Hangup"
    assert header(frame.headers, "uniqueid") == "7"
    assert frame.headers["CallerIDName"] == "Jos\ufffd"
    assert frame.problem == "non-UTF-8 bytes replaced"


def test_oversized_frame_is_skipped_without_buffering_it() -> None:
    decoder = FrameDecoder(max_frame_bytes=1000)
    problems = []
    big = b"Event: Big\r\nX: " + b"a" * 1_000_000 + b"\r\n\r\n"
    for i in range(0, len(big), 4096):
        for frame in decoder.feed(big[i : i + 4096]):
            assert frame.headers is None
            problems.append(frame.problem)
        assert len(decoder._buf) <= 1000 + 4096
    assert problems == ["frame over 1000 bytes skipped"]
    assert headers_of(decoder, b"Event: Next\r\n\r\n") == [{"Event": "Next"}]


def test_oversized_frame_arriving_whole_is_skipped() -> None:
    decoder = FrameDecoder()
    data = b"Event: Big\r\nX: " + b"a" * MAX_FRAME_BYTES + b"\r\n\r\nEvent: Next\r\n\r\n"
    frames = decoder.feed(data)
    assert [f.headers for f in frames] == [None, {"Event": "Next"}]


def test_encode_writes_one_line_per_value_and_ends_the_frame() -> None:
    data = encode_frame({"Action": "Originate", "Variable": ["A=1", "B=2"], "Async": "true"})
    assert data == b"Action: Originate\r\nVariable: A=1\r\nVariable: B=2\r\nAsync: true\r\n\r\n"


@pytest.mark.parametrize("bad", ["x\r\nAction: Hangup", "x\n", "x\r", "x\x00"])
def test_encode_rejects_a_value_that_would_break_the_header(bad: str) -> None:
    with pytest.raises(ValueError, match="'CallerID'") as info:
        encode_frame({"Action": "Originate", "CallerID": bad})
    assert bad not in str(info.value)


@pytest.mark.parametrize("bad", ["", "A: B", "A\r\nB", "Variable\n"])
def test_encode_rejects_a_bad_header_name(bad: str) -> None:
    with pytest.raises(ValueError, match="header name"):
        encode_frame({bad: "x"})


def test_encode_rejects_a_bad_item_of_a_repeated_header() -> None:
    with pytest.raises(ValueError, match="'Variable'"):
        encode_frame({"Action": "Originate", "Variable": ["A=1", "B=2\r\nAction: Hangup"]})


def test_recorded_text_becomes_wire_frames_whatever_its_line_endings() -> None:
    text = "Asterisk Call Manager/9.0.0\nEvent: A\nX: 1\n\n\nEvent: B\r\nY: é\r\n\r\n"
    assert split_blocks(text) == [
        b"Event: A\r\nX: 1\r\n\r\n",
        "Event: B\r\nY: é\r\n\r\n".encode(),
    ]
