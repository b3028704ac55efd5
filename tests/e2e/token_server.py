"""A small misbehaving OpenAI-style chat service on loopback (uvicorn + starlette), for the token accounting tests.

``POST /<mode>/v1/chat/completions`` streams the reference responder's words (one word a token, as the reference
server's ``sim`` engine counts), but only **half** of the ``max_tokens`` asked (it ignores ``min_tokens`` and
``ignore_eos``). Modes:

- ``lying``: a usage chunk whose ``completion_tokens`` is true and whose ``prompt_tokens`` is twice the truth;
- ``nousage``: no usage at all (the client has to count locally).

Every request body is kept in :attr:`TokenServer.bodies`.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from loadgen.server.responder import Responder
from loadgen.types import ChatMessage

_WORDS = re.compile(r"\S+\s*")


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None) -> str:
    choices = [] if usage is not None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    body: dict[str, Any] = {
        "id": "x",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = usage
    return f"data: {json.dumps(body)}\n\n"


class TokenServer:
    """The service above on one port; :meth:`start` returns once it accepts connections."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self._responder = Responder()
        app = Starlette(routes=[Route("/{mode}/v1/chat/completions", self._chat, methods=["POST"])])
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.port}/{mode}"

    def start(self) -> TokenServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("the token server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    async def _chat(self, request: Request) -> Response:
        mode = request.path_params["mode"]
        body = json.loads(await request.body())
        self.bodies.append(body)
        messages = [ChatMessage(m["role"], m["content"]) for m in body["messages"]]
        asked = int(body.get("max_tokens") or 64)
        words = _WORDS.findall(self._responder.reply(messages, asked))[: max(1, asked // 2)]
        prompt = sum(len(m.content.split()) + 1 for m in messages)  # "role: content", as the sim engine counts

        async def events() -> AsyncIterator[str]:
            yield _chunk({"role": "assistant"})
            for word in words:
                yield _chunk({"content": word})
            yield _chunk({}, finish="stop")
            if mode == "lying":
                yield _chunk({}, usage={"prompt_tokens": 2 * prompt, "completion_tokens": len(words)})
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")
