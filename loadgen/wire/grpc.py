"""``loadgen.chat.v1.ChatService`` on the wire (``proto/loadgen/chat/v1/chat.proto``), both sides, with no I/O.

Names come from the generated descriptor (``chat_pb2.DESCRIPTOR``), never written out: :data:`SERVICE_NAME`,
:data:`CHAT_METHOD` (server streaming: one :class:`ChatChunk` per engine chunk, the last one with
``finish_reason`` and ``usage``) and :data:`COMPLETE_METHOD` (unary: one :class:`ChatResponse`).

Messages: :func:`encode_request` (client) and :func:`decode_request` (server) turn a
:class:`~loadgen.types.ChatRequest` into ``chat_pb2.ChatRequest`` and back (``max_tokens`` 0 and an empty
``model`` or ``session_id`` mean the server's default, no session); :func:`encode_chunk`, :func:`encode_final`
and :func:`encode_response` (server) write a reply, :func:`decode_usage` (client) reads its usage.

Sessions: a front that started a new session for the request sends :data:`SESSION_NEW_METADATA` as (part of) its
initial metadata (:mod:`loadgen.wire.session`); a transport reads it with :func:`session_is_new`.

Status codes: a front ends a call with :func:`status_code` of its :class:`~loadgen.wire.status.Failure`; a
transport files a received code under :func:`code_kind` (both by :mod:`loadgen.wire.status`).
"""

from __future__ import annotations

from typing import Any, Final

import grpc

from loadgen.errors import TransportError
from loadgen.grpc_gen.chat.v1 import chat_pb2
from loadgen.types import ChatMessage, ChatRequest, Usage
from loadgen.wire.session import SESSION_NEW, SESSION_STATE_HEADER
from loadgen.wire.status import STATUS, Failure, grpc_kind

_SERVICE = chat_pb2.DESCRIPTOR.services_by_name["ChatService"]
SERVICE_NAME: Final[str] = _SERVICE.full_name
CHAT: Final[str] = _SERVICE.methods_by_name["Chat"].name
COMPLETE: Final[str] = _SERVICE.methods_by_name["Complete"].name
#: The method paths a client calls.
CHAT_METHOD: Final = f"/{SERVICE_NAME}/{CHAT}"
COMPLETE_METHOD: Final = f"/{SERVICE_NAME}/{COMPLETE}"
#: ``max_tokens`` and the usage counts are uint32 on the wire.
UINT32_MAX: Final = 2**32 - 1
#: The finish reason of a reply whose engine gave none.
DEFAULT_FINISH_REASON: Final = "stop"
#: The initial metadata of a reply for which the server started a new session.
SESSION_NEW_METADATA: Final = ((SESSION_STATE_HEADER, SESSION_NEW),)


def encode_request(request: ChatRequest, *, model: str | None = None) -> chat_pb2.ChatRequest:
    """The message for ``request`` (``model`` overrides ``request.model``)."""
    return chat_pb2.ChatRequest(
        model=model or request.model,
        messages=[chat_pb2.ChatMessage(role=m.role, content=m.content) for m in request.messages],
        max_tokens=_uint32(request.max_tokens),
        session_id=request.session_id or "",
    )


def decode_request(message: chat_pb2.ChatRequest, *, stream: bool, default_max_tokens: int) -> ChatRequest:
    """The :class:`ChatRequest` of a message (``stream``: which method it came by). Validation is the service's."""
    named: dict[str, Any] = {"model": message.model} if message.model else {}
    return ChatRequest(
        messages=tuple(ChatMessage(role=m.role, content=m.content) for m in message.messages),
        max_tokens=message.max_tokens or default_max_tokens,
        stream=stream,
        session_id=message.session_id or None,
        **named,
    )


def encode_chunk(text: str, tokens: int) -> chat_pb2.ChatChunk:
    """One streamed piece of the reply."""
    return chat_pb2.ChatChunk(text=text, tokens=_uint32(tokens))


def encode_final(finish_reason: str | None, usage: Usage) -> chat_pb2.ChatChunk:
    """The last chunk of a stream: no text, the finish reason and the usage."""
    return chat_pb2.ChatChunk(finish_reason=finish_reason or DEFAULT_FINISH_REASON, usage=_usage(usage))


def encode_response(text: str, finish_reason: str | None, usage: Usage) -> chat_pb2.ChatResponse:
    """A whole reply (``Complete``)."""
    return chat_pb2.ChatResponse(text=text, finish_reason=finish_reason or DEFAULT_FINISH_REASON, usage=_usage(usage))


def decode_usage(message: chat_pb2.ChatChunk | chat_pb2.ChatResponse | None) -> Usage | None:
    """The usage a chunk or response carries (``None`` when it has none)."""
    if message is None or not message.HasField("usage"):
        return None
    return Usage(prompt_tokens=message.usage.prompt_tokens, completion_tokens=message.usage.completion_tokens)


def session_is_new(metadata: Any) -> bool:
    """Whether a call's initial metadata (pairs of key and value, or ``None``) says the session is new."""
    return any(key == SESSION_STATE_HEADER and value == SESSION_NEW for key, value in metadata or ())


def status_code(failure: Failure) -> grpc.StatusCode:
    """The code a front ends a call with for ``failure``."""
    return grpc.StatusCode[STATUS[failure].grpc]


def code_kind(code: grpc.StatusCode) -> type[TransportError]:
    """The client failure kind of a received status code (every code but OK)."""
    return grpc_kind(code.name)


def _usage(usage: Usage) -> chat_pb2.Usage:
    return chat_pb2.Usage(
        prompt_tokens=_uint32(usage.prompt_tokens), completion_tokens=_uint32(usage.completion_tokens)
    )


def _uint32(value: int) -> int:
    return min(max(0, value), UINT32_MAX)


__all__ = [
    "CHAT",
    "CHAT_METHOD",
    "COMPLETE",
    "COMPLETE_METHOD",
    "DEFAULT_FINISH_REASON",
    "SERVICE_NAME",
    "SESSION_NEW_METADATA",
    "UINT32_MAX",
    "code_kind",
    "decode_request",
    "decode_usage",
    "encode_chunk",
    "encode_final",
    "encode_request",
    "encode_response",
    "session_is_new",
    "status_code",
]
