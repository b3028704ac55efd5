"""The reference server honours ``min_tokens`` / ``ignore_eos`` (token-length shapes): on the OpenAI wire both ways,
and in the chat service, whose replies always run to ``max_tokens``; a ``min_tokens`` above it is refused."""

from __future__ import annotations

import json

import pytest

from loadgen.errors import WireError
from loadgen.server.service import BadChatRequest, ChatService
from loadgen.types import ChatMessage, ChatRequest
from loadgen.wire.openai import encode_request, parse_chat_body
from tests.server.test_service import drain, with_service

HELLO = (ChatMessage("user", "hello there"),)


def test_min_tokens_and_ignore_eos_round_trip() -> None:
    request = ChatRequest(HELLO, max_tokens=40, min_tokens=40, ignore_eos=True)
    body = encode_request(request)
    assert json.loads(body)["min_tokens"] == 40 and json.loads(body)["ignore_eos"] is True
    assert parse_chat_body(body, None, 64)[0] == request
    plain = json.loads(encode_request(ChatRequest(HELLO)))
    assert "min_tokens" not in plain and "ignore_eos" not in plain  # sent only when a shape asks


@pytest.mark.parametrize(
    ("extra", "message"),
    [({"min_tokens": "40"}, 'min_tokens must be an integer, got "40"'), ({"ignore_eos": 1}, "'ignore_eos' must be")],
)
def test_bad_min_tokens_on_the_wire(extra: dict[str, object], message: str) -> None:
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}], **extra}).encode()
    with pytest.raises(WireError, match=message):
        parse_chat_body(body, None, 64)


@pytest.mark.parametrize("asked", [1, 37, 300])
def test_replies_reach_min_tokens(asked: int) -> None:
    async def body(service: ChatService) -> None:
        stream = await service.chat(ChatRequest(HELLO, max_tokens=asked, min_tokens=asked, ignore_eos=True))
        await drain(stream)
        assert stream.completion_tokens == asked

    with_service(body)


def test_min_tokens_above_max_tokens_is_a_bad_request() -> None:
    async def body(service: ChatService) -> None:
        with pytest.raises(BadChatRequest, match=r"min_tokens must be between 0 and max_tokens \(10\), got 11"):
            await service.chat(ChatRequest(HELLO, max_tokens=10, min_tokens=11))

    with_service(body)
