"""The gRPC wire contract (loadgen.wire.grpc) at its edges: counts clamped to uint32 at both ends, defaults for
an empty field, and the session-new signal in the initial metadata."""

from __future__ import annotations

import pytest

from loadgen.grpc_gen.chat.v1 import chat_pb2
from loadgen.types import ChatMessage, ChatRequest, Usage
from loadgen.wire.grpc import (
    SESSION_NEW_METADATA,
    UINT32_MAX,
    decode_request,
    decode_usage,
    encode_chunk,
    encode_final,
    encode_request,
    encode_response,
    session_is_new,
)
from loadgen.wire.session import SESSION_NEW, SESSION_STATE_HEADER


@pytest.mark.parametrize(
    ("count", "on_the_wire"),
    [(-5, 0), (0, 0), (1, 1), (UINT32_MAX, UINT32_MAX), (UINT32_MAX + 1, UINT32_MAX), (2**40, UINT32_MAX)],
)
def test_every_count_is_clamped_to_uint32(count: int, on_the_wire: int) -> None:
    assert encode_request(ChatRequest((), max_tokens=count)).max_tokens == on_the_wire
    assert encode_chunk("t", count).tokens == on_the_wire
    final = chat_pb2.ChatChunk.FromString(encode_final("stop", Usage(count, count)).SerializeToString())
    assert decode_usage(final) == Usage(on_the_wire, on_the_wire)
    whole = encode_response("x", "stop", Usage(count, 3))
    assert decode_usage(whole) == Usage(on_the_wire, 3)


def test_a_request_field_by_field() -> None:
    request = ChatRequest((ChatMessage("user", "hi"), ChatMessage("assistant", "yo")), max_tokens=9, model="m")
    message = encode_request(request)
    assert message.model == "m" and message.max_tokens == 9 and message.session_id == ""
    assert [(m.role, m.content) for m in message.messages] == [("user", "hi"), ("assistant", "yo")]
    assert encode_request(request, model="").model == "m"  # an empty override is no override


def test_an_empty_session_and_model_read_as_none_and_the_default() -> None:
    message = chat_pb2.ChatRequest(messages=[chat_pb2.ChatMessage(role="user", content="x")], max_tokens=4)
    request = decode_request(message, stream=False, default_max_tokens=8)
    assert request == ChatRequest((ChatMessage("user", "x"),), max_tokens=4, stream=False)
    assert request.session_id is None and request.model == "loadgen-sim"
    named = chat_pb2.ChatRequest(model="m", session_id="s", messages=[])
    assert decode_request(named, stream=True, default_max_tokens=8) == ChatRequest(
        (), max_tokens=8, stream=True, model="m", session_id="s"
    )


def test_a_whole_reply_without_a_finish_reason_says_stop() -> None:
    whole = encode_response("Hi", None, Usage(1, 2))
    assert (whole.text, whole.finish_reason, decode_usage(whole)) == ("Hi", "stop", Usage(1, 2))
    assert encode_response("Hi", "length", Usage(1, 2)).finish_reason == "length"
    assert encode_final("", Usage(0, 0)).finish_reason == "stop"


def test_a_chunk_without_usage_has_none_and_a_zero_usage_is_still_usage() -> None:
    assert decode_usage(chat_pb2.ChatResponse(text="x")) is None
    assert decode_usage(encode_final("stop", Usage(0, 0))) == Usage(0, 0)


@pytest.mark.parametrize(
    ("metadata", "new"),
    [
        (SESSION_NEW_METADATA, True),
        (None, False),
        ((), False),
        (((SESSION_STATE_HEADER, "old"),), False),
        ((("other", SESSION_NEW),), False),
        ((("a", "b"), (SESSION_STATE_HEADER, SESSION_NEW)), True),
        ([("a", "b")], False),
    ],
)
def test_the_session_is_new_only_when_the_metadata_says_so(metadata: object, new: bool) -> None:
    assert session_is_new(metadata) is new


def test_the_session_new_metadata_is_the_shared_header_and_value() -> None:
    assert SESSION_NEW_METADATA == (("x-loadgen-session", "new"),)
