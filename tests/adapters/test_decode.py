"""Reading replies as an adapter says: times, texts, ends, usage and the failure kind of a reported error."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from loadgen.adapters.decode import NdjsonReader, ReplyCollector, SseReader, TextReader, error_kind, stream_reader
from loadgen.adapters.paths import parse_path
from loadgen.adapters.spec import EndSpec, ErrorSpec, Format, ReplySpec
from loadgen.errors import Overloaded, ProtocolError, ServerError
from loadgen.types import Usage
from loadgen.wire.status import Failure

NDJSON = ReplySpec(
    format=Format.NDJSON,
    text=parse_path("message.content"),
    end=EndSpec(field=parse_path("done")),
    error=ErrorSpec(field=parse_path("error")),
    prompt_tokens=parse_path("prompt_eval_count"),
    completion_tokens=parse_path("eval_count"),
)


def test_an_ndjson_line_is_stamped_when_the_piece_that_completes_it_came() -> None:
    reader = NdjsonReader(ReplyCollector(NDJSON))
    assert not reader.feed(b'{"message": {"content": "Hel"}, "do', 1.0)
    assert not reader.feed(b'ne": false}\n{"message": {"content": "lo"}, "done": false}\n{"mess', 2.0)
    assert reader.feed(b'age": {"content": ""}, "done": true, "prompt_eval_count": 4, "eval_count": 2}\n', 3.0)
    reply = reader.collector.reply(t_sent=0.0, t_first_byte=0.5, t_done=3.0)
    assert (reply.text, reply.chunk_times, reply.chunk_tokens) == ("Hello", [2.0, 2.0], [1.0, 1.0])
    assert reply.usage == Usage(4, 2)
    assert reply.ttft_s() == 2.0


def test_a_last_ndjson_line_without_its_line_end_is_read() -> None:
    reader = NdjsonReader(ReplyCollector(NDJSON))
    reader.feed(b'{"message": {"content": "Hi"}, "done": true}', 1.0)
    reader.finish(2.0)
    assert reader.collector.ended
    assert reader.collector.parts == ["Hi"]


@pytest.mark.parametrize(
    ("line", "error", "reason"),
    [
        (b"not json\n", ProtocolError, "malformed NDJSON line: 'not json' is not JSON"),
        (b'{"error": "model not found"}\n', ServerError, "stream error: model not found"),
        (b'{"message": {"content": 7}}\n', ProtocolError, "reply field `message.content` holds int, not text"),
    ],
)
def test_ndjson_failures(line: bytes, error: type[Exception], reason: str) -> None:
    reader = NdjsonReader(ReplyCollector(NDJSON))
    with pytest.raises(error) as info:
        reader.feed(line, 1.0)
    assert type(info.value) is error
    assert str(info.value) == reason


def test_a_reply_in_which_no_chunk_had_the_text_field_is_a_protocol_error() -> None:
    collector = ReplyCollector(NDJSON)
    collector.take({"msg": "Hi"}, 1.0)
    collector.take({"done": True}, 2.0)
    with pytest.raises(ProtocolError, match=r"no part of the reply had the text field `message\.content`"):
        collector.reply(t_sent=0.0, t_first_byte=0.5, t_done=2.0)


ANTHROPIC = ReplySpec(
    format=Format.SSE,
    text=parse_path("delta.text"),
    events=frozenset({"content_block_delta"}),
    end=EndSpec(event="message_stop"),
    error=ErrorSpec(
        event="error",
        field=parse_path("error.message"),
        code=parse_path("error.type"),
        kinds=MappingProxyType({"overloaded_error": Failure.OVERLOADED}),
    ),
    prompt_tokens=parse_path("message.usage.input_tokens"),
    completion_tokens=parse_path("usage.output_tokens"),
)


def _event(name: str, data: str) -> bytes:
    return f"event: {name}\ndata: {data}\n\n".encode()


def test_sse_events_are_filtered_stamped_at_their_first_line_and_their_usage_kept() -> None:
    reader = SseReader(ReplyCollector(ANTHROPIC), ANTHROPIC)
    assert not reader.feed(_event("message_start", '{"message": {"usage": {"input_tokens": 9}}}'), 1.0)
    assert not reader.feed(_event("ping", "not json at all"), 1.5)
    assert not reader.feed(_event("content_block_delta", '{"delta": {"text": "Hi "}}')[:20], 2.0)
    assert not reader.feed(_event("content_block_delta", '{"delta": {"text": "Hi "}}')[20:], 2.5)
    assert not reader.feed(_event("content_block_delta", '{"delta": {"text": "there"}}'), 3.0)
    assert not reader.feed(_event("message_delta", '{"usage": {"output_tokens": 2}}'), 3.5)
    assert reader.feed(_event("message_stop", "{}"), 4.0)
    reply = reader.collector.reply(t_sent=0.0, t_first_byte=0.5, t_done=4.0)
    assert (reply.text, reply.chunk_times, reply.usage) == ("Hi there", [2.5, 3.0], Usage(9, 2))


@pytest.mark.parametrize(
    ("event", "error", "reason"),
    [
        (_event("error", '{"error": {"type": "overloaded_error", "message": "Overloaded"}}'), Overloaded,
         "stream error: Overloaded"),
        (_event("error", '{"error": {"type": "api_error", "message": "boom"}}'), ServerError, "stream error: boom"),
        (_event("error", "plain words"), ServerError, "stream error: plain words"),
        (_event("content_block_delta", "{broken"), ProtocolError,
         "malformed data of event 'content_block_delta': '{broken' is not JSON"),
    ],
)  # fmt: skip
def test_sse_failures(event: bytes, error: type[Exception], reason: str) -> None:
    reader = SseReader(ReplyCollector(ANTHROPIC), ANTHROPIC)
    with pytest.raises(error) as info:
        reader.feed(event, 1.0)
    assert type(info.value) is error
    assert str(info.value) == reason


def test_an_sse_data_sentinel_ends_the_reply() -> None:
    spec = ReplySpec(format=Format.SSE, text=parse_path("choices[0].delta.content"), end=EndSpec(data="[DONE]"))
    reader = stream_reader(spec)
    assert not reader.feed(b'data: {"choices": [{"delta": {"content": "a"}}]}\n\n', 1.0)
    assert reader.feed(b"data: [DONE]\n\n", 2.0)


def test_plain_text_keeps_a_character_split_across_pieces() -> None:
    reader = TextReader(ReplyCollector(ReplySpec(format=Format.TEXT)))
    text = "Grüße".encode()
    reader.feed(text[:3], 1.0)
    reader.feed(text[3:], 2.0)
    reader.finish(3.0)
    assert reader.collector.parts == ["Gr", "üße"]
    assert reader.collector.times == [1.0, 2.0]


def test_a_whole_reply_joins_a_many_path_and_needs_its_field() -> None:
    spec = ReplySpec(text=parse_path("$[*].text"), join="\n")
    reply = ReplyCollector(spec).whole([{"text": "a"}, {"image": "x"}, {"text": "b"}], t_sent=0.0, t_first_byte=0.1,
                                       t_done=0.2)  # fmt: skip
    assert (reply.text, reply.chunk_times) == ("a\nb", [0.2])
    assert ReplyCollector(spec).whole([], t_sent=0.0, t_first_byte=0.1, t_done=0.2).text == ""  # a bot saying nothing
    missing = ReplySpec(text=parse_path("choices[0].message.content"))
    with pytest.raises(ProtocolError, match="no part of the reply had the text field"):
        ReplyCollector(missing).whole({"choices": []}, t_sent=0.0, t_first_byte=0.1, t_done=0.2)


def test_a_completion_count_alone_is_spread_over_the_chunks() -> None:
    spec = ReplySpec(format=Format.NDJSON, text=parse_path("t"), completion_tokens=parse_path("n"))
    collector = ReplyCollector(spec)
    collector.take({"t": "a"}, 1.0)
    collector.take({"t": "b", "n": 6}, 2.0)
    reply = collector.reply(t_sent=0.0, t_first_byte=0.5, t_done=2.0)
    assert reply.usage is None
    assert reply.chunk_tokens == [3.0, 3.0]
    assert reply.output_tokens == 6.0


#: Error codes a reply may give, and the failure kind each is (written out, not read from the status table).
CODES: list[tuple[Any, type[ServerError]]] = [
    (429, Overloaded),
    ("503", Overloaded),
    (500, ServerError),
    (400, ServerError),
    ("overloaded", Overloaded),  # the AMQP code
    ("bad_request", ServerError),
    ("invalid_request_error", ServerError),  # the OpenAI error type of 400
    ("rate_limited", ServerError),  # a code the table does not know
    (None, ServerError),
    (True, ServerError),
]


@pytest.mark.parametrize(("code", "kind"), CODES)
def test_error_codes_map_through_the_status_table(code: Any, kind: type[ServerError]) -> None:
    assert error_kind(ErrorSpec(field=parse_path("e")), code) is kind


def test_an_adapter_s_kinds_win() -> None:
    spec = ErrorSpec(field=parse_path("e"), kinds=MappingProxyType({"rate_limited": Failure.OVERLOADED,
                                                                    "429": Failure.INTERNAL}))  # fmt: skip
    assert error_kind(spec, "rate_limited") is Overloaded
    assert error_kind(spec, 429) is ServerError
