"""Chunk and completion decoding (loadgen.wire.openai.reply) at its edges: the exact reason for each wrong
shape (naming the JSON kind found), usage counts that are missing, negative or booleans, an error object next to
``choices``, and what the per-token shortcut learns from or declines."""

from __future__ import annotations

import json

import pytest

from loadgen.errors import Overloaded, ProtocolError, ServerError
from loadgen.types import Usage
from loadgen.wire.openai import ChatChunk, ContentChunkShape, parse_chat_chunk, parse_chat_completion

_LEARNED = (
    '{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
    '"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}'
)


def _reason(data: str, parse: object = parse_chat_chunk) -> str:
    with pytest.raises(ProtocolError) as info:
        parse(data)  # type: ignore[operator]
    return info.value.reason


# -- chunks ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("true", "chunk is a boolean, not a JSON object"),
        ("null", "chunk is null, not a JSON object"),
        ("3", "chunk is a number, not a JSON object"),
        ('{"choices": true}', "chunk 'choices' is a boolean, not a list"),
        ('{"choices": "x"}', "chunk 'choices' is a string, not a list"),
        ('{"choices": [null]}', "chunk choice is null, not an object"),
        ('{"choices": [[1]]}', "chunk choice is a list, not an object"),
        ('{"choices": [{"delta": []}]}', "chunk 'delta' is a list, not an object"),
        ('{"choices": [{"delta": 1.5}]}', "chunk 'delta' is a number, not an object"),
        ('{"choices": [{"delta": {"content": {}}}]}', "chunk delta 'content' is an object, not a string"),
        ('{"choices": [{"delta": {}, "finish_reason": false}]}', "chunk 'finish_reason' is a boolean, not a string"),
        ('{"choices": [], "usage": {"prompt_tokens": true}}', "usage 'prompt_tokens' is true, not a count"),
        ('{"choices": [], "usage": {"prompt_tokens": -1}}', "usage 'prompt_tokens' is -1, not a count"),
        ('{"choices": [], "usage": {"prompt_tokens": 1.5}}', "usage 'prompt_tokens' is 1.5, not a count"),
        ('{"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": -3}}', "usage 'completion_tokens' is -3"),
        ('{"choices": [], "usage": 7}', "'usage' is a number, not an object"),
        ('{"id": "x"}', "chunk has neither 'choices' nor 'usage'"),
        ("{", "malformed JSON in chunk: Expecting property name enclosed in double quotes"),
    ],
)
def test_each_wrong_chunk_names_what_it_found(data: str, reason: str) -> None:
    assert _reason(data).startswith(reason)


def test_a_long_object_kind_is_cut_in_the_reason() -> None:
    reason = _reason(json.dumps({"object": "k" * 60, "choices": []}))
    assert reason == f"expected object 'chat.completion.chunk', got '{'k' * 39}…'"
    assert _reason('{"object": 5, "choices": []}') == "expected object 'chat.completion.chunk', got '5'"


def test_an_error_object_beside_choices_is_still_an_error() -> None:
    data = json.dumps({"choices": [], "error": {"message": "busy", "code": 503}})
    with pytest.raises(Overloaded) as info:
        parse_chat_chunk(data)
    assert info.value.reason == "server error in stream: busy"
    with pytest.raises(ServerError):
        parse_chat_chunk(json.dumps({"choices": [{"delta": {"content": "x"}}], "error": "stop"}))


def test_a_missing_usage_count_is_zero() -> None:
    assert parse_chat_chunk('{"choices": [], "usage": {"completion_tokens": 4}}') == ChatChunk(usage=Usage(0, 4))
    assert parse_chat_chunk('{"choices": [], "usage": {"prompt_tokens": 4}}') == ChatChunk(usage=Usage(4, 0))
    assert parse_chat_chunk('{"choices": [], "usage": {}}') == ChatChunk(usage=Usage(0, 0))


def test_usage_without_choices_and_usage_beside_content() -> None:
    assert parse_chat_chunk('{"usage": {"prompt_tokens": 1, "completion_tokens": 2}}') == ChatChunk(usage=Usage(1, 2))
    both = '{"choices": [{"delta": {"content": "x"}, "finish_reason": "stop"}], "usage": {"completion_tokens": 2}}'
    assert parse_chat_chunk(both) == ChatChunk("x", "stop", Usage(0, 2))


def test_only_the_first_choice_is_read() -> None:
    data = '{"choices": [{"delta": {"content": "a"}}, {"delta": {"content": "b"}}]}'
    assert parse_chat_chunk(data) == ChatChunk("a")


def test_an_object_named_null_is_a_chunk() -> None:
    assert parse_chat_chunk('{"object": null, "choices": [{"delta": {"content": "a"}}]}') == ChatChunk("a")


def test_numbers_only_json_reads_are_kept() -> None:
    # orjson refuses NaN and integers past 64 bits: the checked path reads them with json
    data = '{"created": NaN, "n": 123456789012345678901234567890, "choices": [{"delta": {"content": "a"}}]}'
    assert parse_chat_chunk(data) == ChatChunk("a")


def test_done_with_line_ends_around_it_is_done() -> None:
    assert parse_chat_chunk("\n[DONE]\r\n") == ChatChunk(done=True)


# -- whole completions ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("[]", "response is a list, not a JSON object"),
        ('{"id": 1}', "response has neither 'choices' nor 'usage'"),
        ('{"usage": {"prompt_tokens": 1}}', "response has no choices"),
        ('{"choices": [1]}', "response choice is a number, not an object"),
        ('{"choices": [{"message": []}]}', "response 'message' is a list, not an object"),
        ('{"choices": [{"message": {"content": 1}}]}', "response message 'content' is a number, not a string"),
        ('{"choices": [{"message": {}, "finish_reason": []}]}', "response 'finish_reason' is a list, not a string"),
        ('{"choices": [{"message": {}}], "usage": {"prompt_tokens": "1"}}', "usage 'prompt_tokens' is \"1\""),
        ('{"object": "x", "choices": []}', "expected object 'chat.completion', got 'x'"),
    ],
)
def test_each_wrong_completion_names_what_it_found(body: str, reason: str) -> None:
    assert _reason(body, parse_chat_completion).startswith(reason)


def test_an_error_body_in_place_of_a_completion() -> None:
    with pytest.raises(Overloaded) as info:
        parse_chat_completion('{"error": {"message": "full", "code": 429}}')
    assert info.value.reason == "server error: full" and info.value.code == 429


def test_a_completion_with_null_content_and_no_usage() -> None:
    body = '{"choices": [{"message": {"content": null}, "finish_reason": null}]}'
    assert parse_chat_completion(body) == ChatChunk()


# -- the per-token shortcut --------------------------------------------------------------------------------------


def test_the_shape_is_learned_across_whitespace_after_the_key() -> None:
    data = _LEARNED.replace('"content":"Hel"', '"content": \t"Hel"')
    shape = ContentChunkShape.learn(data.encode(), parse_chat_chunk(data))
    assert shape is not None
    assert shape.content(data.replace('"Hel"', '"x"').encode()) == "x"


def test_no_shape_from_a_chunk_with_usage_or_bad_bytes() -> None:
    with_usage = _LEARNED[:-1] + ',"usage":{"prompt_tokens":1,"completion_tokens":1}}'
    assert ContentChunkShape.learn(with_usage.encode(), parse_chat_chunk(with_usage)) is None
    raw = _LEARNED.replace('"id":"c1"', '"id":"c\xff"').encode("latin-1")  # not UTF-8 outside the content
    assert ContentChunkShape.learn(raw, ChatChunk("Hel")) is None


def test_no_shape_when_the_content_bytes_do_not_match_the_parse() -> None:
    assert ContentChunkShape.learn(_LEARNED.encode(), ChatChunk("other")) is None
    assert ContentChunkShape.learn(_LEARNED.encode(), ChatChunk(done=True, content="Hel")) is None


def test_the_shape_declines_a_chunk_that_is_only_its_prefix_and_suffix() -> None:
    shape = ContentChunkShape.learn(_LEARNED.encode(), parse_chat_chunk(_LEARNED))
    assert shape is not None
    assert shape.content(_LEARNED.replace('"Hel"', "").encode()) is None
    assert shape.content(_LEARNED.replace('"Hel"', '"a"').encode()) == "a"
    assert shape.content(_LEARNED.replace('"Hel"', "null").encode()) is None


# -- the per-token path: a well-formed chunk never goes through the checked parse --------------------------------

WELL_FORMED = [
    _LEARNED,  # a content chunk
    '{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}',
    '{"choices":[{"index":0,"delta":{"content":"no object field"},"finish_reason":null}]}',
    '{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
    '{"choices":[],"usage":{"prompt_tokens":0,"completion_tokens":0}}',
    '{"choices":[],"usage":{"completion_tokens":4}}',
    '{"choices":[],"usage":{"prompt_tokens":4}}',
    '{"choices":[{"delta":{"content":"x"},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}',
]


@pytest.mark.parametrize("data", WELL_FORMED)
def test_a_well_formed_chunk_is_read_on_the_per_token_path_alone(data: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checked parse costs several times the per-token path and runs once per token if any common chunk
    misses the shortcut: every usual chunk shape must be read without it, to the same value."""
    expected = parse_chat_chunk(data)

    def refuse(data: str) -> ChatChunk:
        raise AssertionError(f"the checked parse was used for {data}")

    monkeypatch.setattr("loadgen.wire.openai.reply._parse_chat_chunk_checked", refuse)
    assert parse_chat_chunk(data) == expected


def test_the_shape_skips_an_earlier_and_a_later_content_key_with_the_same_text() -> None:
    data = (
        '{"id":"c1","x":{"content":"Hel"},"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}],'
        '"y":{"content":"Hel"}}'
    )
    shape = ContentChunkShape.learn(data.encode(), parse_chat_chunk(data))
    assert shape is not None
    other = data.replace('"delta":{"content":"Hel"}', '"delta":{"content":"lo"}')
    assert shape.content(other.encode()) == "lo"
    assert shape.content(data.replace('"x":{"content":"Hel"}', '"x":{"content":"lo"}').encode()) is None


def test_the_shape_is_learned_across_one_space_after_the_key() -> None:
    data = _LEARNED.replace('"content":"Hel"', '"content": "Hel"')
    shape = ContentChunkShape.learn(data.encode(), parse_chat_chunk(data))
    assert shape is not None
    assert shape.content(data.replace('"Hel"', '"x"').encode()) == "x"


def test_a_missing_count_is_zero_on_the_checked_path_too() -> None:
    assert parse_chat_chunk('{"usage": {"completion_tokens": 2}}') == ChatChunk(usage=Usage(0, 2))
    assert parse_chat_chunk('{"usage": {"prompt_tokens": 2}}') == ChatChunk(usage=Usage(2, 0))
    body = '{"choices": [{"message": {"content": "a"}}], "usage": {"completion_tokens": 1}}'
    assert parse_chat_completion(body) == ChatChunk("a", usage=Usage(0, 1))


def test_a_long_wrong_count_is_cut_in_the_reason() -> None:
    reason = _reason(json.dumps({"choices": [], "usage": {"prompt_tokens": "x" * 100}}))
    assert reason == f"usage 'prompt_tokens' is \"{'x' * 38}…, not a count"
