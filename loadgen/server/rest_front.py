"""The REST front: OpenAI-compatible chat completions, an ASGI app under uvicorn in the server's event loop.

Endpoints:

- ``POST /v1/chat/completions``: body ``{model, messages, max_tokens | max_completion_tokens, stream,
  stream_options: {include_usage}, session_id}``; ``session_id`` (or the ``X-Session-Id`` header) is our
  extension for server history mode. API key as ``Authorization: Bearer KEY``. Whole (``chat.completion``
  with usage) or streamed as Server-Sent Events: a first chunk with ``delta.role``, one
  ``chat.completion.chunk`` per token, a chunk with ``finish_reason``, a usage chunk (``choices: []``) when
  ``include_usage``, then ``data: [DONE]``. Errors before the stream: ``{"error": {message, type, code}}``
  with 400/401/429; an error during the stream: ``event: error`` with the same object.
- ``GET /health``, ``GET /v1/models``, ``GET /stats`` (service, sessions, engine and this front, as JSON).

Every accepted connection has TCP_NODELAY (asyncio sets it already; the protocol class checks and sets it,
and counts it in ``/stats``), so each streamed token leaves at once instead of waiting ~40 ms for an ACK.
The chat path is served as plain ASGI (the hot path: no middleware wrapping each of its sends), the other
endpoints by a Starlette app. Token chunks are pre-encoded byte pieces around the JSON-escaped token text:
no dict and no ``json.dumps`` per token. The listening socket is bound here (so a busy port is a clear
:class:`~loadgen.errors.ConfigError`, and port 0 reads back at once); uvicorn's own signal handling is off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from json.encoder import encode_basestring_ascii
from typing import Any, ClassVar

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from loadgen.errors import ConfigError
from loadgen.server.config import ServerConfig
from loadgen.server.engines.base import EngineOverloaded
from loadgen.server.fronts import Front
from loadgen.server.service import BadChatRequest, ChatService, ChatStream, Unauthorized
from loadgen.types import ChatMessage, ChatRequest

logger = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"
CHAT_PATHS = frozenset({CHAT_PATH, "/chat/completions"})
#: Largest request body accepted (a long conversation in client history mode is a few hundred kB).
MAX_BODY_BYTES = 32 * 1024 * 1024
#: Time in-flight replies get to finish when the front stops.
GRACEFUL_STOP_S = 3.0
#: Idle keep-alive connections are kept this long (a chat user thinks for seconds between turns).
KEEP_ALIVE_S = 75.0

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def _error_body(message: str, type_: str, code: int) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code}}


def _bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _content(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # OpenAI content parts: [{"type": "text", "text": "..."}]
        parts = []
        for j, part in enumerate(value):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise BadChatRequest(f"{where}[{j}] must be a text part {{'type': 'text', 'text': '...'}}")
            parts.append(part["text"])
        return "".join(parts)
    raise BadChatRequest(f"{where} must be a string or a list of text parts")


def parse_chat_body(body: bytes, session_header: str | None, default_max_tokens: int) -> tuple[ChatRequest, bool]:
    """The :class:`ChatRequest` in an OpenAI chat-completions body, and whether usage is wanted in a stream.

    Raises :class:`BadChatRequest` with a message that names the field.
    """
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadChatRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BadChatRequest("the request body must be a JSON object")
    raw_messages = obj.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise BadChatRequest("'messages' must be a non-empty list of {role, content} objects")
    messages = []
    for i, m in enumerate(raw_messages):
        if not isinstance(m, dict):
            raise BadChatRequest(f"messages[{i}] must be an object with 'role' and 'content'")
        role = m.get("role")
        if not isinstance(role, str):
            raise BadChatRequest(f"messages[{i}].role must be a string")
        messages.append(ChatMessage(role, _content(m.get("content"), f"messages[{i}].content")))
    max_tokens = obj.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = obj.get("max_tokens")
    if max_tokens is None:
        max_tokens = default_max_tokens
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        raise BadChatRequest(f"max_tokens must be an integer, got {json.dumps(max_tokens)}")
    stream = obj.get("stream", False)
    if not isinstance(stream, bool):
        raise BadChatRequest("'stream' must be true or false")
    include_usage = False
    options = obj.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise BadChatRequest("'stream_options' must be an object")
        include_usage = bool(options.get("include_usage", False))
    n = obj.get("n", 1)
    if n != 1:
        raise BadChatRequest("only n=1 is supported")
    model = obj.get("model")
    if model is None:
        model = "loadgen"
    if not isinstance(model, str):
        raise BadChatRequest("'model' must be a string")
    session_id = obj.get("session_id")
    if session_id is None:
        session_id = session_header
    if session_id is not None and (not isinstance(session_id, str) or not session_id):
        raise BadChatRequest("'session_id' must be a non-empty string")
    request = ChatRequest(
        messages=tuple(messages), max_tokens=max_tokens, stream=stream, model=model, session_id=session_id
    )
    return request, include_usage


async def _send_json(send: Send, status: int, obj: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or ()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: Send, status: int, message: str, type_: str) -> None:
    headers = [(b"retry-after", b"1")] if status == 429 else None
    await _send_json(send, status, _error_body(message, type_, status), headers)


async def stream_sse(stream: ChatStream, model: str, include_usage: bool, receive: Receive, send: Send) -> None:
    """Stream one :class:`ChatStream` as OpenAI chunks; stop (and free the engine slot) if the client goes."""
    created = int(time.time())
    head = (
        f'{{"id":"{stream.request_id}","object":"chat.completion.chunk","created":{created},'
        f'"model":{encode_basestring_ascii(model)},"choices":[{{"index":0,"delta":'
    ).encode()
    prefix = b"data: " + head + b'{"content":'
    suffix = b'},"finish_reason":null}]}\n\n'
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
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        await send(
            {
                "type": "http.response.body",
                "body": b"data: " + head + b'{"role":"assistant","content":""},"finish_reason":null}]}\n\n',
                "more_body": True,
            }
        )
        try:
            async for chunk in stream:
                if gone:
                    break
                await send(
                    {
                        "type": "http.response.body",
                        "body": prefix + encode_basestring_ascii(chunk.text).encode() + suffix,
                        "more_body": True,
                    }
                )
        except Exception as exc:
            if gone:
                return
            code, type_ = _mid_stream_error(exc)
            data = json.dumps(_error_body(str(exc) or type(exc).__name__, type_, code))
            await send({"type": "http.response.body", "body": f"event: error\ndata: {data}\n\n".encode()})
            return
        if gone:
            return
        finish = encode_basestring_ascii(stream.finish_reason).encode()
        tail = [b"data: " + head + b'{},"finish_reason":' + finish + b"}]}\n\n"]
        if include_usage:
            p, c = stream.prompt_tokens, stream.completion_tokens
            tail.append(
                b"data: "
                + head[: head.index(b'"choices":')]
                + (
                    f'"choices":[],"usage":{{"prompt_tokens":{p},"completion_tokens":{c},"total_tokens":{p + c}}}}}\n\n'
                ).encode()
            )
        tail.append(b"data: [DONE]\n\n")
        await send({"type": "http.response.body", "body": b"".join(tail)})
    finally:
        watcher.cancel()
        await stream.aclose()


def _mid_stream_error(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, EngineOverloaded):
        return 429, "overloaded"
    if isinstance(exc, BadChatRequest):
        return 400, "invalid_request_error"
    return 500, "server_error"


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
            ]
        )

    # -- endpoints -----------------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app uvicorn runs: chat completions straight here (the hot path: no middleware wrapping
        every send), everything else through Starlette."""
        if scope["type"] == "http" and scope["path"] in CHAT_PATHS:
            if scope["method"] != "POST":
                await _send_error(send, 405, f"use POST for {scope['path']}", "invalid_request_error")
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
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"x-session-id":
                session_header = value.decode("latin-1")
        api_key = _bearer(authorization)
        try:
            service.authorize(api_key)
        except Unauthorized as exc:
            await _send_error(send, 401, f"{exc}: send 'Authorization: Bearer <key>'", "authentication_error")
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > MAX_BODY_BYTES:
                await _send_error(send, 413, f"request body over {MAX_BODY_BYTES} bytes", "invalid_request_error")
                return
            if not message.get("more_body", False):
                break
        try:
            chat_request, include_usage = parse_chat_body(body, session_header, self.config.default_max_tokens)
            stream = await service.chat(chat_request, api_key=api_key, received_at=received_at)
        except Unauthorized as exc:  # pragma: no cover - authorize() above already refused it
            await _send_error(send, 401, str(exc), "authentication_error")
            return
        except BadChatRequest as exc:
            await _send_error(send, 400, str(exc), "invalid_request_error")
            return
        except EngineOverloaded as exc:
            await _send_error(send, 429, f"server overloaded, retry later: {exc}", "overloaded")
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
            code, type_ = _mid_stream_error(exc)
            await _send_error(send, code, str(exc) or type(exc).__name__, type_)
            return
        finally:
            await stream.aclose()
        p, c = stream.prompt_tokens, stream.completion_tokens
        await _send_json(
            send,
            200,
            {
                "id": stream.request_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": stream.text},
                        "finish_reason": stream.finish_reason,
                    }
                ],
                "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c},
            },
        )

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "engine": self.service.engine.name})

    async def models(self, request: Request) -> Response:
        model_id = f"loadgen-{self.service.engine.name}"
        return JSONResponse(
            {"object": "list", "data": [{"id": model_id, "object": "model", "created": 0, "owned_by": "loadgen"}]}
        )

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
        host = self.config.host
        port = self.config.rest_port if self.config.rest_port is not None else 0
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
        return f"http://{client_host(host)}:{self.port}"

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


__all__ = ["CHAT_PATH", "CHAT_PATHS", "RestFront", "parse_chat_body", "stream_sse"]
