"""gRPC adapter transport (``adapter-grpc``): a unary or server-streaming method of any service, as an adapter file
describes it (:mod:`loadgen.adapters`): the types from a ``.proto`` compiled at start-up or from the server's
reflection.

The gRPC transport (:class:`~loadgen.transports.grpc.GrpcTransport`) with the adapter's method in place of ours: its
channel (made on first use, one connection per user, on the process's asyncio loop), its timing (``t_sent``
before the call, ``t_first_byte`` at the initial metadata, each message when the iterator hands it over,
``t_done`` at the trailers) and its status table (every code but OK mapped as :mod:`loadgen.wire.status` says) are
the same. The reply messages are read where the adapter points (``reply.text``, ``reply.tokens``,
``reply.usage``: usage from the last message of a stream, kept when its completion count is not 0) as the
response is deserialized, into the chunk and response messages the gRPC transport reads; the request message is
the adapter's body template in protobuf's JSON form, its metadata the adapter's (no ``authorization`` unless the
adapter writes one). A method streams or not as its definition says, whatever ``--no-stream`` asks.

With ``reflection: true`` the method's types are asked for on the first turn of each process (bounded by the turn's
timeout, kept for the process): a server that does not answer fails that turn as the gRPC transport would; one
whose reflection does not know the method, or whose types do not fit the adapter, fails every turn with a
:class:`~loadgen.errors.ProtocolError` saying so, and :meth:`AdapterGrpcTransport.preflight` refuses it before any
user starts when the server answers then.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any, ClassVar

import grpc
import grpc.aio
from google.protobuf import json_format
from google.protobuf.message import Message

from loadgen.adapters.grpc_checks import method_problems
from loadgen.adapters.paths import MISSING, Path
from loadgen.adapters.protos import (
    Ask,
    GrpcMethod,
    ProtoError,
    compile_proto,
    find_method,
    reflect_method,
    reflection_files,
    reflection_method,
    reflection_request,
)
from loadgen.adapters.request import TurnWriter
from loadgen.adapters.run import adapter_of
from loadgen.adapters.spec import GrpcRequest, Protocol, ReplySpec
from loadgen.errors import ConfigError, ProtocolError
from loadgen.grpc_gen.chat.v1 import chat_pb2
from loadgen.transports.base import TransportConfig
from loadgen.transports.bridge import original
from loadgen.transports.grpc import GrpcTransport, _rpc_error
from loadgen.types import ChatRequest, Reply
from loadgen.wire.text import short

#: Methods found through reflection, per process: (pid, address, method) -> method.
_reflected: dict[tuple[int, str, str], GrpcMethod] = {}


def _text_of(reply: ReplySpec, message: Message) -> str:
    assert reply.text is not None
    found = reply.text.find_in_message(message)
    if found is MISSING:
        return ""
    return reply.join.join(found) if isinstance(found, list) else str(found)


def _count_of(path: Path | None, message: Message) -> int:
    found = path.find_in_message(message) if path is not None else MISSING
    return found if isinstance(found, int) and found > 0 else 0


def _usage_of(reply: ReplySpec, message: Message) -> chat_pb2.Usage | None:
    completion = _count_of(reply.completion_tokens, message)
    if not completion or reply.prompt_tokens is None:
        return None
    return chat_pb2.Usage(prompt_tokens=_count_of(reply.prompt_tokens, message), completion_tokens=completion)


def reply_reader(reply: ReplySpec, output: type[Message], *, streamed: bool) -> Callable[[bytes], Message]:
    """A response deserializer: the adapter's reply message, read into the message the gRPC transport reads (a
    ``ChatChunk`` of a stream, the ``ChatResponse`` of a unary call)."""

    def read(data: bytes) -> Message:
        message = output.FromString(data)
        text = _text_of(reply, message)
        out: chat_pb2.ChatChunk | chat_pb2.ChatResponse
        if streamed:
            out = chat_pb2.ChatChunk(text=text, tokens=_count_of(reply.tokens, message))
        else:
            out = chat_pb2.ChatResponse(text=text)
        usage = _usage_of(reply, message)
        if usage is not None:
            out.usage.CopyFrom(usage)
        return out

    return read


class AdapterGrpcTransport(GrpcTransport):
    """A unary or server-streaming gRPC method as an adapter file describes it."""

    name: ClassVar[str] = "adapter-grpc"
    schemes: ClassVar[tuple[str, ...]] = ("grpc", "grpcs")

    def __init__(self, config: TransportConfig) -> None:
        adapter = adapter_of(config, Protocol.GRPC)
        assert adapter.grpc is not None
        super().__init__(config)
        self._adapter = adapter
        self._spec: GrpcRequest = adapter.grpc
        self._writer = TurnWriter(adapter, config.api_key, config.model or None)
        self._method: GrpcMethod | None = None
        if self._spec.proto is not None:
            self._method = self._compiled()

    def secrets(self) -> tuple[str | None, ...]:
        return (self.config.api_key, *self._writer.secrets.values())

    def _compiled(self) -> GrpcMethod:
        assert self._spec.proto is not None
        try:
            return find_method(compile_proto(self._spec.proto, self._spec.includes), self._spec.method)
        except ProtoError as exc:  # checked when the adapter was read: only a file changed since lands here
            raise ConfigError(f"adapter {self._adapter.name!r}: {exc}") from None

    def _reflected(self, timeout_s: float) -> GrpcMethod:
        """The method as the server's reflection describes it (asked once per process), checked against the
        adapter (each transport)."""
        key = (os.getpid(), self._target.address, self._spec.method)
        found = _reflected.get(key)
        if found is None:
            found = _reflected[key] = self._ask_reflection(timeout_s)
        problems = method_problems(found, self._spec.body, self._spec.reply, self._adapter.history)
        if problems:
            where, message = problems[0]
            raise ProtocolError(f"adapter {self._adapter.name!r}, {where}: {short(message)}")
        return found

    def _ask_reflection(self, timeout_s: float) -> GrpcMethod:
        """Reflection over this transport's ``grpc.aio`` channel: :func:`reflect_method` (which asks one question at
        a time) runs on a real thread of the loop's executor, each question a call on the loop."""

        async def reflect() -> GrpcMethod:
            loop = asyncio.get_running_loop()
            ask = _loop_asker(loop, self._loop_channel(), timeout_s)
            return await loop.run_in_executor(None, reflect_method, ask, self._spec.method)

        try:
            return self._on_loop(reflect, timeout_s)
        except grpc.RpcError as exc:
            if isinstance(exc, (grpc.Call, grpc.aio.AioRpcError)) and exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                raise ProtocolError(f"the server at {self._target.where} offers no reflection service: give "
                                    "request.proto in the adapter instead") from None  # fmt: skip
            raise _rpc_error(exc, where=self._target.where, phase="send", timeout_s=timeout_s) from exc
        except ProtoError as exc:
            raise ProtocolError(f"server reflection: {exc}") from None

    def preflight(self, timeout_s: float) -> None:
        """With reflection: a server that answers but does not offer the method (or types that do not fit) is
        refused now; one that does not answer is left to the turns (counted failures)."""
        if not self._spec.reflection:
            return
        try:
            self._reflected(timeout_s)
        except ProtocolError as exc:
            raise ConfigError(f"target {self._target.where}: {exc.reason}") from None
        except Exception:  # no answer (yet): the turns will say
            return

    def _ensure_call(self, timeout_s: float) -> tuple[GrpcMethod, Callable[[], Any]]:
        """The method, and what gets its multi-callable on the loop (made once per channel and method)."""
        method = self._method or self._reflected(timeout_s)
        self._method = method
        read = reply_reader(self._spec.reply, method.output, streamed=method.server_streaming)

        def make(channel: grpc.aio.Channel) -> Any:
            build: Any = channel.unary_stream if method.server_streaming else channel.unary_unary
            return build(method.path, request_serializer=_serialize, response_deserializer=read)

        return method, lambda: self._callable(("adapter", method.path, id(method)), make)

    def _send(self, request: ChatRequest, turn_timeout: float) -> Reply:
        method, call = self._ensure_call(turn_timeout)
        values = self._writer.values(request)
        try:
            message = json_format.ParseDict(self._spec.body.render(values), method.input())
        except (json_format.ParseError, TypeError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            kind = method.input.DESCRIPTOR.full_name
            raise ProtocolError(f"the request does not fit {kind}: {short(first)}") from None
        metadata = tuple(self._writer.header_values(values).items())
        if request.trace_headers is not None:  # tracing on (loadgen.telemetry.tracing): the turn's span context
            metadata = (*metadata, *request.trace_headers.items())
        if method.server_streaming:
            return self._on_loop(lambda: self._stream(call(), message, turn_timeout, metadata), turn_timeout)
        return self._on_loop(lambda: self._whole(call(), message, turn_timeout, metadata), turn_timeout)


def _loop_asker(loop: asyncio.AbstractEventLoop, channel: grpc.aio.Channel, timeout_s: float) -> Ask:
    """``ask`` for :func:`reflect_method`, called from a real thread (never the loop's own): each question is a
    ``grpc.aio`` call run on ``loop``; the thread waits on a real lock (gevent's would need a hub)."""

    def ask(**fields: Any) -> list[bytes]:
        done = original("_thread", "allocate_lock")()
        done.acquire()
        box: list[asyncio.Future[list[bytes]]] = []

        def finished(task: asyncio.Future[list[bytes]]) -> None:
            box.append(task)
            done.release()

        def start() -> None:
            asyncio.ensure_future(_aio_answer(channel, timeout_s, fields)).add_done_callback(finished)

        loop.call_soon_threadsafe(start)
        if not done.acquire(True, timeout_s + 5.0):
            raise ProtoError("the server's reflection service gave no answer in time")
        return box[0].result()

    return ask


async def _aio_answer(channel: grpc.aio.Channel, timeout_s: float, fields: dict[str, Any]) -> list[bytes]:
    """One reflection question over a ``grpc.aio`` channel, answered as :func:`reflection_asker` answers it over
    a sync one: a server's error answer is a :class:`ProtoError`, the call's own failure its ``RpcError``."""
    call = reflection_method(channel)(reflection_request(fields), timeout=timeout_s)
    try:
        async for response in call:
            return reflection_files(response, fields)
    finally:
        call.cancel()  # one answer is all: a no-op on a call that ended
    raise ProtoError("the server's reflection service gave no answer")


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


__all__ = ["AdapterGrpcTransport", "reply_reader"]
