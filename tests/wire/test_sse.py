"""The event-stream framing (loadgen.wire.sse): the line splitter and the parser fed by hand, and the encoder
read back by the parser."""

from __future__ import annotations

import time

import pytest

from loadgen.errors import ProtocolError
from loadgen.wire.sse import DATA_FRAME, LineSplitter, SSEEvent, SSEParser, encode_event


def feed(lines: list[str]) -> list[SSEEvent]:
    parser = SSEParser()
    events = [parser.feed_line(line) for line in lines]
    return [e for e in events if e is not None]


# -- SSEParser ----------------------------------------------------------------------------------------------------


def test_event_is_dispatched_on_the_blank_line_only() -> None:
    parser = SSEParser()
    assert parser.feed_line("data: hello") is None
    assert parser.pending
    event = parser.feed_line("")
    assert event == SSEEvent(data="hello", event="message")
    assert not parser.pending
    assert parser.feed_line("") is None  # a second blank line dispatches nothing


def test_multi_line_data_is_joined_with_newlines() -> None:
    assert feed(["data: first", "data: second", "data:", "data: fourth", ""]) == [
        SSEEvent(data="first\nsecond\n\nfourth")
    ]


def test_line_endings_are_stripped_crlf_lf_and_cr() -> None:
    assert feed(["data: a\r\n", "\r\n", "data: b\n", "\n", "data: c\r", "\r"]) == [
        SSEEvent("a"),
        SSEEvent("b"),
        SSEEvent("c"),
    ]


def test_only_one_space_after_the_colon_is_removed() -> None:
    assert feed(["data:no-space", "", "data:  two spaces", ""]) == [SSEEvent("no-space"), SSEEvent(" two spaces")]


def test_comments_and_unknown_fields_are_ignored() -> None:
    assert feed([": keep-alive", "", ":another", "foo: bar", "data: x", ": inside", ""]) == [SSEEvent("x")]


def test_event_name_id_and_retry() -> None:
    events = feed(["event: error", "id: 7", "retry: 1500", "data: boom", "", "data: next", ""])
    assert events[0] == SSEEvent(data="boom", event="error", id="7", retry_ms=1500)
    # the event name resets after dispatch; the last id and retry persist, as the standard says
    assert events[1] == SSEEvent(data="next", event="message", id="7", retry_ms=1500)


def test_bad_retry_and_id_with_nul_are_ignored() -> None:
    assert feed(["retry: soon", "id: a\0b", "data: x", ""]) == [SSEEvent("x")]


def test_field_without_colon_and_event_without_data() -> None:
    # "data" alone is an empty data line; an event: line with no data dispatches nothing
    assert feed(["event: ping", "", "data", ""]) == [SSEEvent("")]


def test_byte_order_mark_on_the_first_line_is_dropped() -> None:
    assert feed(["\ufeffdata: x", ""]) == [SSEEvent("x")]


def test_unfinished_event_at_the_end_is_not_dispatched() -> None:
    parser = SSEParser()
    assert parser.feed_line('data: {"choices": [') is None
    assert parser.pending


def test_data_containing_colons_is_kept_whole() -> None:
    assert feed(['data: {"a": "b:c"}', ""]) == [SSEEvent('{"a": "b:c"}')]


# --- LineSplitter: the byte stream cut into lines wherever the pieces split ----------------------------------


def _split(pieces: list[bytes]) -> list[bytes]:
    splitter = LineSplitter()
    return [line for piece in pieces for line in splitter.feed(piece)]


@pytest.mark.parametrize(
    "pieces",
    [
        [b"data: a\n\ndata: b\n\n"],
        [b"data: a\r\n\r\ndata: b\r\n\r\n"],
        [b"data: a\r\rdata: b\r\r"],
        [b"da", b"ta: a\n", b"\n", b"data: b\n\n"],
        [b"data: a\r", b"\n\r", b"\ndata: b\r\n", b"\r\n"],  # \r\n cut between \r and \n
        [bytes([c]) for c in b"data: a\r\n\r\ndata: b\n\n"],  # one byte at a time
    ],
)
def test_line_splitter_gives_the_same_lines_however_the_bytes_are_cut(pieces: list[bytes]) -> None:
    assert _split(pieces) == [b"data: a", b"", b"data: b", b""]


def test_line_splitter_holds_an_unfinished_line() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"data: [DO") == []
    assert splitter.feed(b"NE]") == []
    assert splitter.feed(b"\n") == [b"data: [DONE]"]


def test_line_splitter_keeps_a_multibyte_character_cut_in_two() -> None:
    text = "data: 日本\n\n".encode()
    assert _split([text[:8], text[8:]]) == ["data: 日本".encode(), b""]


def test_line_splitter_refuses_a_line_without_end() -> None:
    splitter = LineSplitter()
    splitter.feed(b"data: " + b"x" * 1000)
    with pytest.raises(ProtocolError, match="ran past"):
        for _ in range(LineSplitter.MAX_LINE_BYTES // (1 << 20) + 2):
            splitter.feed(b"y" * (1 << 20))


def test_a_long_line_costs_what_its_bytes_cost_not_their_square() -> None:
    """A 10 MiB line in 64 KiB pieces against a control of the same bytes as 160 finished lines, timed in the same
    run: rescanning the held line on every piece (the old splitter) took ~100x the control, linear takes ~1x."""
    piece = b"x" * (64 * 1024)
    pieces = 160

    def one_line() -> float:
        splitter = LineSplitter()
        started = time.perf_counter()
        for _ in range(pieces):
            assert splitter.feed(piece) == []
        (line,) = splitter.feed(b"\n")
        elapsed = time.perf_counter() - started
        assert len(line) == pieces * len(piece)
        return elapsed

    def control() -> float:
        splitter = LineSplitter()
        finished = piece[:-1] + b"\n"
        started = time.perf_counter()
        for _ in range(pieces):
            splitter.feed(finished)
        return time.perf_counter() - started

    long_line = min(one_line() for _ in range(3))
    lines = min(control() for _ in range(3))
    assert long_line < 10 * lines + 0.005, (long_line, lines)


# --- encode_event: what the front writes, the parser reads back -------------------------------------------------


def _read_back(raw: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    events = [parser.feed_line(line.decode()) for line in LineSplitter().feed(raw)]
    return [e for e in events if e is not None]


@pytest.mark.parametrize(
    ("data", "event"),
    [
        ("[DONE]", None),
        ('{"choices": []}', None),
        ('{"error": {"message": "engine stopped", "code": 500}}', "error"),
        ("two\nlines", "error"),
        ("", None),
        ("a: colon, then\n\nblank", "ping"),
    ],
)
def test_an_encoded_event_reads_back_the_same(data: str, event: str | None) -> None:
    assert _read_back(encode_event(data, event=event)) == [SSEEvent(data, event or "message")]


def test_the_data_frame_is_a_plain_data_event() -> None:
    before, after = DATA_FRAME
    assert before + b'{"x":1}' + after == encode_event('{"x":1}')


def test_an_event_name_is_one_line() -> None:
    with pytest.raises(ValueError):
        encode_event("x", event="two\nlines")
