"""The WebSocket front: streamed chat turns over long-lived connections (the ``websockets`` asyncio server).

A thin adapter over the wire contract (:mod:`loadgen.wire.websocket`) and the chat service, in the server's event
loop: a client connects to :data:`~loadgen.wire.websocket.DEFAULT_PATH` (any other path is answered 404 at the
handshake) with its API key, if any, as ``authorization: Bearer <key>`` in the handshake; then each text message
it sends is one turn (an OpenAI chat-completions body), answered with one ``token`` message per engine chunk and a
``done`` message with usage, or an ``error`` message with its row of :mod:`loadgen.wire.status` (see
:mod:`loadgen.server.fronts`). Turns on one connection are served one after the other; connections run side by
side. A client that goes away mid-reply has its stream closed (the engine slot freed, the request counted as
cancelled) at the next chunk. No compression (token messages are tiny; deflate only costs CPU on both sides);
TCP_NODELAY on every connection (asyncio sets it). The listening socket is bound here, so a busy port is a clear
:class:`~loadgen.errors.ConfigError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, ClassVar

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from loadgen.errors import ConfigError
from loadgen.server.fronts import Front
from loadgen.server.rest_front import client_host
from loadgen.server.service import failure_message, failure_of
from loadgen.types import Usage
from loadgen.wire.auth import AUTH_HEADER, parse_bearer
from loadgen.wire.status import Failure
from loadgen.wire.websocket import (
    DEFAULT_PATH,
    MAX_MESSAGE_BYTES,
    decode_request,
    encode_done,
    encode_error,
    encode_token,
)

if TYPE_CHECKING:
    from loadgen.server.config import ServerConfig
    from loadgen.server.service import ChatService, ChatStream

log = logging.getLogger(__name__)

#: Time open connections get to close when the front stops.
STOP_GRACE_S = 2.0


class WsFront(Front):
    name: ClassVar[str] = "websocket"

    def __init__(self, service: ChatService, config: ServerConfig) -> None:
        super().__init__(service, config)
        self._server: Server | None = None
        self.port: int | None = None
        #: connections and turns seen (for tests and stats)
        self.counts: dict[str, int] = dict.fromkeys(("connections", "turns", "errors", "client_gone"), 0)

    async def start(self) -> str:
        await self._listen(self.config.ws_port or 0)
        return f"ws://{client_host(self.config.host)}:{self.port}"

    async def _listen(self, port: int) -> None:
        """Bind ``port`` (0: any free one) and serve on it until :meth:`stop` or :meth:`go_down`."""
        host = self.config.host
        try:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.create_server((host, port), family=family, backlog=4096)
        except OSError as exc:
            raise ConfigError(f"WebSocket front cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.port = sock.getsockname()[1]
        self._server = await serve(
            self._connection,
            sock=sock,
            compression=None,
            process_request=_only_chat_path,
            max_size=MAX_MESSAGE_BYTES,
            ping_interval=None,  # a load test's client may be too busy to answer pings in time; TCP tells us enough
            server_header=None,
        )

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close(close_connections=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), STOP_GRACE_S)

    async def go_down(self) -> None:
        """The listener closes (connects are refused) and every open connection is cut, at once (no close
        handshake: the client sees the connection drop, as when the service dies)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close(close_connections=False)
        for connection in list(server.connections):
            connection.transport.abort()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), STOP_GRACE_S)

    async def come_up(self) -> None:
        if self._server is None and self.port is not None:
            await self._listen(self.port)

    # -- one connection, its turns one after the other --------------------------------------------------------------

    async def _connection(self, connection: ServerConnection) -> None:
        self.counts["connections"] += 1
        request = connection.request
        api_key = parse_bearer(request.headers.get(AUTH_HEADER)) if request is not None else None
        try:
            async for data in connection:
                await self._turn(connection, data, api_key)
        except ConnectionClosed:
            pass

    async def _turn(self, connection: ServerConnection, data: str | bytes, api_key: str | None) -> None:
        received_at = time.monotonic()
        self.counts["turns"] += 1
        try:
            chat_request = decode_request(data, default_max_tokens=self.config.default_max_tokens)
            stream = await self.service.chat(chat_request, api_key=api_key, received_at=received_at)
        except Exception as exc:
            await connection.send(self._error(exc))
            return
        try:
            parts: list[str] = []
            try:
                async for chunk in stream:
                    if chat_request.stream:
                        await connection.send(encode_token(chunk.text, chunk.n_tokens))
                    else:
                        parts.append(chunk.text)
            except ConnectionClosed:
                self.counts["client_gone"] += 1
                raise
            except Exception as exc:
                await connection.send(self._error(exc))
                return
            usage = Usage(stream.prompt_tokens, stream.completion_tokens)
            whole = None if chat_request.stream else "".join(parts)
            await connection.send(encode_done(stream.finish_reason, usage, whole))
        finally:
            # completed: a no-op; the client gone or a failure: frees the engine slot (counted as cancelled)
            await _close(stream)

    def _error(self, exc: Exception) -> str:
        failure = failure_of(exc)
        self.counts["errors"] += 1
        if failure is Failure.INTERNAL:
            log.error("chat request failed", exc_info=exc)
        return encode_error(failure, failure_message(failure, exc))


def _only_chat_path(connection: ServerConnection, request: Request) -> Response | None:
    """Refuse, at the handshake, a connection to any path but the chat endpoint."""
    path = request.path.split("?", 1)[0]
    if path != DEFAULT_PATH:
        return connection.respond(HTTPStatus.NOT_FOUND, f"no chat endpoint at {path}: use {DEFAULT_PATH}\n")
    return None


async def _close(stream: ChatStream) -> None:
    with contextlib.suppress(Exception):
        await stream.aclose()


__all__ = ["STOP_GRACE_S", "WsFront"]
