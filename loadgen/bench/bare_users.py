"""Bare Locust users: the same calls as the ConversationUser with none of its work (dialogues, history,
retention, HDR histograms). The baseline of ``loadgen bench``; one Locust request event per call."""

from __future__ import annotations

import os
import ssl
import time
from typing import Any

from locust import User, constant, task

from loadgen.wire.openai import CHAT_PATH

MAX_TOKENS = int(os.environ.get("LOADGEN_BENCH_MAX_TOKENS", "64"))
_MESSAGES = [
    {"role": "system", "content": "You are a helpful travel agent."},
    {"role": "user", "content": "Hi, my name is Ada and I want to fly to Lisbon next week."},
]
_ssl_context: ssl.SSLContext | None = None


class BareRestUser(User):
    abstract = False
    wait_time = constant(0)

    def on_start(self) -> None:
        import logging

        import httpx

        # as the ConversationUser does (FIELD-NOTES: httpx's INFO line per request costs ~10% of throughput)
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("httpcore").setLevel(logging.WARNING)
        global _ssl_context
        if _ssl_context is None:
            _ssl_context = ssl.create_default_context()
        self.client = httpx.Client(base_url=self.host or "", timeout=30.0, verify=_ssl_context)

    def on_stop(self) -> None:
        self.client.close()

    @task
    def turn(self) -> None:
        body = {"model": "bench", "messages": _MESSAGES, "max_tokens": MAX_TOKENS, "stream": True}
        t0 = time.perf_counter()
        exc: Exception | None = None
        length = 0
        try:
            with self.client.stream("POST", CHAT_PATH, json=body) as response:
                response.raise_for_status()
                for line in response.iter_lines():  # to the end, so that the connection is reused
                    if line.startswith("data: "):
                        length += len(line)
        except Exception as e:  # counted as a failure, like the ConversationUser does
            exc = e
        self.environment.events.request.fire(
            request_type="rest", name="bare", response_time=(time.perf_counter() - t0) * 1000,
            response_length=length, exception=exc, context={},
        )  # fmt: skip


class BareGrpcUser(User):
    abstract = False
    wait_time = constant(0)

    def on_start(self) -> None:
        import grpc

        from loadgen.grpc_gen.chat.v1 import chat_pb2, chat_pb2_grpc
        from loadgen.transports.grpc import ensure_gevent_support

        ensure_gevent_support()  # once per process, before any channel
        target = (self.host or "").split("://", 1)[-1]
        # one connection per user, as GrpcTransport does (grpc would otherwise share one per process)
        self.channel = grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        self.stub: Any = getattr(chat_pb2_grpc, "ChatServiceStub")(self.channel)  # noqa: B009 - untyped generated code
        self.request = chat_pb2.ChatRequest(
            model="bench",
            messages=[chat_pb2.ChatMessage(role=m["role"], content=m["content"]) for m in _MESSAGES],
            max_tokens=MAX_TOKENS,
        )

    def on_stop(self) -> None:
        self.channel.close()

    @task
    def turn(self) -> None:
        t0 = time.perf_counter()
        exc: Exception | None = None
        length = 0
        try:
            for chunk in self.stub.Chat(self.request, timeout=30.0):
                length += len(chunk.text)
        except Exception as e:
            exc = e
        self.environment.events.request.fire(
            request_type="grpc", name="bare", response_time=(time.perf_counter() - t0) * 1000,
            response_length=length, exception=exc, context={},
        )  # fmt: skip


class BareAmqpUser(User):
    """AMQP has no plain-library path from gevent (FIELD-NOTES): the baseline is our AmqpTransport alone,
    so this arm measures what the ConversationUser adds on top of the transport."""

    abstract = False
    wait_time = constant(0)

    def on_start(self) -> None:
        from loadgen.transports import TransportConfig, make_transport

        self.transport = make_transport("amqp", TransportConfig(target=self.host or "", timeout_s=30.0))

    def on_stop(self) -> None:
        self.transport.close()

    @task
    def turn(self) -> None:
        from loadgen.errors import TransportError
        from loadgen.types import ChatMessage, ChatRequest

        request = ChatRequest(tuple(ChatMessage(m["role"], m["content"]) for m in _MESSAGES), max_tokens=MAX_TOKENS)
        t0 = time.perf_counter()
        exc: Exception | None = None
        length = 0
        try:
            length = len(self.transport.send(request, timeout=30.0).text)
        except TransportError as e:
            exc = e
        self.environment.events.request.fire(
            request_type="amqp", name="bare", response_time=(time.perf_counter() - t0) * 1000,
            response_length=length, exception=exc, context={},
        )  # fmt: skip
