"""gRPC adapters end to end: a service with its own .proto on loopback, its types from the file or from reflection,
server streaming and unary, and failures as the gRPC transport's status table files them."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadgen.adapters import load_adapter, with_adapter
from loadgen.errors import ConfigError, ConnectError, Overloaded, ProtocolError, TurnTimeout
from loadgen.transports import preflight
from loadgen.transports.base import TransportConfig
from loadgen.types import ChatMessage
from tests.adapters.conftest import FACT, QUESTION, adapter_transport, ask, assert_sixteen_streamed, write_variant
from tests.adapters.grpc_example import PROTO, ExampleGrpcServer
from tests.conftest import REPO_ROOT

EXAMPLE = (REPO_ROOT / "scenarios" / "adapters" / "example-grpc.yaml").read_text()


def variant(folder: Path, *changes: tuple[str, str]) -> str:
    """The example adapter with ``changes`` made, its proto named by an absolute path."""
    return write_variant(folder, EXAMPLE, ("proto: example_chat.proto", f"proto: {PROTO}"), *changes)


def test_the_example_profile_streams_and_keeps_the_context(example_grpc: ExampleGrpcServer) -> None:
    transport = adapter_transport("example-grpc", example_grpc.url)
    try:
        first = ask()
        reply = transport.send(first)
        assert_sixteen_streamed(reply)
        request = example_grpc.requests[-1]
        assert (request.prompt, request.max_output_tokens, request.conversation_id, len(request.context)) == (
            FACT, 16, "", 0)  # fmt: skip
        second = dataclasses.replace(first, messages=(*first.messages, ChatMessage("assistant", reply.text),
                                                      ChatMessage("user", QUESTION)))  # fmt: skip
        answer = transport.send(second)
        assert "QX4821" in answer.text
        context = example_grpc.requests[-1].context
        assert [(u.speaker, u.text) for u in context] == [("user", FACT), ("assistant", reply.text)]
        assert "authorization" not in example_grpc.metadata[-1]
    finally:
        transport.close()


def test_server_history_and_the_key_in_metadata(example_grpc: ExampleGrpcServer) -> None:
    transport = adapter_transport("example-grpc", example_grpc.url, api_key="k-123")
    try:
        transport.send(ask(session_id="conv-1"))
        assert "QX4821" in transport.send(ask(QUESTION, session_id="conv-1")).text
        assert example_grpc.requests[-1].conversation_id == "conv-1"
        assert example_grpc.metadata[-1]["authorization"] == "Bearer k-123"
    finally:
        transport.close()


def test_a_unary_method_is_one_whole_reply(tmp_path: Path, example_grpc: ExampleGrpcServer) -> None:
    path = variant(tmp_path, ("Assistant/AskStream", "Assistant/Ask"), ("text: piece", "text: answer"))
    transport = adapter_transport(path, example_grpc.url)
    try:
        reply = transport.send(ask())
        assert len(reply.chunk_times) == 1
        assert reply.chunk_times[0] == reply.t_done
        assert reply.usage is not None and reply.usage.completion_tokens == 16
        assert reply.text.startswith("I don't have that information.")
    finally:
        transport.close()


def test_types_from_the_servers_reflection(tmp_path: Path, example_grpc: ExampleGrpcServer) -> None:
    path = variant(tmp_path, (f"proto: {PROTO}", "reflection: true"))
    preflight("adapter-grpc", with_adapter(TransportConfig(target=example_grpc.url), load_adapter(path)))
    transport = adapter_transport(path, example_grpc.url)
    try:
        assert len(transport.send(ask()).chunk_times) == 16
    finally:
        transport.close()


@pytest.fixture(scope="module")
def no_reflection() -> Iterator[ExampleGrpcServer]:
    server = ExampleGrpcServer(reflection_on=False)
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("server", "changes", "reason"),
    [
        ("example_grpc", [("Assistant/AskStream", "Assistant/AskLater")],
         "server reflection: example.assistant.v1.Assistant has no method 'AskLater'"),
        ("example_grpc", [("Assistant/AskStream", "Helper/AskStream")],
         "server reflection: the server's reflection does not know 'example.assistant.v1.Helper'"),
        ("example_grpc", [("text: piece", "text: pieces")],
         "adapter 'example-grpc', reply.text: `pieces`: example.assistant.v1.AskDelta has no field `pieces`"),
        ("no_reflection", [], "offers no reflection service: give request.proto in the adapter instead"),
    ],
)  # fmt: skip
def test_reflection_that_does_not_fit_is_refused_before_the_run(
    tmp_path: Path, request: pytest.FixtureRequest, server: str, changes: list[tuple[str, str]], reason: str
) -> None:
    url = request.getfixturevalue(server).url
    path = variant(tmp_path, (f"proto: {PROTO}", "reflection: true"), *changes)
    with pytest.raises(ConfigError) as refused:
        preflight("adapter-grpc", with_adapter(TransportConfig(target=url), load_adapter(path)), timeout_s=5)
    assert reason in str(refused.value)
    transport = adapter_transport(path, url)
    try:
        with pytest.raises(ProtocolError) as failed:
            transport.send(ask())
        assert reason in str(failed.value)
    finally:
        transport.close()


def test_reflection_from_a_silent_target_is_left_to_the_turns(tmp_path: Path, free_port: int) -> None:
    path = variant(tmp_path, (f"proto: {PROTO}", "reflection: true"))
    preflight("adapter-grpc", with_adapter(TransportConfig(target=f"grpc://127.0.0.1:{free_port}"),
                                           load_adapter(path)), timeout_s=2)  # fmt: skip
    transport = adapter_transport(path, f"grpc://127.0.0.1:{free_port}", connect_timeout_s=1)
    try:
        with pytest.raises(ConnectError, match="UNAVAILABLE"):
            transport.send(ask(), timeout=3)
    finally:
        transport.close()


@pytest.mark.parametrize(
    ("fault", "timeout", "error", "reason"),
    [
        ("overloaded", 5.0, Overloaded, "RESOURCE_EXHAUSTED: queue full"),
        ("slow", 0.5, TurnTimeout, "DEADLINE_EXCEEDED: turn exceeded its timeout (0.5s) before the reply started"),
    ],
)
def test_status_codes_map_as_for_the_grpc_transport(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, example_grpc: ExampleGrpcServer, fault: str, timeout: float,
    error: type[Exception], reason: str,
) -> None:  # fmt: skip
    monkeypatch.setenv("GRPC_FAULT", fault)
    path = variant(tmp_path, ('    authorization: "Bearer {api_key}"', '    x-test-fault: "{env:GRPC_FAULT}"'))
    transport = adapter_transport(path, example_grpc.url)
    try:
        started = time.perf_counter()
        with pytest.raises(error) as info:
            transport.send(ask(), timeout=timeout)
        assert type(info.value) is error
        assert str(info.value) == reason
        assert time.perf_counter() - started < timeout + 2
    finally:
        transport.close()


def test_a_server_without_reflection_is_always_told_apart(tmp_path: Path, no_reflection: ExampleGrpcServer) -> None:
    """Asked with the question on its own stream message, grpcio could report its own INTERNAL ("Failed
    execute_batch") when the server's immediate UNIMPLEMENTED ended the call while the question was still being
    sent (seen in CI): asked 40 times over fresh channels, the answer is always the server's."""
    path = variant(tmp_path, (f"proto: {PROTO}", "reflection: true"))
    for _ in range(40):
        transport: Any = adapter_transport(path, no_reflection.url)
        try:
            with pytest.raises(ProtocolError, match="offers no reflection service"):
                transport._ask_reflection(5.0)
        finally:
            transport.close()
