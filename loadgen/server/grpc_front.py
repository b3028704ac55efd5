"""The gRPC front of the reference server: ``loadgen.chat.v1.ChatService`` (``proto/loadgen/chat/v1/chat.proto``).

A :mod:`grpc.aio` server in the server's own event loop, over the same :class:`ChatService` as every other front.
``Chat`` streams one :class:`ChatChunk` per batch of engine chunks that were ready at the same moment
(:class:`loadgen.server.ready.ReadyBatches`: its text theirs joined, its ``tokens`` their sum; a chunk that had to
be waited for goes out alone, at once, so a paced stream stays one message per token; ``--grpc-coalesce off``: one
per engine chunk) and ends with a chunk carrying ``finish_reason`` and ``usage``; ``Complete`` answers the whole
reply at once. Initial metadata (the response headers) goes out once :meth:`ChatService.chat` admitted the request
(which, for the engines here, is when the first chunk is ready), as the REST front's headers do; it carries
``x-loadgen-session: new`` when the server did not hold the session the request named (:mod:`loadgen.wire.session`).

A thin adapter over the wire contract (:mod:`loadgen.wire.grpc`): the service and method names come from the
generated descriptor, requests and replies are converted there, the key is read from the metadata
``authorization: Bearer <key>`` by :func:`loadgen.wire.auth.parse_bearer`, and a failure ends the call with the
code of its row of :mod:`loadgen.wire.status` (see :mod:`loadgen.server.fronts`: RESOURCE_EXHAUSTED when
overloaded, INVALID_ARGUMENT, UNAUTHENTICATED, ABORTED when the engine stops mid-reply, INTERNAL). A client
that cancels (or whose deadline passes) cancels the handler, which closes the :class:`ChatStream` and so frees
its engine slot.

Also served, for stock tools (grpcurl, ghz, grpc_health_probe): the standard health service
``grpc.health.v1.Health`` (SERVING for ``""`` and for the chat service, NOT_SERVING once stopping) and server
reflection.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from loadgen.errors import ConfigError
from loadgen.grpc_gen.chat.v1 import chat_pb2
from loadgen.server.fronts import Front
from loadgen.server.ready import ReadyBatches
from loadgen.server.service import failure_message, failure_of, is_bug
from loadgen.telemetry.serve_tracing import carrier_of
from loadgen.types import Usage
from loadgen.wire.auth import AUTH_HEADER, parse_bearer
from loadgen.wire.grpc import (
    CHAT,
    COMPLETE,
    SERVICE_NAME,
    SESSION_NEW_METADATA,
    decode_request,
    encode_chunk,
    encode_final,
    encode_response,
    status_code,
)

if TYPE_CHECKING:
    from loadgen.server.config import ServerConfig
    from loadgen.server.service import ChatService, ChatStream

log = logging.getLogger(__name__)

#: How long stop() lets in-flight calls finish before cancelling them.
STOP_GRACE_S = 1.0


#: ``--grpc-coalesce ready``: at most this many engine chunks in one ChatChunk.
MAX_CHUNKS_PER_MESSAGE = 64


def bind_address(host: str, port: int) -> str:
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host or '0.0.0.0'}:{port}"


def client_url(host: str, port: int) -> str:
    """``grpc://HOST:PORT`` a client on this machine uses to reach a server bound to ``host`` (a wildcard
    address becomes loopback)."""
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"grpc://[{host}]:{port}" if ":" in host else f"grpc://{host}:{port}"


def bearer_key(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The API key of the ``authorization`` metadata entry, read by the one rule of :mod:`loadgen.wire.auth`."""
    for key, value in metadata or ():
        if key.lower() == AUTH_HEADER:
            return parse_bearer(value)
    return None


class GrpcFront(Front):
    name: ClassVar[str] = "grpc"

    def __init__(self, service: ChatService, config: ServerConfig) -> None:
        super().__init__(service, config)
        self._server: grpc.aio.Server | None = None
        self._health: Any = None  # grpc_health.v1.health.aio.HealthServicer (untyped)
        self.port: int | None = None

    # -- life cycle ------------------------------------------------------------------------------------------------

    async def start(self) -> str:
        bound = await self._listen(self.config.grpc_port or 0)
        return client_url(self.config.host, bound)

    async def _listen(self, port: int) -> int:
        """A new grpc.aio server on ``port`` (0: any free one), started; returns the port it holds."""
        server = grpc.aio.server(
            # refuse a port another server already holds (grpc's default SO_REUSEPORT would share it silently)
            options=[("grpc.so_reuseport", 0)],
        )
        handlers = {
            CHAT: grpc.unary_stream_rpc_method_handler(
                self.chat,
                request_deserializer=chat_pb2.ChatRequest.FromString,
                response_serializer=chat_pb2.ChatChunk.SerializeToString,
            ),
            COMPLETE: grpc.unary_unary_rpc_method_handler(
                self.complete,
                request_deserializer=chat_pb2.ChatRequest.FromString,
                response_serializer=chat_pb2.ChatResponse.SerializeToString,
            ),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))

        health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]  # not in grpc-stubs
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
        reflection.enable_server_reflection((SERVICE_NAME, health_name, reflection.SERVICE_NAME), server)

        address = bind_address(self.config.host, port)
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise ConfigError(f"gRPC front cannot listen on {address}: {exc} (port in use?)") from None
        if bound == 0:  # older grpcio reports a failed bind this way
            raise ConfigError(f"gRPC front cannot listen on {address} (port in use?)")
        await server.start()
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        await health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        self._server = server
        self._health = health_servicer
        self.port = bound
        return bound

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        await server.stop(grace=STOP_GRACE_S)

    async def go_down(self) -> None:
        """The listener closes and every call in flight is cancelled, at once (no grace)."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace=None)

    async def come_up(self) -> None:
        if self._server is None and self.port is not None:
            await self._listen(self.port)

    # -- the RPCs --------------------------------------------------------------------------------------------------

    async def _open(
        self, message: chat_pb2.ChatRequest, context: grpc.aio.ServicerContext[Any, Any], *, stream: bool
    ) -> ChatStream:
        received_at = time.monotonic()
        request = decode_request(message, stream=stream, default_max_tokens=self.config.default_max_tokens)
        metadata = context.invocation_metadata()
        api_key = bearer_key(metadata)
        trace = None if self.service.tracing is None else carrier_of(metadata)  # --otel: the client's span
        try:
            return await self.service.chat(request, api_key=api_key, received_at=received_at, trace=trace)
        except Exception as exc:
            await _abort_for(context, exc)

    async def chat(
        self, message: chat_pb2.ChatRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[chat_pb2.ChatChunk]:
        """``Chat``: one message per batch of the engine chunks ready at the same moment (``--grpc-coalesce off``:
        per engine chunk), then one with finish_reason and usage."""
        chat_stream = await self._open(message, context, stream=True)
        limit = 1 if self.config.grpc_coalesce == "off" else MAX_CHUNKS_PER_MESSAGE
        try:
            await context.send_initial_metadata(_metadata(chat_stream))
            try:
                async for batch in ReadyBatches(chat_stream, limit=limit):
                    if len(batch) == 1:
                        yield encode_chunk(batch[0].text, batch[0].n_tokens)
                    else:
                        yield encode_chunk("".join(c.text for c in batch), sum(c.n_tokens for c in batch))
            except Exception as exc:
                await _abort_for(context, exc)
            yield encode_final(chat_stream.finish_reason, _usage(chat_stream))
        finally:
            # completed: a no-op; aborted, or cancelled by the client (CancelledError at the yield): frees the
            # engine slot and counts the request as cancelled
            await _close(chat_stream)

    async def complete(
        self, message: chat_pb2.ChatRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> chat_pb2.ChatResponse:
        """``Complete``: the whole reply."""
        chat_stream = await self._open(message, context, stream=False)
        try:
            await context.send_initial_metadata(_metadata(chat_stream))
            parts: list[str] = []
            try:
                async for chunk in chat_stream:
                    parts.append(chunk.text)
            except Exception as exc:
                await _abort_for(context, exc)
            return encode_response("".join(parts), chat_stream.finish_reason, _usage(chat_stream))
        finally:
            await _close(chat_stream)


def _metadata(chat_stream: ChatStream) -> tuple[tuple[str, str], ...]:
    """The initial metadata of a reply: the session signal when the session is new (:mod:`loadgen.wire.session`)."""
    return SESSION_NEW_METADATA if chat_stream.session_new else ()


def _usage(chat_stream: ChatStream) -> Usage:
    return Usage(prompt_tokens=chat_stream.prompt_tokens, completion_tokens=chat_stream.completion_tokens)


async def _close(chat_stream: ChatStream) -> None:
    with contextlib.suppress(Exception):
        await chat_stream.aclose()


async def _abort_for(context: grpc.aio.ServicerContext[Any, Any], exc: Exception) -> NoReturn:
    """End the call with the code of ``exc``'s row of the status table; an internal error is logged."""
    failure = failure_of(exc)
    if is_bug(exc):
        log.error("chat request failed", exc_info=exc)
    await context.abort(status_code(failure), failure_message(failure, exc))
    raise AssertionError("context.abort returned")  # pragma: no cover - it always raises


__all__ = ["SERVICE_NAME", "GrpcFront", "bearer_key", "bind_address", "client_url"]
