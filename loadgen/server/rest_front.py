"""The REST front: OpenAI-compatible chat completions, an ASGI app under uvicorn in the server's event loop.

A thin adapter over the wire contract: the body is parsed by :func:`loadgen.wire.openai.parse_chat_body`, the key
read by :func:`loadgen.wire.auth.parse_bearer`, the reply written by :class:`loadgen.wire.openai.ChunkEncoder`
(streamed, framed by :mod:`loadgen.wire.sse`) or :func:`loadgen.wire.openai.encode_completion` (whole), and a
failure answered with its row of :mod:`loadgen.wire.status` (see :mod:`loadgen.server.fronts`).

Endpoints:

- ``POST`` :data:`~loadgen.wire.openai.CHAT_PATH` (also ``/chat/completions``): body ``{model, messages,
  max_tokens | max_completion_tokens, stream, stream_options: {include_usage}, session_id}``; ``session_id`` (or
  the ``X-Session-Id`` header) is our extension for server history mode. API key as ``Authorization: Bearer
  KEY``. Whole (``chat.completion`` with usage) or streamed as Server-Sent Events: a first chunk with
  ``delta.role``, one ``chat.completion.chunk`` per token, a chunk with ``finish_reason``, a usage chunk
  (``choices: []``) when ``include_usage``, then ``data: [DONE]``. Errors before the stream: ``{"error":
  {message, type, code}}`` with the table's status (400, 401, 429, 500; and HTTP's own 405 and 413); an error
  during the stream: ``event: error`` with the same object.
- ``GET /health``, ``GET /v1/models``, ``GET /stats`` (service, sessions, engine, the fault log and this front,
  as JSON), ``GET /faults`` (every injected fault with its start and end: ``FaultLog.to_json()``).

Every accepted connection has TCP_NODELAY (asyncio sets it already; the protocol class checks and sets it,
and counts it in ``/stats``), so each streamed token leaves at once instead of waiting ~40 ms for an ACK.
The chat path is served as plain ASGI (the hot path: no middleware wrapping each of its sends), the other
endpoints by a Starlette app. Token chunks are the encoder's pre-encoded byte pieces around the JSON-escaped
token text: no dict and no ``json.dumps`` per token. The listening socket is bound here (so a busy port is a
clear :class:`~loadgen.errors.ConfigError`, and port 0 reads back at once); uvicorn's own signal handling is off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from typing import ClassVar

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from loadgen.errors import ConfigError
from loadgen.server.config import ServerConfig
from loadgen.server.fronts import Front
from loadgen.server.service import ChatService, ChatStream, failure_message, failure_of, is_bug
from loadgen.telemetry.serve_tracing import carrier_of
from loadgen.types import Usage
from loadgen.wire import sse
from loadgen.wire.auth import AUTH_HEADER, parse_bearer
from loadgen.wire.openai import (
    CHAT_PATHS,
    JSON_CONTENT_TYPE,
    SESSION_HEADER,
    ChunkEncoder,
    encode_completion,
    encode_error,
    encode_error_object,
    parse_chat_body,
)
from loadgen.wire.session import SESSION_NEW, SESSION_STATE_HEADER
from loadgen.wire.status import STATUS, Failure

logger = logging.getLogger(__name__)

#: Largest request body accepted (a long conversation in client history mode is a few hundred kB).
MAX_BODY_BYTES = 32 * 1024 * 1024
#: Time in-flight replies get to finish when the front stops.
GRACEFUL_STOP_S = 3.0
#: Idle keep-alive connections are kept this long (a chat user thinks for seconds between turns).
KEEP_ALIVE_S = 75.0

_SSE_HEADERS = [
    (b"content-type", f"{sse.CONTENT_TYPE}; charset=utf-8".encode()),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
#: ... and for a reply that started a new session (:mod:`loadgen.wire.session`)
_SESSION_NEW_HEADER = (SESSION_STATE_HEADER.encode(), SESSION_NEW.encode())
_SSE_HEADERS_NEW_SESSION = [*_SSE_HEADERS, _SESSION_NEW_HEADER]
_AUTH_HEADER = AUTH_HEADER.encode()
_SESSION_HEADER = SESSION_HEADER.encode()


async def _send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", JSON_CONTENT_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                *(headers or ()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_failure(send: Send, failure: Failure, message: str) -> None:
    headers = [(b"retry-after", b"1")] if failure is Failure.OVERLOADED else None
    await _send_json(send, STATUS[failure].http, encode_error(failure, message), headers)


def _failure(exc: Exception) -> tuple[Failure, str]:
    """The row and message for ``exc``; an internal error is logged with its traceback."""
    failure = failure_of(exc)
    if is_bug(exc):
        logger.error("chat request failed", exc_info=exc)
    return failure, failure_message(failure, exc)


async def stream_sse(stream: ChatStream, model: str, include_usage: bool, receive: Receive, send: Send) -> None:
    """Stream one :class:`ChatStream` as OpenAI chunks; stop (and free the engine slot) if the client goes."""
    encoder = ChunkEncoder(stream.request_id, model, int(time.time()), sse.DATA_FRAME)
    gone = False

    async def watch() -> None:
        nonlocal gone
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                gone = True
                await stream.aclose()
                return

    watcher = asyncio.create_task(watch())
    try:
        headers = _SSE_HEADERS_NEW_SESSION if stream.session_new else _SSE_HEADERS
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": encoder.role(), "more_body": True})
        content = encoder.content
        try:
            async for chunk in stream:
                if gone:
                    break
                await send({"type": "http.response.body", "body": content(chunk.text), "more_body": True})
        except Exception as exc:
            if gone:
                return
            failure, message = _failure(exc)
            error = sse.encode_event(encode_error(failure, message).decode(), event="error")
            await send({"type": "http.response.body", "body": error})
            return
        if gone:
            return
        tail = [encoder.finish(stream.finish_reason)]
        if include_usage:
            tail.append(encoder.usage(stream.prompt_tokens, stream.completion_tokens))
        tail.append(encoder.done())
        await send({"type": "http.response.body", "body": b"".join(tail)})
    finally:
        watcher.cancel()
        await stream.aclose()


class _Counters:
    __slots__ = ("connections", "nodelay_already", "nodelay_set")

    def __init__(self) -> None:
        self.connections = 0
        self.nodelay_already = 0  # accepted sockets that had TCP_NODELAY before we looked (asyncio sets it)
        self.nodelay_set = 0  # ... and those we had to set it on


def _protocol_class(counters: _Counters) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools when installed, else h11), checking TCP_NODELAY on each connection."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # pragma: no cover - httptools ships with uvicorn[standard]
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base  # type: ignore[assignment]

    class NoDelayProtocol(Base):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            counters.connections += 1
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    if sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY):
                        counters.nodelay_already += 1
                    else:
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        counters.nodelay_set += 1
                except OSError:  # pragma: no cover - the peer is already gone
                    pass
            super().connection_made(transport)

    return NoDelayProtocol


class _QuietServer(uvicorn.Server):
    """uvicorn's server without its signal handlers: the reference server handles signals for every front."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


def client_host(host: str) -> str:
    """The host a client uses to reach a server bound to ``host`` (a wildcard becomes loopback)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class RestFront(Front):
    name: ClassVar[str] = "rest"

    def __init__(self, service: ChatService, config: ServerConfig) -> None:
        super().__init__(service, config)
        self.counters = _Counters()
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None
        self.port: int | None = None
        self.requests = 0
        self.starlette = Starlette(
            routes=[
                Route("/health", self.health, methods=["GET"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/stats", self.stats, methods=["GET"]),
                Route("/faults", self.faults, methods=["GET"]),
            ]
        )

    # -- endpoints -----------------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app uvicorn runs: chat completions straight here (the hot path: no middleware wrapping
        every send), everything else through Starlette."""
        if scope["type"] == "http" and scope["path"] in CHAT_PATHS:
            if scope["method"] != "POST":
                body = encode_error_object(f"use POST for {scope['path']}", "invalid_request_error", 405)
                await _send_json(send, 405, body)
                return
            await self.chat_completions(scope, receive, send)
            return
        await self.starlette(scope, receive, send)

    async def chat_completions(self, scope: Scope, receive: Receive, send: Send) -> None:
        received_at = time.monotonic()
        self.requests += 1
        service = self.service
        authorization = session_header = None
        for name, value in scope["headers"]:
            if name == _AUTH_HEADER:
                authorization = value
            elif name == _SESSION_HEADER:
                session_header = value.decode("latin-1")
        api_key = parse_bearer(authorization)
        body = b""
        try:
            service.authorize(api_key)  # before the body is read: a client without the key learns nothing more
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                if len(body) > MAX_BODY_BYTES:
                    error = encode_error_object(
                        f"request body over {MAX_BODY_BYTES} bytes", "invalid_request_error", 413
                    )
                    await _send_json(send, 413, error)
                    return
                if not message.get("more_body", False):
                    break
            chat_request, include_usage = parse_chat_body(body, session_header, self.config.default_max_tokens)
            trace = None if service.tracing is None else carrier_of(scope["headers"])  # --otel: the client's span
            stream = await service.chat(chat_request, api_key=api_key, received_at=received_at, trace=trace)
        except Exception as exc:
            await _send_failure(send, *_failure(exc))
            return
        if chat_request.stream:
            await stream_sse(stream, chat_request.model, include_usage, receive, send)
        else:
            await self._whole(stream, chat_request.model, send)

    async def _whole(self, stream: ChatStream, model: str, send: Send) -> None:
        try:
            async for _ in stream:
                pass
        except Exception as exc:
            await _send_failure(send, *_failure(exc))
            return
        finally:
            await stream.aclose()
        usage = Usage(stream.prompt_tokens, stream.completion_tokens)
        body = encode_completion(stream.request_id, model, int(time.time()), stream.text, stream.finish_reason, usage)
        await _send_json(send, 200, body, [_SESSION_NEW_HEADER] if stream.session_new else None)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "engine": self.service.engine.name})

    async def models(self, request: Request) -> Response:
        model_id = f"loadgen-{self.service.engine.name}"
        return JSONResponse(
            {"object": "list", "data": [{"id": model_id, "object": "model", "created": 0, "owned_by": "loadgen"}]}
        )

    async def faults(self, request: Request) -> Response:
        log = self.service.fault_log
        return JSONResponse(log.to_json() if log is not None else {"started_at": None, "faults": []})

    async def stats(self, request: Request) -> Response:
        data = self.service.stats()
        data["rest"] = {
            "requests": self.requests,
            "connections": self.counters.connections,
            "nodelay_already": self.counters.nodelay_already,
            "nodelay_set": self.counters.nodelay_set,
        }
        return JSONResponse(data)

    # -- lifecycle -----------------------------------------------------------------------------------------------

    async def start(self) -> str:
        port = self.config.rest_port if self.config.rest_port is not None else 0
        await self._listen(port)
        return f"http://{client_host(self.config.host)}:{self.port}"

    async def _listen(self, port: int) -> None:
        """Bind ``port`` (0: any free one) and serve on it until :meth:`stop` or :meth:`go_down`."""
        host = self.config.host
        try:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.create_server((host, port), family=family, backlog=4096)
        except OSError as exc:
            raise ConfigError(f"REST front cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self,
            http=_protocol_class(self.counters),
            lifespan="off",
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_keep_alive=int(KEEP_ALIVE_S),
            timeout_graceful_shutdown=int(GRACEFUL_STOP_S),
            backlog=4096,
            proxy_headers=False,
        )
        server = self._server = _QuietServer(config)
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="rest-front")
        while not server.started:
            if self._task.done():
                self._task.result()  # raises what startup raised
                raise ConfigError("the REST front stopped while starting")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        server, task = self._server, self._task
        if server is None or task is None:
            return
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), GRACEFUL_STOP_S + 5.0)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        except Exception:
            logger.exception("REST front failed while stopping")
        finally:
            self._server = self._task = None
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    async def go_down(self) -> None:
        """The listener closes (connects are refused) and every open connection is cut, at once."""
        server, task = self._server, self._task
        if server is None or task is None:
            return
        for listener in server.servers:
            listener.close()
        if self._sock is not None:
            self._sock.close()
        for connection in list(server.server_state.connections):
            connection.transport.abort()
        server.should_exit = server.force_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), GRACEFUL_STOP_S + 5.0)
        except TimeoutError:
            task.cancel()
        except Exception:
            logger.exception("REST front failed while going down")
        self._server = self._task = None
        self._sock = None

    async def come_up(self) -> None:
        if self._server is None and self.port is not None:
            await self._listen(self.port)


__all__ = ["RestFront", "client_host", "stream_sse"]
