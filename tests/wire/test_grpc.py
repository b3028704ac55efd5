"""The gRPC wire contract (loadgen.wire.grpc): names from the descriptor, and every message through its real
bytes (SerializeToString / FromString) back to the same value."""

from __future__ import annotations

import grpc
import pytest

from loadgen.grpc_gen.chat.v1 import chat_pb2
from loadgen.types import ChatMessage, ChatRequest, Usage
from loadgen.wire.grpc import (
    CHAT_METHOD,
    COMPLETE_METHOD,
    SERVICE_NAME,
    UINT32_MAX,
    code_kind,
    decode_request,
    decode_usage,
    encode_chunk,
    encode_final,
    encode_request,
    encode_response,
    status_code,
)
from loadgen.wire.status import STATUS, Failure


def test_names_come_from_the_proto() -> None:
    assert SERVICE_NAME == "loadgen.chat.v1.ChatService"
    assert CHAT_METHOD == "/loadgen.chat.v1.ChatService/Chat"
    assert COMPLETE_METHOD == "/loadgen.chat.v1.ChatService/Complete"


def _wire(message: chat_pb2.ChatRequest) -> chat_pb2.ChatRequest:
    return chat_pb2.ChatRequest.FromString(message.SerializeToString())


@pytest.mark.parametrize(
    "request_",
    [
        ChatRequest((ChatMessage("system", "Be brief."), ChatMessage("user", "Grüße 👋")), max_tokens=12, model="m1"),
        ChatRequest((ChatMessage("user", "new only"),), max_tokens=5, stream=False, session_id="s-1"),
    ],
)
def test_a_request_reads_back_the_same(request_: ChatRequest) -> None:
    message = _wire(encode_request(request_))
    assert decode_request(message, stream=request_.stream, default_max_tokens=64) == request_


def test_defaults_and_overrides() -> None:
    request = ChatRequest((ChatMessage("user", "x"),), max_tokens=0)
    decoded = decode_request(_wire(encode_request(request, model="other")), stream=True, default_max_tokens=33)
    assert decoded.model == "other" and decoded.max_tokens == 33 and decoded.session_id is None
    unnamed = decode_request(chat_pb2.ChatRequest(messages=[chat_pb2.ChatMessage(role="user", content="x")]),
                             stream=True, default_max_tokens=8)  # fmt: skip
    assert unnamed.model == ChatRequest(()).model  # no model: the request's default
    assert encode_request(ChatRequest((), max_tokens=2**40)).max_tokens == UINT32_MAX


def test_reply_messages_read_back_the_same() -> None:
    chunk = chat_pb2.ChatChunk.FromString(encode_chunk("Hel", 2).SerializeToString())
    assert (chunk.text, chunk.tokens, decode_usage(chunk)) == ("Hel", 2, None)
    final = chat_pb2.ChatChunk.FromString(encode_final("length", Usage(7, 3)).SerializeToString())
    assert (final.text, final.finish_reason, decode_usage(final)) == ("", "length", Usage(7, 3))
    assert encode_final(None, Usage(0, 0)).finish_reason == "stop"
    whole = chat_pb2.ChatResponse.FromString(encode_response("Hi!", "stop", Usage(4, 1)).SerializeToString())
    assert (whole.text, whole.finish_reason, decode_usage(whole)) == ("Hi!", "stop", Usage(4, 1))
    assert decode_usage(None) is None


@pytest.mark.parametrize("failure", list(Failure), ids=lambda f: f.name)
def test_a_failure_code_reads_back_as_its_kind(failure: Failure) -> None:
    code = status_code(failure)
    assert isinstance(code, grpc.StatusCode) and code.name == STATUS[failure].grpc
    assert code_kind(code) is STATUS[failure].kind
