"""The path language: what a path finds in JSON and in protobuf messages, and what it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from loadgen.adapters.paths import MISSING, PathError, parse_path, proto_field_of
from loadgen.grpc_gen.chat.v1 import chat_pb2

OPENAI = {"choices": [{"delta": {"content": "Hel"}, "finish_reason": None}], "usage": {"completion_tokens": 3}}
RASA = [{"recipient_id": "a", "text": "Hi"}, {"recipient_id": "a", "image": "x.png"}, {"text": "there"}]


@pytest.mark.parametrize(
    ("path", "value", "found"),
    [
        ("choices[0].delta.content", OPENAI, "Hel"),
        ("$.choices[0].delta.content", OPENAI, "Hel"),
        ("choices[-1].finish_reason", OPENAI, None),
        ("usage.completion_tokens", OPENAI, 3),
        ("$[*].text", RASA, ["Hi", "there"]),
        ("[*].text", RASA, ["Hi", "there"]),
        ("$", "whole", "whole"),
        ('error["error-code"]', {"error": {"error-code": 7}}, 7),
        ("error['x y']", {"error": {"x y": "z"}}, "z"),
        ("message.content", {"message": {"content": ""}}, ""),
        ("a.b-c", {"a": {"b-c": 1}}, 1),
        ("items[*].parts[*]", {"items": [{"parts": ["a", "b"]}, {"parts": ["c"]}]}, ["a", "b", "c"]),
    ],
)
def test_a_path_finds_its_value(path: str, value: Any, found: Any) -> None:
    assert parse_path(path).find(value) == found


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("choices[1].delta.content", OPENAI),  # past the end
        ("choices[0].delta.missing", OPENAI),
        ("choices.delta", OPENAI),  # a key on a list
        ("choices[0][0]", OPENAI),  # an index on a mapping
        ("usage.completion_tokens.more", OPENAI),
        ("text", RASA),
    ],
)
def test_a_path_that_finds_nothing_gives_missing(path: str, value: Any) -> None:
    assert parse_path(path).find(value) is MISSING


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("", "is empty"),
        ("choices[x]", "bad step at `[x]`"),
        ("choices[0]delta", "unexpected `d`"),
        ("choices.", "expected a field name at `the end`"),
        ("a..b", "expected a field name at `.b`"),
        ("9lives", "expected a field name at `9lives`"),
        ("a[", "bad step"),
    ],
)
def test_a_bad_path_says_where(path: str, message: str) -> None:
    with pytest.raises(PathError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_path(path)


def test_a_path_walks_a_protobuf_message() -> None:
    request = chat_pb2.ChatRequest(messages=[chat_pb2.ChatMessage(role="user", content="a"),
                                             chat_pb2.ChatMessage(role="assistant", content="b")])  # fmt: skip
    assert parse_path("messages[1].content").find_in_message(request) == "b"
    assert parse_path("messages[*].role").find_in_message(request) == ["user", "assistant"]
    assert parse_path("messages[5].content").find_in_message(request) is MISSING
    chunk = chat_pb2.ChatChunk(text="x")
    assert parse_path("usage.completion_tokens").find_in_message(chunk) == 0  # unset: protobuf's default


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("txt", "loadgen.chat.v1.ChatChunk has no field `txt` (its fields: finish_reason, text, tokens, usage)"),
        ("text[0]", "indexes a value that is not repeated"),
        ("usage.completion_tokens.x", "has no fields"),
    ],
)
def test_a_proto_path_is_checked_against_the_message_type(path: str, message: str) -> None:
    with pytest.raises(PathError) as info:
        proto_field_of(parse_path(path), chat_pb2.ChatChunk.DESCRIPTOR)
    assert message in str(info.value)


def test_a_repeated_field_needs_an_index() -> None:
    with pytest.raises(PathError, match="messages is repeated"):
        proto_field_of(parse_path("messages"), chat_pb2.ChatRequest.DESCRIPTOR)
    field = proto_field_of(parse_path("messages[*].content"), chat_pb2.ChatRequest.DESCRIPTOR)
    assert field.name == "content"
