"""Small HTTP chat services on loopback that speak the APIs of the shipped REST profiles (uvicorn + starlette).

Each answers with the reference server's responder (:class:`loadgen.server.responder.Responder`): a question about
an earlier message quotes it, so retention checks pass only when the history really reached the service. Replies
are streamed a word at a time, ``token_delay_s`` apart, in each API's own framing:

- ``POST /api/chat``: Ollama's native chat API, NDJSON lines (one object with ``stream: false``);
- ``POST /v1/messages``: Anthropic's Messages API, named SSE events (one JSON message with ``stream: false``);
- ``POST /webhooks/rest/webhook``: Rasa's REST channel, a JSON list of messages; it keeps each sender's history;
- ``POST /plain``: plain chunked text (the adapter's ``text`` format), the history sent as ``{"history": [...]}``.

Every request is kept in :attr:`ProfileServer.requests` (path, headers, JSON body) for the tests to look at.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from loadgen.server.responder import Responder
from loadgen.types import ChatMessage

_WORDS = re.compile(r"\S+\s*")


def words(text: str) -> list[str]:
    return _WORDS.findall(text)


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: Any


class ProfileServer:
    """The services above on one port; :meth:`start` returns once it accepts connections."""

    def __init__(self, token_delay_s: float = 0.002) -> None:
        self.token_delay_s = token_delay_s
        self.requests: list[Seen] = []
        self.sessions: dict[str, list[ChatMessage]] = {}
        self._responder = Responder()
        app = Starlette(
            routes=[
                Route("/api/chat", self._ollama, methods=["POST"]),
                Route("/v1/messages", self._anthropic, methods=["POST"]),
                Route("/webhooks/rest/webhook", self._rasa, methods=["POST"]),
                Route("/plain", self._plain, methods=["POST"]),
            ]
        )
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ProfileServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("the profile server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    # -- helpers -------------------------------------------------------------------------------------------------

    async def _seen(self, request: Request) -> Any:
        body = json.loads(await request.body())
        self.requests.append(Seen(request.url.path, dict(request.headers), body))
        return body

    def _answer(self, messages: list[ChatMessage], max_tokens: int) -> list[str]:
        return words(self._responder.reply(messages, max_tokens))[:max_tokens]

    async def _paced(self, pieces: list[str]) -> AsyncIterator[str]:
        for piece in pieces:
            await asyncio.sleep(self.token_delay_s)
            yield piece

    # -- the APIs ------------------------------------------------------------------------------------------------

    async def _ollama(self, request: Request) -> Response:
        body = await self._seen(request)
        messages = [ChatMessage(m["role"], m["content"]) for m in body["messages"]]
        pieces = self._answer(messages, int(body.get("options", {}).get("num_predict", 64)))
        counts = {"prompt_eval_count": sum(len(words(m.content)) for m in messages), "eval_count": len(pieces)}
        model = body.get("model", "")
        if not body.get("stream", True):
            whole = {"model": model, "message": {"role": "assistant", "content": "".join(pieces)}, "done": True}
            return JSONResponse({**whole, **counts})

        async def lines() -> AsyncIterator[str]:
            async for piece in self._paced(pieces):
                chunk = {"model": model, "message": {"role": "assistant", "content": piece}, "done": False}
                yield json.dumps(chunk) + "\n"
            last = {"model": model, "message": {"role": "assistant", "content": ""}, "done": True, **counts}
            yield json.dumps(last) + "\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    async def _anthropic(self, request: Request) -> Response:
        body = await self._seen(request)
        if "anthropic-version" not in request.headers:
            return JSONResponse({"type": "error", "error": {"type": "invalid_request_error", "message": "version"}},
                                status_code=400)  # fmt: skip
        messages = [ChatMessage(m["role"], m["content"]) for m in body["messages"]]
        if body.get("system"):
            messages.insert(0, ChatMessage("system", body["system"]))
        pieces = self._answer(messages, int(body["max_tokens"]))
        prompt = sum(len(words(m.content)) for m in messages)
        if not body.get("stream"):
            content = [{"type": "text", "text": "".join(pieces[:2])}, {"type": "text", "text": "".join(pieces[2:])}]
            return JSONResponse({"content": content, "usage": {"input_tokens": prompt, "output_tokens": len(pieces)}})

        def event(name: str, data: dict[str, Any]) -> str:
            return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"

        async def events() -> AsyncIterator[str]:
            yield event("message_start", {"message": {"usage": {"input_tokens": prompt, "output_tokens": 1}}})
            yield event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
            yield event("ping", {})
            async for piece in self._paced(pieces):
                yield event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}})
            yield event("content_block_stop", {"index": 0})
            usage = {"output_tokens": len(pieces)}
            yield event("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": usage})
            yield event("message_stop", {})

        return StreamingResponse(events(), media_type="text/event-stream")

    async def _rasa(self, request: Request) -> Response:
        body = await self._seen(request)
        sender = body.get("sender") or "default"
        history = self.sessions.setdefault(sender, [])
        history.append(ChatMessage("user", body["message"]))
        pieces = self._answer(history, 64)
        history.append(ChatMessage("assistant", "".join(pieces)))
        return JSONResponse([
            {"recipient_id": sender, "text": "".join(pieces)},
            {"recipient_id": sender, "image": "https://example.invalid/cat.png"},
            {"recipient_id": sender, "text": "Anything else?"},
        ])  # fmt: skip

    async def _plain(self, request: Request) -> Response:
        body = await self._seen(request)
        messages = [ChatMessage("user", text) for text in body["history"]]
        pieces = self._answer(messages, int(body.get("limit", 32)))
        return StreamingResponse(self._paced(pieces), media_type="text/plain; charset=utf-8")
