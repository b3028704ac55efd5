"""The chat-completions request body (loadgen.wire.openai.request) field by field: what the transport writes,
what the front accepts and the exact reason it gives for each body it refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from loadgen.errors import WireError
from loadgen.types import ChatMessage, ChatRequest
from loadgen.wire.openai import encode_request, parse_chat_body
from loadgen.wire.openai.request import DEFAULT_MODEL

USER = [{"role": "user", "content": "hi"}]


def _parse(body: dict[str, Any], header: str | None = None, default_max_tokens: int = 50) -> tuple[ChatRequest, bool]:
    return parse_chat_body(json.dumps(body).encode(), header, default_max_tokens)


def _refusal(body: bytes | dict[str, Any], header: str | None = None) -> str:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(WireError) as info:
        parse_chat_body(raw, header, 50)
    return str(info.value)


# -- encode_request -------------------------------------------------------------------------------------------------


def test_a_streamed_request_body_field_by_field() -> None:
    request = ChatRequest((ChatMessage("user", "hi"),), max_tokens=7, model="m", session_id="s-1")
    assert json.loads(encode_request(request)) == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 7,
        "stream": True,
        "stream_options": {"include_usage": True},
        "session_id": "s-1",
    }


def test_a_whole_reply_request_asks_for_no_usage_and_names_no_session() -> None:
    request = ChatRequest((ChatMessage("user", "hi"),), max_tokens=3, stream=False, model="m")
    assert json.loads(encode_request(request)) == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 3,
        "stream": False,
    }


def test_min_tokens_and_ignore_eos_are_written_only_when_set_and_read_back() -> None:
    shaped = ChatRequest((ChatMessage("user", "hi"),), min_tokens=20, ignore_eos=True)
    body = json.loads(encode_request(shaped))
    assert body["min_tokens"] == 20 and body["ignore_eos"] is True
    assert parse_chat_body(encode_request(shaped), None, 50)[0] == shaped
    zero = ChatRequest((ChatMessage("user", "hi"),), min_tokens=0)
    assert json.loads(encode_request(zero))["min_tokens"] == 0  # 0 is set, not absent
    plain = json.loads(encode_request(ChatRequest((ChatMessage("user", "hi"),))))
    assert "min_tokens" not in plain and "ignore_eos" not in plain and "session_id" not in plain


def test_the_model_argument_wins_and_an_empty_one_falls_back_to_the_request() -> None:
    request = ChatRequest((ChatMessage("user", "hi"),), model="own")
    assert json.loads(encode_request(request, model="other"))["model"] == "other"
    assert json.loads(encode_request(request, model=""))["model"] == "own"
    assert json.loads(encode_request(request))["model"] == "own"


# -- parse_chat_body: what it accepts -----------------------------------------------------------------------------


def test_defaults_of_a_minimal_body() -> None:
    request, include_usage = _parse({"messages": USER}, default_max_tokens=33)
    assert request == ChatRequest((ChatMessage("user", "hi"),), max_tokens=33, stream=False, model=DEFAULT_MODEL)
    assert DEFAULT_MODEL == "loadgen"
    assert include_usage is False


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    assert _parse({"messages": USER, "max_completion_tokens": 5, "max_tokens": 9})[0].max_tokens == 5
    assert _parse({"messages": USER, "max_completion_tokens": None, "max_tokens": 9})[0].max_tokens == 9
    assert _parse({"messages": USER, "max_tokens": 0})[0].max_tokens == 0  # 0 is a value, not "unset"


def test_the_session_comes_from_the_body_else_the_header() -> None:
    assert _parse({"messages": USER, "session_id": "body"}, header="head")[0].session_id == "body"
    assert _parse({"messages": USER}, header="head")[0].session_id == "head"
    assert _parse({"messages": USER})[0].session_id is None


def test_content_may_be_null_or_text_parts() -> None:
    messages = [
        {"role": "system", "content": None},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "user", "content": []},
        {"role": "user"},
    ]
    request, _ = _parse({"messages": messages})
    assert request.messages == (
        ChatMessage("system", ""),
        ChatMessage("user", "ab"),
        ChatMessage("user", ""),
        ChatMessage("user", ""),
    )


@pytest.mark.parametrize(
    ("options", "include_usage"),
    [
        ({"include_usage": True}, True),
        ({"include_usage": False}, False),
        ({}, False),
        (None, False),
    ],
)
def test_stream_options_say_whether_usage_ends_the_stream(options: dict[str, Any] | None, include_usage: bool) -> None:
    body: dict[str, Any] = {"messages": USER, "stream": True, "n": 1}
    if options is not None:
        body["stream_options"] = options
    assert _parse(body)[1] is include_usage


def test_the_flags_are_read() -> None:
    request, _ = _parse({"messages": USER, "stream": True, "ignore_eos": True, "min_tokens": 4, "model": "x"})
    assert (request.stream, request.ignore_eos, request.min_tokens, request.model) == (True, True, 4, "x")


# -- parse_chat_body: the exact reason of each refusal ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([1], "the request body must be a JSON object"),
        ({}, "'messages' must be a non-empty list of {role, content} objects"),
        ({"messages": []}, "'messages' must be a non-empty list of {role, content} objects"),
        ({"messages": {"role": "user"}}, "'messages' must be a non-empty list of {role, content} objects"),
        ({"messages": [*USER, "x"]}, "messages[1] must be an object with 'role' and 'content'"),
        ({"messages": [*USER, {"content": "x"}]}, "messages[1].role must be a string"),
        (
            {"messages": [{"role": "user", "content": 3}]},
            "messages[0].content must be a string or a list of text parts",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image"}]}]},
            "messages[0].content[1] must be a text part {'type': 'text', 'text': '...'}",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]},
            "messages[0].content[0] must be a text part {'type': 'text', 'text': '...'}",
        ),
        (
            {"messages": [{"role": "user", "content": ["a"]}]},
            "messages[0].content[0] must be a text part {'type': 'text', 'text': '...'}",
        ),
        ({"messages": USER, "max_tokens": "5"}, 'max_tokens must be an integer, got "5"'),
        ({"messages": USER, "max_tokens": True}, "max_tokens must be an integer, got true"),
        ({"messages": USER, "max_completion_tokens": 1.5}, "max_tokens must be an integer, got 1.5"),
        ({"messages": USER, "stream": "yes"}, "'stream' must be true or false"),
        ({"messages": USER, "stream": 1}, "'stream' must be true or false"),
        ({"messages": USER, "min_tokens": "3"}, 'min_tokens must be an integer, got "3"'),
        ({"messages": USER, "min_tokens": False}, "min_tokens must be an integer, got false"),
        ({"messages": USER, "ignore_eos": 1}, "'ignore_eos' must be true or false"),
        ({"messages": USER, "model": 5}, "'model' must be a string"),
        ({"messages": USER, "session_id": ""}, "'session_id' must be a non-empty string"),
        ({"messages": USER, "session_id": 7}, "'session_id' must be a non-empty string"),
        ({"messages": USER, "n": 2}, "only n=1 is supported"),
        ({"messages": USER, "stream_options": True}, "'stream_options' must be an object"),
    ],
)
def test_each_refusal_names_its_field(body: Any, reason: str) -> None:
    assert _refusal(json.dumps(body).encode()) == reason


def test_an_empty_session_header_is_refused() -> None:
    assert _refusal({"messages": USER}, header="") == "'session_id' must be a non-empty string"


@pytest.mark.parametrize("raw", [b"{oops", b"\xff\xfe{", b""])
def test_a_body_that_is_not_json_says_so(raw: bytes) -> None:
    reason = _refusal(raw)
    assert reason.startswith("the request body is not valid JSON: ")
    assert len(reason) > len("the request body is not valid JSON: ")
