"""The event-stream framing (loadgen.wire.sse) at its edges: the line limit to the byte, the parser's idle state,
a byte order mark past the first line, non-ASCII digits in ``retry``, and the exact bytes the encoder writes."""

from __future__ import annotations

import pytest

from loadgen.errors import ProtocolError
from loadgen.wire.sse import LineSplitter, SSEEvent, SSEParser, encode_event

LIMIT = LineSplitter.MAX_LINE_BYTES


def feed(lines: list[str]) -> list[SSEEvent]:
    parser = SSEParser()
    events = [parser.feed_line(line) for line in lines]
    return [e for e in events if e is not None]


# -- LineSplitter: the line limit -----------------------------------------------------------------------------------


def test_a_line_of_exactly_the_limit_in_one_piece_is_kept() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"x" * LIMIT) == []
    (line,) = splitter.feed(b"\n")
    assert len(line) == LIMIT


def test_one_byte_past_the_limit_in_one_piece_is_refused_with_the_limit_in_mib() -> None:
    with pytest.raises(ProtocolError) as info:
        LineSplitter().feed(b"x" * (LIMIT + 1))
    assert info.value.reason == "an event-stream line ran past 16 MiB"


def test_the_limit_counts_every_held_piece() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"x" * (LIMIT - 2)) == []
    assert splitter.feed(b"y") == []
    assert splitter.feed(b"z") == []  # exactly the limit, held in three pieces
    with pytest.raises(ProtocolError, match="ran past 16 MiB"):
        splitter.feed(b"!")


def test_the_limit_counts_the_unfinished_line_after_a_line_end() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"a") == []
    # a held piece, then a line end and the start of a long next line: only the new line counts
    assert splitter.feed(b"\n" + b"x" * (LIMIT - 1)) == [b"a"]
    assert splitter.feed(b"y") == []
    with pytest.raises(ProtocolError):
        splitter.feed(b"z")


def test_an_unfinished_line_past_the_limit_after_a_line_end_is_refused() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"a") == []
    with pytest.raises(ProtocolError):
        splitter.feed(b"\n" + b"x" * (LIMIT + 1))


def test_a_first_piece_that_opens_with_a_line_end_gives_an_empty_line() -> None:
    assert LineSplitter().feed(b"\n") == [b""]
    assert LineSplitter().feed(b"\ndata: a\n") == [b"", b"data: a"]


def test_a_cr_at_the_end_of_a_piece_swallows_only_one_leading_lf() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"a\r") == [b"a"]
    assert splitter.feed(b"\n\nb\n") == [b"", b"b"]  # the \n of \r\n, then an empty line
    assert splitter.feed(b"\n") == [b""]  # no \r before: a line end of its own


def test_a_piece_that_is_only_the_lf_of_a_cut_crlf_gives_nothing() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"a\r") == [b"a"]
    assert splitter.feed(b"\n") == []
    assert splitter.feed(b"") == []
    assert splitter.feed(b"b\n") == [b"b"]


def test_a_held_line_ends_at_a_cr_and_the_cut_lf_is_dropped() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"da") == []
    assert splitter.feed(b"ta\r") == [b"data"]
    assert splitter.feed(b"\nx") == []
    assert splitter.feed(b"\r\n") == [b"x"]


# -- SSEParser ------------------------------------------------------------------------------------------------------


def test_idle_is_false_before_the_first_line_and_while_an_event_is_built() -> None:
    parser = SSEParser()
    assert not parser.idle and not parser.pending
    assert parser.feed_line(": hello") is None
    assert parser.idle
    assert parser.feed_line("event: delta") is None
    assert not parser.idle and not parser.pending  # a name held, no data yet
    assert parser.feed_line("data: x") is None
    assert not parser.idle and parser.pending
    assert parser.feed_line("") == SSEEvent("x", "delta")
    assert parser.idle and not parser.pending


def test_a_blank_first_line_starts_the_stream() -> None:
    parser = SSEParser()
    assert parser.feed_line("") is None
    assert parser.idle


def test_a_byte_order_mark_after_the_first_line_is_part_of_the_field_name() -> None:
    # "\ufeffdata" is an unknown field: ignored, not a second data line
    assert feed(["data: a", "\ufeffdata: b", ""]) == [SSEEvent("a")]


def test_the_hot_path_line_keeps_everything_after_data_and_one_space() -> None:
    assert feed([": start", "data: a b ", "data:  c", ""]) == [SSEEvent("a b \n c")]


@pytest.mark.parametrize("line", ["data: a\n", "data: a\r", "data: a\r\n"])
def test_a_data_line_with_its_end_after_the_stream_started_loses_the_end(line: str) -> None:
    assert feed([": start", line, ""]) == [SSEEvent("a")]


def test_a_line_ending_cr_lf_loses_both() -> None:
    assert feed(["event: e\r\n", "data: x\r\n", "\r\n"]) == [SSEEvent("x", "e")]


def test_retry_needs_ascii_digits() -> None:
    # int() reads Arabic-Indic digits as 12; the standard allows ASCII digits only
    assert feed(["retry: \u0661\u0662", "data: x", ""]) == [SSEEvent("x")]
    assert feed(["retry: 12", "data: x", ""]) == [SSEEvent("x", retry_ms=12)]
    assert feed(["retry: 1.5", "data: x", ""]) == [SSEEvent("x")]


def test_an_id_is_kept_even_when_empty_and_without_a_colon_value() -> None:
    assert feed(["id: 1", "data: a", "", "id", "data: b", ""]) == [SSEEvent("a", id="1"), SSEEvent("b", id="")]


def test_a_field_name_is_compared_whole() -> None:
    assert feed(["Data: a", "datum: b", "events: c", "ids: d", "retrys: 5", "data: x", ""]) == [SSEEvent("x")]


def test_an_event_name_without_data_is_forgotten_at_the_blank_line() -> None:
    parser = SSEParser()
    assert parser.feed_line("event: ping") is None
    assert parser.feed_line("") is None
    assert parser.idle
    assert parser.feed_line("data: x") is None
    assert parser.feed_line("") == SSEEvent("x", "message")


def test_one_data_line_and_two_are_joined_only_between_lines() -> None:
    assert feed(["data: one", ""]) == [SSEEvent("one")]
    assert feed(["data: one", "data: two", ""]) == [SSEEvent("one\ntwo")]
    assert feed(["data:", "data:", ""]) == [SSEEvent("\n")]


# -- encode_event: the exact bytes ------------------------------------------------------------------------------------


def test_the_exact_bytes_of_an_event() -> None:
    assert encode_event("x") == b"data: x\n\n"
    assert encode_event("x", event="error") == b"event: error\ndata: x\n\n"
    assert encode_event("") == b"data: \n\n"
    assert encode_event("", event="") == b"event: \ndata: \n\n"


@pytest.mark.parametrize("data", ["a\r\nb", "a\rb", "a\nb"])
def test_every_line_end_in_data_is_one_data_line(data: str) -> None:
    assert encode_event(data) == b"data: a\ndata: b\n\n"


def test_crlf_in_data_is_one_line_end_not_two() -> None:
    assert encode_event("a\r\n\r\nb") == b"data: a\ndata: \ndata: b\n\n"


@pytest.mark.parametrize("name", ["a\nb", "a\rb", "\r"])
def test_an_event_name_with_a_line_end_is_refused(name: str) -> None:
    with pytest.raises(ValueError) as info:
        encode_event("x", event=name)
    assert str(info.value) == "an event name is one line"


def test_non_ascii_data_is_utf8() -> None:
    assert encode_event("é", event="ü") == "event: ü\ndata: é\n\n".encode()
