"""The timing floor: a bare client with no framework, timing the same requests as a run, at the same time.

An exact-timing server is not the floor of what a client can measure: the way back and the machine's own
scheduling add to every figure. The floor is a plain client (a blocking socket for REST, grpcio's sync API
with no gevent for gRPC, aio-pika on a bare asyncio loop for AMQP) sending one streamed turn at a time to the
same server during the same run. What a load generator measures above the floor is what the generator adds.

Run it as a separate process beside the run it is the floor of (it must not share that process's hub)::

    python -m loadgen.bench.floor --transport rest --url http://127.0.0.1:8000 --duration 10 --max-tokens 20

It prints one JSON object: ``{"transport", "ttft_ms": [...], "failures": n}`` (TTFT: request sent -> first
content-bearing chunk received, before it is parsed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

from loadgen.types import ChatMessage, ChatRequest
from loadgen.wire import openai as openai_wire
from loadgen.wire import sse

#: What one timed turn asks for.
PROMPT = "Say something for the timing floor."
#: Every call of the floor gives up after this long.
CALL_TIMEOUT_S = 10.0


def _request(max_tokens: int) -> ChatRequest:
    return ChatRequest(messages=(ChatMessage("user", PROMPT),), max_tokens=max_tokens, model="loadgen-floor")


def rest_ttft(url: str, max_tokens: int) -> float:
    """One streamed chat completion over a fresh blocking socket; seconds from send to the first content."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    body = openai_wire.encode_request(_request(max_tokens))
    head = (
        f"POST {openai_wire.CHAT_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: {sse.CONTENT_TYPE}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((host, port), timeout=CALL_TIMEOUT_S) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t_sent = time.perf_counter()
        sock.sendall(head + body)
        seen = b""
        first: float | None = None
        while True:
            piece = sock.recv(65536)
            now = time.perf_counter()
            if not piece:
                break
            seen = seen[-64:] + piece
            # the role chunk has "content":"" ; the first token's chunk has "content":"<something>"
            if first is None and _has_content(seen):
                first = now
            if b"data: [DONE]" in seen:
                break
    if first is None:
        raise RuntimeError("the stream ended without content")
    return first - t_sent


def _has_content(data: bytes) -> bool:
    at = data.find(b'"content":"')
    while at >= 0:
        end = at + len(b'"content":"')
        if end < len(data) and data[end : end + 1] != b'"':
            return True
        at = data.find(b'"content":"', at + 1)
    return False


def grpc_timer(url: str) -> Callable[[int], float]:
    """A function timing one streamed ``Chat`` call over one plain (non-gevent) grpcio channel."""
    import grpc

    from loadgen.grpc_gen.chat.v1 import chat_pb2
    from loadgen.wire import grpc as grpc_wire

    address = url.split("://", 1)[1].rstrip("/")
    channel = grpc.insecure_channel(address)
    chat = channel.unary_stream(
        grpc_wire.CHAT_METHOD,
        request_serializer=chat_pb2.ChatRequest.SerializeToString,
        response_deserializer=chat_pb2.ChatChunk.FromString,
    )

    def one(max_tokens: int) -> float:
        request = grpc_wire.encode_request(_request(max_tokens))
        t_sent = time.perf_counter()
        first: float | None = None
        for chunk in chat(request, timeout=CALL_TIMEOUT_S):
            if first is None and chunk.text:
                first = time.perf_counter()
        if first is None:
            raise RuntimeError("the stream ended without content")
        return first - t_sent

    return one


class _AmqpTurn:
    """The first-content time and the end of one request's reply stream (asyncio side)."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.failed = False
        self.done = asyncio.Event()

    def feed(self, at: float, body: bytes) -> None:
        data = json.loads(body)
        if data.get("error"):
            self.failed = True
        elif self.first is None and data.get("text"):
            self.first = at
        if data.get("final") or data.get("error"):
            self.done.set()


async def amqp_samples(url: str, max_tokens: int, deadline: float) -> tuple[list[float], int]:
    """Streamed turns through the broker with plain aio-pika until ``deadline`` (perf_counter)."""
    import aio_pika

    from loadgen.wire import amqp as amqp_wire

    broker, queue = amqp_wire.split_target(url)
    body = amqp_wire.encode_request(_request(max_tokens))
    samples: list[float] = []
    failures = 0
    turns: dict[str, _AmqpTurn] = {}

    async def on_reply(message: Any) -> None:
        at = time.perf_counter()  # before the body is decoded
        turn = turns.get(message.correlation_id or "")
        if turn is not None:
            turn.feed(at, message.body)

    connection = await aio_pika.connect(broker, timeout=CALL_TIMEOUT_S)
    async with connection:
        channel = await connection.channel()
        replies = await channel.declare_queue(f"loadgen.floor.{uuid.uuid4().hex}", exclusive=True, auto_delete=True)
        await replies.consume(on_reply, no_ack=True)
        while time.perf_counter() < deadline:
            cid = uuid.uuid4().hex
            turn = turns[cid] = _AmqpTurn()
            message = aio_pika.Message(body, correlation_id=cid, reply_to=replies.name, expiration=CALL_TIMEOUT_S)
            t_sent = time.perf_counter()
            try:
                await channel.default_exchange.publish(message, routing_key=queue)
                await asyncio.wait_for(turn.done.wait(), CALL_TIMEOUT_S)
            except Exception:
                turn.failed = True
            finally:
                turns.pop(cid, None)
            if turn.failed or turn.first is None:
                failures += 1
            else:
                samples.append(turn.first - t_sent)
            await asyncio.sleep(0.05)
    return samples, failures


def measure(transport: str, url: str, *, duration_s: float, max_tokens: int, pause_s: float = 0.05) -> dict[str, Any]:
    """Time streamed turns one after another for ``duration_s`` seconds; TTFT samples in milliseconds."""
    deadline = time.perf_counter() + duration_s
    if transport == "amqp":
        samples, failures = asyncio.run(amqp_samples(url, max_tokens, deadline))
    else:
        one: Callable[[int], float] = (lambda n: rest_ttft(url, n)) if transport == "rest" else grpc_timer(url)
        samples, failures = [], 0
        while time.perf_counter() < deadline:
            try:
                samples.append(one(max_tokens))
            except Exception:
                failures += 1
            time.sleep(pause_s)
    return {"transport": transport, "ttft_ms": [round(s * 1000.0, 3) for s in samples], "failures": failures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadgen.bench.floor", description=__doc__)
    parser.add_argument("--transport", choices=("rest", "grpc", "amqp"), required=True)
    parser.add_argument("--url", required=True, help="the server's URL for that transport")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds to keep timing (default 10)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before the first turn")
    parser.add_argument("--max-tokens", type=int, default=20)
    args = parser.parse_args(argv)
    if args.delay > 0:
        time.sleep(args.delay)
    result = measure(args.transport, args.url, duration_s=args.duration, max_tokens=args.max_tokens)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
