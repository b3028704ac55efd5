"""A chat service behind RabbitMQ with its own JSON (the ``example-amqp`` profile's), for the AMQP adapter tests.

It consumes a queue of its own (bound, when asked, to a named direct exchange as well) in an asyncio loop of its
own thread, and answers each request on its ``reply_to`` with its ``correlation_id``: one message per word
``{"n": i, "delta": "word "}``, then ``{"n": k, "delta": "", "last": true, "usage": {"in": p, "out": k}}``. With a
``conversation`` it keeps the history; without, the ``transcript`` lines (``role: content``) are the history.

Request header ``x-test-fault``: ``overloaded`` answers an error reply ``{"n": 0, "error": {"code": "overloaded",
...}}``; ``gap`` leaves out message 1; ``malformed`` answers a body that is not JSON; ``single`` answers the whole
reply in one message; ``silent`` answers nothing.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from loadgen.server.responder import Responder
from loadgen.types import ChatMessage
from tests.adapters.rest_servers import words
from tests.amqp_broker import BROKER_URL


class ExampleAmqpService:
    def __init__(self, queue: str, *, exchange: str = "", routing_key: str = "") -> None:
        self.queue = queue
        self.exchange = exchange
        self.routing_key = routing_key or queue
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, Any]] = []
        self.sessions: dict[str, list[ChatMessage]] = {}
        self._responder = Responder()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None

    def start(self) -> ExampleAmqpService:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def stop(self) -> None:
        if self._connection is not None:
            asyncio.run_coroutine_threadsafe(self._connection.close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _start(self) -> None:
        self._connection = await aio_pika.connect_robust(BROKER_URL)
        channel = await self._connection.channel()
        queue = await channel.declare_queue(self.queue, auto_delete=True)
        if self.exchange:
            exchange = await channel.declare_exchange(self.exchange, aio_pika.ExchangeType.DIRECT, auto_delete=True)
            await queue.bind(exchange, routing_key=self.routing_key)
        self._channel = channel
        await queue.consume(self._on_request)

    async def _on_request(self, message: AbstractIncomingMessage) -> None:
        async with message.process():
            body = json.loads(message.body)
            headers = dict(message.headers or {})
            self.requests.append(body)
            self.headers.append(headers)
            fault = headers.get("x-test-fault")
            if fault == "silent":
                return
            replies = self._replies(body, fault)
            for reply in replies:
                await asyncio.sleep(0.001)
                payload = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                await self._channel.default_exchange.publish(
                    aio_pika.Message(payload, correlation_id=message.correlation_id), routing_key=message.reply_to or ""
                )

    def _replies(self, body: dict[str, Any], fault: Any) -> list[dict[str, Any] | bytes]:
        if fault == "overloaded":
            return [{"n": 0, "error": {"code": "overloaded", "message": "queue full"}}]
        if fault == "malformed":
            return [b"this is not JSON"]
        new = ChatMessage("user", body["text"])
        conversation = body.get("conversation")
        if conversation:
            history = self.sessions.setdefault(conversation, [])
            history.append(new)
        else:
            lines = [line.partition(": ") for line in body.get("transcript", [])]
            history = [*(ChatMessage(role, content) for role, _, content in lines), new]
        pieces = words(self._responder.reply(history, int(body.get("limit", 64))))[: int(body.get("limit", 64))]
        if conversation:
            history.append(ChatMessage("assistant", "".join(pieces)))
        usage = {"in": sum(len(words(m.content)) for m in history), "out": len(pieces)}
        if fault == "single":
            return [{"n": 0, "delta": "".join(pieces), "last": True, "usage": usage}]
        out: list[dict[str, Any] | bytes] = [{"n": i, "delta": piece} for i, piece in enumerate(pieces)]
        out.append({"n": len(pieces), "delta": "", "last": True, "usage": usage})
        if fault == "gap":
            del out[1]
        return out
