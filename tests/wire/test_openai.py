"""OpenAI chunk, completion and error-body decoding (loadgen.wire.openai), fed by hand; the round trips with the
front's encoders are in test_openai_round_trip.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from loadgen.errors import Overloaded, ProtocolError, ServerError
from loadgen.types import Usage
from loadgen.wire.openai import (
    ChatChunk,
    ContentChunkShape,
    decode_event,
    error_from_body,
    parse_chat_chunk,
    parse_chat_completion,
    server_message,
)
from loadgen.wire.sse import SSEEvent, SSEParser


def chunk_json(content: str | None = None, finish: str | None = None, **extra: Any) -> str:
    delta: dict[str, Any] = {} if content is None else {"content": content}
    obj = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return json.dumps(obj)


# -- parse_chat_chunk ---------------------------------------------------------------------------------------------


def test_content_chunk() -> None:
    assert parse_chat_chunk(chunk_json("Hel")) == ChatChunk(content="Hel")


def test_multi_token_chunk_keeps_all_its_text() -> None:
    assert parse_chat_chunk(chunk_json("Hello there, friend")).content == "Hello there, friend"


def test_role_only_chunk_has_no_content() -> None:
    data = json.dumps({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    chunk = parse_chat_chunk(data)
    assert not chunk.content
    assert chunk.finish_reason is None and not chunk.done


def test_empty_content_and_null_delta() -> None:
    assert parse_chat_chunk(chunk_json("")).content == ""
    data = json.dumps({"choices": [{"index": 0, "delta": None, "finish_reason": "stop"}]})
    assert parse_chat_chunk(data) == ChatChunk(finish_reason="stop")


def test_finish_reason_and_usage() -> None:
    chunk = parse_chat_chunk(chunk_json(finish="length", usage={"prompt_tokens": 12, "completion_tokens": 5}))
    assert chunk.finish_reason == "length"
    assert chunk.usage == Usage(prompt_tokens=12, completion_tokens=5)


def test_usage_only_chunk_with_empty_choices() -> None:
    data = json.dumps({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}})
    assert parse_chat_chunk(data) == ChatChunk(usage=Usage(3, 4))


def test_null_usage_is_no_usage() -> None:
    assert parse_chat_chunk(chunk_json("x", usage=None)).usage is None


def test_done_sentinel() -> None:
    assert parse_chat_chunk("[DONE]") == ChatChunk(done=True)
    assert parse_chat_chunk(" [DONE] ").done


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ('{"choices": [', "malformed JSON in chunk"),
        ("not json at all", "malformed JSON in chunk"),
        ("", "malformed JSON in chunk"),
        ("[1, 2]", "chunk is a list, not a JSON object"),
        ('"text"', "chunk is a string, not a JSON object"),
        ('{"id": "x"}', "neither 'choices' nor 'usage'"),
        ('{"choices": {"0": {}}}', "'choices' is an object, not a list"),
        ('{"choices": ["x"]}', "choice is a string, not an object"),
        ('{"choices": [{"delta": "hi"}]}', "'delta' is a string, not an object"),
        ('{"choices": [{"delta": {"content": 42}}]}', "'content' is a number, not a string"),
        ('{"choices": [{"delta": {}, "finish_reason": 1}]}', "'finish_reason' is a number"),
        ('{"choices": [], "usage": {"completion_tokens": "5"}}', "'completion_tokens' is \"5\", not a count"),
        ('{"choices": [], "usage": {"completion_tokens": -1}}', "not a count"),
        ('{"choices": [], "usage": []}', "'usage' is a list"),
        ('{"object": "chat.completion", "choices": []}', "expected object 'chat.completion.chunk'"),
    ],
)
def test_malformed_or_misshapen_chunks_are_protocol_errors(data: str, reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_chat_chunk(data)
    assert reason in info.value.reason


def test_malformed_json_chains_the_decoder_error() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_chat_chunk("{oops")
    assert isinstance(info.value.__cause__, json.JSONDecodeError)
    assert "oops" not in info.value.reason  # reasons are grouped: the data itself stays out


def test_error_object_in_data_is_a_server_error() -> None:
    data = json.dumps({"error": {"message": "model crashed", "type": "server_error", "code": 500}})
    with pytest.raises(ServerError) as info:
        parse_chat_chunk(data)
    assert not isinstance(info.value, Overloaded)
    assert info.value.reason == "server error in stream: model crashed"
    assert info.value.code == 500


def test_error_object_with_overload_code_is_overloaded() -> None:
    with pytest.raises(Overloaded):
        parse_chat_chunk(json.dumps({"error": {"message": "busy", "code": "429"}}))


# -- decode_event -------------------------------------------------------------------------------------------------


def test_error_event_raises_with_the_servers_message() -> None:
    with pytest.raises(ServerError) as info:
        decode_event(SSEEvent(data='{"error": {"message": "out of memory"}}', event="error"))
    assert info.value.reason == "stream error: out of memory"


def test_error_event_with_plain_text() -> None:
    with pytest.raises(ServerError) as info:
        decode_event(SSEEvent(data="engine died", event="error"))
    assert info.value.reason == "stream error: engine died"


def test_other_named_events_are_ignored_and_messages_parsed() -> None:
    assert decode_event(SSEEvent(data="whatever", event="ping")) is None
    assert decode_event(SSEEvent(data=chunk_json("a"))) == ChatChunk(content="a")
    assert decode_event(SSEEvent(data="[DONE]")) == ChatChunk(done=True)


def test_a_whole_stream_fed_line_by_line() -> None:
    body = (
        ": hello\r\n\r\n"
        f"data: {chunk_json('')}\r\n\r\n"
        f"data: {chunk_json('Hi')}\r\n\r\n"
        f"data: {chunk_json(' there')}\r\n\r\n"
        f"data: {chunk_json(finish='stop')}\r\n\r\n"
        'data: {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}\r\n\r\n'
        "data: [DONE]\r\n\r\n"
    )
    parser = SSEParser()
    chunks = []
    for line in body.splitlines(keepends=True):
        event = parser.feed_line(line)
        if event is not None:
            chunk = decode_event(event)
            assert chunk is not None
            chunks.append(chunk)
    assert "".join(c.content or "" for c in chunks) == "Hi there"
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert chunks[-2].usage == Usage(1, 2)
    assert chunks[-1].done


# -- whole completions and error bodies ---------------------------------------------------------------------------


def test_parse_chat_completion() -> None:
    body = json.dumps(
        {
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 2},
        }
    )
    assert parse_chat_completion(body) == ChatChunk(content="Hi!", finish_reason="stop", usage=Usage(9, 2))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("<html>", "malformed JSON in response"),
        ('{"choices": []}', "response has no choices"),
        ('{"choices": [{"delta": {}}]}', "'message' is null, not an object"),
        ('{"object": "chat.completion.chunk", "choices": []}', "expected object 'chat.completion'"),
    ],
)
def test_bad_completions(body: str, reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_chat_completion(body)
    assert reason in info.value.reason


@pytest.mark.parametrize(
    ("body", "message", "code"),
    [
        ('{"error": {"message": "bad model", "type": "invalid_request_error"}}', "bad model", "invalid_request_error"),
        ('{"error": {"message": "slow down", "code": 429}}', "slow down", 429),
        ('{"error": "plain string"}', "plain string", None),
        ('{"detail": "Not Found"}', "Not Found", None),
        (
            '{"detail": [{"loc": ["body"], "msg": "field required"}]}',
            '[{"loc": ["body"], "msg": "field required"}]',
            None,
        ),
        ('{"message": "nope"}', "nope", None),
        ("upstream\n  timed   out", "upstream timed out", None),
        ("", "(no message)", None),
    ],
)
def test_server_message(body: str, message: str, code: str | int | None) -> None:
    assert server_message(body) == (message, code)


def test_server_message_is_truncated() -> None:
    message, _ = server_message(json.dumps({"error": {"message": "x" * 5000}}))
    assert len(message) <= 200
    assert message.endswith("…")


def test_error_from_body_status_wins_and_picks_overloaded() -> None:
    err = error_from_body('{"error": {"message": "later", "code": 500}}', prefix="HTTP 503", status=503)
    assert isinstance(err, Overloaded)
    assert err.code == 503
    assert err.reason == "HTTP 503: later"
    err = error_from_body("broken", prefix="HTTP 500", status=500)
    assert type(err) is ServerError


# --- ContentChunkShape: the per-token shortcut must give exactly what the full parse gives -----------------

_LEARNED = (
    '{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
    '"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}'
)


def _shape() -> ContentChunkShape:
    shape = ContentChunkShape.learn(_LEARNED.encode(), parse_chat_chunk(_LEARNED))
    assert shape is not None
    return shape


@pytest.mark.parametrize(
    "content", ["lo", "", " wörld", 'say "hi"', "back\\slash", "\u00e9\u20ac\U0001f600", "a\nb", "}]}"]
)
def test_shape_reads_the_same_content_as_the_full_parse(content: str) -> None:
    data = _LEARNED.replace('"Hel"', json.dumps(content))
    assert _shape().content(data.encode()) == parse_chat_chunk(data).content == content


@pytest.mark.parametrize(
    "data",
    [
        _LEARNED.replace('"finish_reason":null', '"finish_reason":"stop"'),  # another shape
        _LEARNED.replace('"Hel"', "42"),  # not a string
        _LEARNED.replace('"Hel"', '"a"},"x":{"content":"b"'),  # more than one string in the middle
        _LEARNED.replace('"Hel"', '"unterminated'),
        _LEARNED.replace('"c1"', '"c2"'),
        "[DONE]",
    ],
)
def test_shape_declines_anything_else(data: str) -> None:
    assert _shape().content(data.encode()) is None


@pytest.mark.parametrize(
    "data",
    [
        _LEARNED.replace('"finish_reason":null', '"finish_reason":"stop"'),  # a finish chunk is no template
        _LEARNED.replace('"Hel"', '""'),  # nor an empty one
        '{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}',
    ],
)
def test_shape_is_learned_only_from_a_plain_content_chunk(data: str) -> None:
    assert ContentChunkShape.learn(data.encode(), parse_chat_chunk(data)) is None


def test_shape_finds_the_delta_content_not_a_lookalike_inside_a_string() -> None:
    data = _LEARNED.replace('"id":"c1"', '"id":"x\\"content\\":\\"Hel\\""')
    shape = ContentChunkShape.learn(data.encode(), parse_chat_chunk(data))
    assert shape is not None
    other = data.replace('{"content":"Hel"}', '{"content":"lo"}')
    assert shape.content(other.encode()) == "lo"


def test_shape_learned_from_non_ascii_bytes_reads_them_back() -> None:
    data = _LEARNED.replace('"model":"m"', '"model":"modèle-π"').replace('"Hel"', '"é"')
    shape = ContentChunkShape.learn(data.encode(), parse_chat_chunk(data))
    assert shape is not None
    assert shape.content(data.replace('"é"', '"日本"').encode()) == "日本"
