"""HTTP/2 framing for the gRPC transport's own client: frames written, and read back from bytes split anywhere."""

from __future__ import annotations

import struct

import pytest

from loadgen.transports import h2_frames as h2
from loadgen.transports.h2_frames import Frame, FrameDecoder, H2ProtocolError


def feed_split(data: bytes, at: int, decoder: FrameDecoder | None = None) -> list[Frame]:
    decoder = decoder or FrameDecoder()
    return decoder.feed(data[:at]) + decoder.feed(data[at:])


def test_a_frame_on_the_wire() -> None:
    raw = h2.frame(h2.DATA, h2.END_STREAM, 3, b"hello")
    assert raw == b"\x00\x00\x05\x00\x01\x00\x00\x00\x03hello"
    assert FrameDecoder().feed(raw) == [Frame(h2.DATA, h2.END_STREAM, 3, b"hello")]


def test_frames_split_at_every_byte_read_the_same() -> None:
    stream = b"".join(
        [
            h2.settings({h2.SETTINGS_MAX_FRAME_SIZE: 20000, h2.SETTINGS_INITIAL_WINDOW_SIZE: 1}),
            h2.frame(h2.HEADERS, h2.END_HEADERS, 1, b"block"),
            h2.frame(h2.DATA, 0, 1, b"x" * 40),
            h2.frame(h2.PING, 0, 0, b"12345678"),
            h2.frame(h2.DATA, h2.END_STREAM, 1, b""),
        ]
    )
    whole = FrameDecoder().feed(stream)
    assert [f.type for f in whole] == [h2.SETTINGS, h2.HEADERS, h2.DATA, h2.PING, h2.DATA]
    for at in range(len(stream) + 1):
        assert feed_split(stream, at) == whole, at
    one_by_one = FrameDecoder()
    got: list[Frame] = []
    for i in range(len(stream)):
        got += one_by_one.feed(stream[i : i + 1])
    assert got == whole and one_by_one.pending == 0


def test_padding_is_stripped_and_counted_by_flow_control() -> None:
    padded = h2.frame(h2.DATA, h2.PADDED, 1, b"\x03abc\0\0\0")
    decoder = FrameDecoder()
    assert decoder.feed(padded) == [Frame(h2.DATA, h2.PADDED, 1, b"abc")]
    assert decoder.flow_bytes == 7  # the padding counts against the window
    headers = h2.frame(h2.HEADERS, h2.PADDED | h2.END_HEADERS | h2.PRIORITY_FLAG, 1, b"\x02" + b"P" * 5 + b"hb\0\0")
    assert FrameDecoder().feed(headers) == [Frame(h2.HEADERS, h2.END_HEADERS, 1, b"hb")]
    with pytest.raises(H2ProtocolError, match="padding"):
        FrameDecoder().feed(h2.frame(h2.DATA, h2.PADDED, 1, b"\x05ab"))
    with pytest.raises(H2ProtocolError, match="pad length"):
        FrameDecoder().feed(h2.frame(h2.DATA, h2.PADDED, 1, b""))


def test_continuation_frames_join_their_header_block() -> None:
    block = bytes(range(256)) * 3
    raw = h2.header_frames(5, block, 100, end_stream=True)
    # 768 bytes: HEADERS of 100, six CONTINUATION frames of 100, the last one of 68 with END_HEADERS
    assert raw.count(b"\x00\x00\x64\x09\x00") == 6 and raw.count(b"\x00\x00\x44\x09\x04") == 1
    for at in (0, 1, 9, 150, len(raw) - 1):
        assert feed_split(raw, at) == [Frame(h2.HEADERS, h2.END_STREAM | h2.END_HEADERS, 5, block)]
    interrupted = h2.frame(h2.HEADERS, 0, 1, b"a") + h2.frame(h2.DATA, 0, 1, b"b")
    with pytest.raises(H2ProtocolError, match="interrupted"):
        FrameDecoder().feed(interrupted)
    with pytest.raises(H2ProtocolError, match="without a header block"):
        FrameDecoder().feed(h2.frame(h2.CONTINUATION, h2.END_HEADERS, 1, b"a"))


def test_settings_ping_goaway_window_update() -> None:
    pairs = {h2.SETTINGS_ENABLE_PUSH: 0, h2.SETTINGS_INITIAL_WINDOW_SIZE: h2.MAX_WINDOW}
    (frame,) = FrameDecoder().feed(h2.settings(pairs))
    assert h2.parse_settings(frame.payload) == pairs
    with pytest.raises(H2ProtocolError):
        h2.parse_settings(b"\0\0\0")
    assert FrameDecoder().feed(h2.settings_ack()) == [Frame(h2.SETTINGS, h2.ACK, 0, b"")]
    assert FrameDecoder().feed(h2.ping_ack(b"abcdefgh")) == [Frame(h2.PING, h2.ACK, 0, b"abcdefgh")]
    goaway = h2.frame(h2.GOAWAY, 0, 0, struct.pack(">II", 7, h2.ENHANCE_YOUR_CALM) + b"too many pings")
    (frame,) = FrameDecoder().feed(goaway)
    assert h2.parse_goaway(frame.payload) == (7, h2.ENHANCE_YOUR_CALM, b"too many pings")
    with pytest.raises(H2ProtocolError):
        h2.parse_goaway(b"1234")
    (frame,) = FrameDecoder().feed(h2.window_update(3, 1000))
    assert (frame.type, frame.stream_id, h2.parse_u32(frame.payload, "WINDOW_UPDATE")) == (h2.WINDOW_UPDATE, 3, 1000)
    (frame,) = FrameDecoder().feed(h2.rst_stream(3, h2.CANCEL))
    assert h2.parse_u32(frame.payload, "RST_STREAM") == h2.CANCEL
    with pytest.raises(H2ProtocolError):
        h2.parse_u32(b"12345", "RST_STREAM")


def test_an_oversize_frame_is_refused_before_its_payload_came() -> None:
    decoder = FrameDecoder(max_frame_size=16_384)
    head = h2.frame(h2.DATA, 0, 1, b"y" * 16_385)[:9]
    with pytest.raises(H2ProtocolError, match="larger than the 16384 allowed"):
        decoder.feed(head)
    assert FrameDecoder(max_frame_size=16_384).feed(h2.frame(h2.DATA, 0, 1, b"y" * 16_384))[0].payload == b"y" * 16_384


def test_a_body_is_split_at_the_frame_size() -> None:
    raw = h2.data_frames(1, b"z" * 250, 100, end_stream=True)
    frames = FrameDecoder().feed(raw)
    assert [len(f.payload) for f in frames] == [100, 100, 50]
    assert [f.flags for f in frames] == [0, 0, h2.END_STREAM]
    assert FrameDecoder().feed(h2.data_frames(1, b"", 100, end_stream=True)) == [Frame(h2.DATA, h2.END_STREAM, 1, b"")]
    assert [f.flags for f in FrameDecoder().feed(h2.data_frames(1, b"z" * 150, 100, end_stream=False))] == [0, 0]
