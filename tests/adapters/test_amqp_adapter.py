"""AMQP adapters end to end: a service with its own JSON behind the real broker, chunked and single replies, a named
exchange, and failures as the AMQP transport files them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loadgen.errors import ConfigError, Overloaded, ProtocolError, TurnTimeout, Unroutable
from loadgen.types import ChatMessage, ChatRequest
from tests.adapters.amqp_example import ExampleAmqpService
from tests.adapters.conftest import FACT, QUESTION, adapter_transport, ask, assert_sixteen_streamed, write_variant
from tests.amqp_broker import BROKER_URL, unique_queue
from tests.conftest import REPO_ROOT, require_broker

pytestmark = pytest.mark.amqp
EXAMPLE = (REPO_ROOT / "scenarios" / "adapters" / "example-amqp.yaml").read_text()
KEY = "amqp-key-77"


@pytest.fixture(scope="module")
def service() -> Iterator[ExampleAmqpService]:
    require_broker()
    running = ExampleAmqpService(unique_queue("loadgen.test.adapter")).start()
    yield running
    running.stop()


def variant(folder: Path, *changes: tuple[str, str]) -> str:
    return write_variant(folder, EXAMPLE, *changes)


def test_the_example_profile_streams_chunks_and_keeps_the_history(service: ExampleAmqpService) -> None:
    transport = adapter_transport("example-amqp", f"{BROKER_URL}?queue={service.queue}", api_key=KEY)
    try:
        first = ask()
        reply = transport.send(first)
        assert_sixteen_streamed(reply)
        assert service.requests[-1] == {"text": FACT, "transcript": [], "limit": 16}
        assert service.headers[-1]["x-api-key"] == KEY
        messages = (*first.messages, ChatMessage("assistant", reply.text), ChatMessage("user", QUESTION))
        answer = transport.send(ChatRequest(messages=messages, max_tokens=16))
        assert "QX4821" in answer.text
        assert service.requests[-1]["transcript"] == [f"user: {FACT}", f"assistant: {reply.text}"]
        transport.send(ask(session_id="conv-3"))
        assert "QX4821" in transport.send(ask(QUESTION, session_id="conv-3")).text
    finally:
        transport.close()


def test_the_routing_key_comes_from_the_adapter(tmp_path: Path, service: ExampleAmqpService) -> None:
    path = variant(tmp_path, ("routing_key: support.chat.requests", f"routing_key: {service.queue}"))
    transport = adapter_transport(path, BROKER_URL)
    try:
        assert len(transport.send(ask()).chunk_times) == 16
    finally:
        transport.close()


def test_a_named_exchange(tmp_path: Path) -> None:
    require_broker()
    exchange = unique_queue("loadgen.test.exchange")
    running = ExampleAmqpService(unique_queue("loadgen.test.adapter"), exchange=exchange, routing_key="chat").start()
    path = variant(tmp_path, ('exchange: ""', f"exchange: {exchange}"), ("routing_key: support.chat.requests",
                                                                          "routing_key: chat"))  # fmt: skip
    transport = adapter_transport(path, BROKER_URL)
    try:
        assert len(transport.send(ask()).chunk_times) == 16
        missing = variant(tmp_path, ('exchange: ""', 'exchange: "no.such.exchange"'))
        nowhere = adapter_transport(missing, BROKER_URL)
        with pytest.raises(
            Unroutable, match=r"no exchange named 'no\.such\.exchange' on the broker at 127\.0\.0\.1:5672"
        ):
            nowhere.send(ask())
        unbound = variant(tmp_path, ('exchange: ""', f"exchange: {exchange}"), ("routing_key: support.chat.requests",
                                                                                 "routing_key: elsewhere"))  # fmt: skip
        nobody = adapter_transport(unbound, BROKER_URL)
        with pytest.raises(Unroutable, match=f"nothing is bound to routing key 'elsewhere' on exchange '{exchange}'"):
            nobody.send(ask())
        nowhere.close()
        nobody.close()
        assert len(transport.send(ask()).chunk_times) == 16  # the failed checks left the connection working
    finally:
        transport.close()
        running.stop()


def test_a_single_reply_message(tmp_path: Path, service: ExampleAmqpService) -> None:
    path = variant(tmp_path, ("chunked: true", "chunked: false"), ('x-api-key: "{api_key}"', "x-test-fault: single"))
    transport = adapter_transport(path, f"{BROKER_URL}?queue={service.queue}")
    try:
        reply = transport.send(ask())
        assert len(reply.chunk_times) == 1
        assert len(reply.text.split()) == 16
        assert reply.usage is not None and reply.usage.completion_tokens == 16
    finally:
        transport.close()


@pytest.mark.parametrize(
    ("fault", "error", "reason"),
    [
        ("overloaded", Overloaded, "error reply: queue full"),
        ("gap", ProtocolError, "reply stream broken: message 2 came where 1 was due"),
        ("malformed", ProtocolError, "malformed reply message: 'this is not JSON' is not JSON"),
        ("silent", TurnTimeout, "turn exceeded its timeout (0.8s) before the reply started"),
    ],
)
def test_failures_map_to_their_kinds(
    tmp_path: Path, service: ExampleAmqpService, fault: str, error: type[Exception], reason: str
) -> None:
    path = variant(tmp_path, ('x-api-key: "{api_key}"', f"x-test-fault: {fault}"))
    transport = adapter_transport(path, f"{BROKER_URL}?queue={service.queue}")
    try:
        with pytest.raises(error) as info:
            transport.send(ask(), timeout=0.8)
        assert type(info.value) is error
        assert str(info.value) == reason
    finally:
        transport.close()


def test_nobody_consuming_is_unroutable_at_once() -> None:
    require_broker()
    transport = adapter_transport("example-amqp", f"{BROKER_URL}?queue={unique_queue('loadgen.test.nobody')}")
    try:
        with pytest.raises(Unroutable, match="no queue named"):
            transport.send(ask(), timeout=5)
    finally:
        transport.close()


def test_the_broker_password_never_appears_in_a_reason() -> None:
    with pytest.raises(ConfigError) as info:
        adapter_transport("example-amqp", "amqp://guest:s3cr3t@127.0.0.1:5999/").preflight(2.0)
    assert "s3cr3t" not in str(info.value)
