"""The status contract end to end: the same server event is the same client failure kind over REST, gRPC and AMQP.

For every row of the status table (loadgen.wire.status), the REAL fronts of one reference server (and a real
RabbitMQ broker for AMQP) answer a real transport's request; the event is made on cue by a test engine
(tests/wire/scripted_engine.py) or by the request itself (a bad request, a wrong key), before the reply and in
the middle of it, streamed and whole. The expected kinds and codes are written out here, not read from the table.
Also here: the one bearer rule (loadgen.wire.auth), held to every front with raw clients.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest

from loadgen.errors import Overloaded, ServerError, TransportError
from loadgen.grpc_gen.chat.v1 import chat_pb2
from loadgen.server.app import RunningServer, run_in_thread
from loadgen.server.config import ServerConfig
from loadgen.transports import make_transport
from loadgen.transports.base import TransportConfig
from loadgen.types import ChatMessage, ChatRequest
from loadgen.wire.amqp import CONTENT_TYPE, SENT_AT_HEADER, decode_chunk, encode_request, split_target
from tests.amqp_broker import BROKER_URL, RawAmqp, unique_queue
from tests.conftest import broker_available, require_broker
from tests.wire.scripted_engine import ScriptedEngine, cue

pytestmark = pytest.mark.e2e

KEY = "sk-status-contract"
TRANSPORTS = ["rest", "grpc", "amqp"]

#: row -> (client failure kind, the code each transport reports)
EXPECTED: dict[str, tuple[type[TransportError], dict[str, str | int]]] = {
    "BAD_REQUEST": (ServerError, {"rest": 400, "grpc": "INVALID_ARGUMENT", "amqp": "bad_request"}),
    "UNAUTHORIZED": (ServerError, {"rest": 401, "grpc": "UNAUTHENTICATED", "amqp": "unauthorized"}),
    "OVERLOADED": (Overloaded, {"rest": 429, "grpc": "RESOURCE_EXHAUSTED", "amqp": "overloaded"}),
    "ENGINE_STOPPED": (ServerError, {"rest": 500, "grpc": "ABORTED", "amqp": "engine_stopped"}),
    "INTERNAL": (ServerError, {"rest": 500, "grpc": "INTERNAL", "amqp": "internal"}),
}

#: server event -> (its row, the user's message, the key the client sends, max_tokens)
EVENTS: dict[str, tuple[str, str, str, int]] = {
    "bad request": ("BAD_REQUEST", "Hello there.", KEY, 5000),  # over the service's 4096
    "wrong key": ("UNAUTHORIZED", "Hello there.", "sk-wrong-key", 16),
    "overloaded at admission": ("OVERLOADED", f"Hello {cue('overloaded')}", KEY, 16),
    "overloaded mid-reply": ("OVERLOADED", f"Hello {cue('overloaded', 2)}", KEY, 16),
    "engine stopped mid-reply": ("ENGINE_STOPPED", f"Hello {cue('stop', 2)}", KEY, 16),
    "crash at admission": ("INTERNAL", f"Hello {cue('crash')}", KEY, 16),
    "crash mid-reply": ("INTERNAL", f"Hello {cue('crash', 2)}", KEY, 16),
}


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    config = ServerConfig(
        rest_port=0,
        grpc_port=0,
        amqp_url=BROKER_URL if broker_available() else None,  # without: the AMQP cases skip (fail in CI)
        amqp_queue=unique_queue("loadgen.status"),
        api_key=KEY,
    )
    with run_in_thread(config, engine=ScriptedEngine()) as running:
        yield running


def _url(server: RunningServer, transport: str) -> str:
    if transport == "amqp":
        require_broker()
    return server.urls[transport]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("event", list(EVENTS))
def test_the_same_server_event_is_the_same_failure_kind(
    server: RunningServer, event: str, stream: bool, transport: str
) -> None:
    row, text, key, max_tokens = EVENTS[event]
    kind, codes = EXPECTED[row]
    client = make_transport(transport, TransportConfig(target=_url(server, transport), api_key=key, timeout_s=15))
    try:
        with pytest.raises(TransportError) as info:
            client.send(ChatRequest((ChatMessage("user", text),), max_tokens=max_tokens, stream=stream))
    finally:
        client.close()
    err = info.value
    assert type(err) is kind, f"{event} over {transport}: {type(err).__name__}: {err.reason}"
    assert isinstance(err, ServerError) and err.code == codes[transport], err.reason
    assert KEY not in err.reason


def test_a_healthy_turn_passes_on_every_transport(server: RunningServer) -> None:
    for transport in TRANSPORTS:
        if transport == "amqp" and not broker_available():
            continue
        client = make_transport(transport, TransportConfig(target=server.urls[transport], api_key=KEY, timeout_s=15))
        try:
            assert client.send(ChatRequest((ChatMessage("user", "Hello there."),), max_tokens=8)).text
        finally:
            client.close()


# -- the one bearer rule, on every front -----------------------------------------------------------------------

#: what a client puts in the authorization header / metadata / message header -> does the front take the key
HEADERS: list[tuple[str | None, bool]] = [
    (f"Bearer {KEY}", True),
    (f"bearer {KEY}", True),
    (f"BEARER  {KEY}", True),
    (KEY, False),  # a bare key is no key, on every front
    (f"Basic {KEY}", False),
    (f"Token {KEY}", False),
    ("Bearer sk-wrong-key", False),
    ("Bearer", False),
    (None, False),
]


def _rest_accepts(server: RunningServer, value: str | None) -> bool:
    headers = {"authorization": value} if value is not None else {}
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    response = httpx.post(server.urls["rest"] + "/v1/chat/completions", json=body, headers=headers, timeout=10)
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


def _grpc_accepts(server: RunningServer, value: str | None) -> bool:
    metadata = (("authorization", value),) if value is not None else ()
    with grpc.insecure_channel(server.urls["grpc"].split("://", 1)[1]) as channel:
        complete = channel.unary_unary(
            "/loadgen.chat.v1.ChatService/Complete",
            request_serializer=chat_pb2.ChatRequest.SerializeToString,
            response_deserializer=chat_pb2.ChatResponse.FromString,
        )
        message = chat_pb2.ChatRequest(messages=[chat_pb2.ChatMessage(role="user", content="hi")], max_tokens=4)
        try:
            complete(message, timeout=10, metadata=metadata)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAUTHENTICATED, exc  # type: ignore[attr-defined]
            return False
    return True


def _amqp_accepts(server: RunningServer, raw: RawAmqp, value: str | None) -> bool:
    _, queue = split_target(server.urls["amqp"])
    reply_to, collect = raw.reply_queue()
    headers: dict[str, Any] = {SENT_AT_HEADER: int(time.time() * 1000)}
    if value is not None:
        headers["authorization"] = value
    body = encode_request(ChatRequest((ChatMessage("user", "hi"),), max_tokens=4, stream=False))
    raw.publish(queue, body, correlation_id=uuid.uuid4().hex, reply_to=reply_to, content_type=CONTENT_TYPE,
                headers=headers, expiration=10)  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        finals = [c for c in (decode_chunk(m.body) for m in collect(0.02)) if c.final]
        if finals:
            error = finals[0].error
            assert error is None or error.code == "unauthorized", error
            return error is None
    raise AssertionError("no reply from the AMQP front")


@pytest.mark.parametrize(("value", "accepted"), HEADERS)
def test_one_bearer_rule_on_every_front(server: RunningServer, value: str | None, accepted: bool) -> None:
    assert _rest_accepts(server, value) is accepted
    assert _grpc_accepts(server, value) is accepted
    require_broker()
    raw = RawAmqp()
    try:
        assert _amqp_accepts(server, raw, value) is accepted
    finally:
        raw.close()
