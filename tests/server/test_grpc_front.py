"""The gRPC front against real servers on loopback, spoken to with the committed generated stubs (no transport).

Wire shape of Chat and Complete, session and client history, the error statuses of the front contract,
client cancellation freeing the engine slot, the health service, server reflection, binding and stopping.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from loadgen.errors import ConfigError
from loadgen.grpc_gen.chat.v1 import chat_pb2, chat_pb2_grpc
from loadgen.server.app import RunningServer
from loadgen.server.config import ServerConfig, SimEngineConfig
from loadgen.server.grpc_front import SERVICE_NAME, bearer_key, bind_address, client_url
from loadgen.wire.grpc import decode_request
from tests.grpc_server import grpc_server


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with grpc_server() as running:
        yield running


@pytest.fixture
def start_grpc_server() -> Iterator[Callable[..., RunningServer]]:
    servers: list[RunningServer] = []

    def start(**fields: Any) -> RunningServer:
        running = grpc_server(**fields)
        servers.append(running)
        return running

    yield start
    for running in servers:
        running.stop()
        assert not running.running, "the server thread did not stop"


def address(running: RunningServer) -> str:
    return running.urls["grpc"].removeprefix("grpc://")


@pytest.fixture
def channel(server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(address(server)) as ch:
        yield ch


def stub_for(ch: grpc.Channel) -> Any:
    return chat_pb2_grpc.ChatServiceStub(ch)


def request(*contents: str, **fields: Any) -> chat_pb2.ChatRequest:
    """The contents alternate user / assistant, starting with user."""
    roles = ("user", "assistant")
    messages = [chat_pb2.ChatMessage(role=roles[i % 2], content=c) for i, c in enumerate(contents)]
    return chat_pb2.ChatRequest(messages=messages, **fields)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# -- the URL, binding --------------------------------------------------------------------------------------------


def test_start_returns_the_bound_loopback_url(server: RunningServer) -> None:
    url = server.urls["grpc"]
    match = re.fullmatch(r"grpc://127\.0\.0\.1:(\d+)", url)
    assert match, url
    assert int(match.group(1)) > 0
    assert "rest" not in server.urls


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "grpc://127.0.0.1:5"),
        ("0.0.0.0", "grpc://127.0.0.1:5"),
        ("", "grpc://127.0.0.1:5"),
        ("::", "grpc://[::1]:5"),
        ("::1", "grpc://[::1]:5"),
        ("[::1]", "grpc://[::1]:5"),
        ("example.internal", "grpc://example.internal:5"),
    ],
)
def test_client_url(host: str, url: str) -> None:
    assert client_url(host, 5) == url


def test_bind_address() -> None:
    assert bind_address("127.0.0.1", 0) == "127.0.0.1:0"
    assert bind_address("::", 7) == "[::]:7"
    assert bind_address("[::1]", 7) == "[::1]:7"


def test_a_taken_port_is_a_config_error(server: RunningServer) -> None:
    port = int(server.urls["grpc"].rsplit(":", 1)[1])
    with pytest.raises(ConfigError, match="cannot listen"):
        grpc_server(grpc_port=port).stop()


# -- Chat (streaming) and Complete (unary) -------------------------------------------------------------------------


def test_chat_streams_one_message_per_chunk_then_usage(channel: grpc.Channel) -> None:
    chunks = list(stub_for(channel).Chat(request("Hello there, tell me about Lisbon."), timeout=10))
    assert len(chunks) >= 2
    *body, last = chunks
    assert all(c.text and c.tokens >= 1 for c in body)
    assert all(not c.finish_reason and not c.HasField("usage") for c in body)
    assert last.text == "" and last.finish_reason in ("stop", "length")
    assert last.HasField("usage")
    assert last.usage.completion_tokens == sum(c.tokens for c in body)
    assert last.usage.prompt_tokens > 0


def test_complete_returns_the_whole_reply(channel: grpc.Channel) -> None:
    stub = stub_for(channel)
    message = request("Hello there, tell me about Lisbon.", max_tokens=12)
    streamed = "".join(c.text for c in stub.Chat(message, timeout=10))
    whole = stub.Complete(message, timeout=10)
    assert whole.text == streamed  # the responder is deterministic
    assert whole.usage.completion_tokens == 12
    assert whole.finish_reason == "length"


def test_max_tokens_is_honoured_and_zero_means_the_server_default(channel: grpc.Channel) -> None:
    stub = stub_for(channel)
    few = list(stub.Chat(request("Tell me a long story.", max_tokens=3), timeout=10))
    assert few[-1].usage.completion_tokens == 3 and few[-1].finish_reason == "length"
    default = stub.Complete(request("Tell me a long story."), timeout=10)
    assert default.usage.completion_tokens == ServerConfig().default_max_tokens


def test_decode_request_maps_the_fields() -> None:
    message = request("hi", "hello", "again", model="m1", max_tokens=5, session_id="s-1")
    converted = decode_request(message, stream=False, default_max_tokens=64)
    assert [m.role for m in converted.messages] == ["user", "assistant", "user"]
    assert converted.messages[2].content == "again"
    assert (converted.model, converted.max_tokens, converted.session_id, converted.stream) == ("m1", 5, "s-1", False)
    bare = decode_request(request("hi"), stream=True, default_max_tokens=64)
    assert bare.session_id is None and bare.max_tokens == 64 and bare.stream


# -- history modes ------------------------------------------------------------------------------------------------


def test_server_history_mode_keeps_the_conversation(channel: grpc.Channel) -> None:
    stub = stub_for(channel)
    stub.Complete(request("My booking code is QX4821.", session_id="sess-a", max_tokens=8), timeout=10)
    probe = "".join(
        c.text for c in stub.Chat(request("What was my booking code again?", session_id="sess-a"), timeout=10)
    )
    assert "QX4821" in probe
    other = stub.Complete(request("What was my booking code again?", session_id="sess-b"), timeout=10)
    assert "QX4821" not in other.text


def test_client_history_mode_uses_the_messages_sent(channel: grpc.Channel) -> None:
    stub = stub_for(channel)
    reply = stub.Complete(
        request("My booking code is ZZ1234.", "Noted.", "What was my booking code again?", max_tokens=40), timeout=10
    )
    assert "ZZ1234" in reply.text
    alone = stub.Complete(request("What was my booking code again?", max_tokens=40), timeout=10)
    assert "ZZ1234" not in alone.text


# -- errors -------------------------------------------------------------------------------------------------------


def status_of(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        result = call()
        if not isinstance(result, chat_pb2.ChatResponse):
            list(result)
    return info.value


@pytest.mark.parametrize("method", ["Chat", "Complete"])
def test_a_bad_request_is_invalid_argument(channel: grpc.Channel, method: str) -> None:
    rpc = getattr(stub_for(channel), method)
    err: Any = status_of(lambda: rpc(chat_pb2.ChatRequest(), timeout=10))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "messages" in err.details()
    err = status_of(lambda: rpc(request("hi", "a reply last"), timeout=10))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    err = status_of(lambda: rpc(request("hi", max_tokens=100000), timeout=10))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


#: one sequence at a time, none may wait, 50 ms a token: a second request while one runs is refused
ONE_SLOT = SimEngineConfig(max_batch=1, queue_limit=0, step_base_us=50_000, step_per_seq_us=0, prefill_us_per_token=0)


@pytest.mark.parametrize("method", ["Chat", "Complete"])
def test_engine_overload_is_resource_exhausted(start_grpc_server: Callable[..., RunningServer], method: str) -> None:
    running = start_grpc_server(sim=ONE_SLOT)
    with grpc.insecure_channel(address(running)) as ch:
        stub = stub_for(ch)
        busy = stub.Chat(request("Tell me a long story.", max_tokens=40), timeout=30)
        assert next(busy).text  # admitted and running
        rpc = getattr(stub, method)
        err: Any = status_of(lambda: rpc(request("hi"), timeout=10))
        busy.cancel()
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "queue full" in err.details()


def test_api_key_is_checked(start_grpc_server: Callable[..., RunningServer]) -> None:
    running = start_grpc_server(api_key="s3cret-key")
    with grpc.insecure_channel(address(running)) as ch:
        stub = stub_for(ch)
        for metadata in [(), (("authorization", "Bearer wrong"),), (("authorization", "s3cret-key-not"),)]:
            err: Any = status_of(lambda md=metadata: stub.Chat(request("hi"), timeout=10, metadata=md))
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "s3cret" not in err.details()
        ok = stub.Complete(request("hi"), timeout=10, metadata=(("authorization", "Bearer s3cret-key"),))
        assert ok.text


@pytest.mark.parametrize(
    ("metadata", "key"),
    [
        ([("authorization", "Bearer abc")], "abc"),
        ([("Authorization", "bearer  abc ")], "abc"),
        ([("authorization", b"Bearer abc")], "abc"),
        ([("authorization", "abc")], None),  # a bare key is no key: one rule on every front (loadgen.wire.auth)
        ([("authorization", "Basic abc")], None),
        ([("x-other", "Bearer abc")], None),
        ([("authorization", "Bearer ")], None),
        (None, None),
    ],
)
def test_bearer_key(metadata: list[tuple[str, str | bytes]] | None, key: str | None) -> None:
    assert bearer_key(metadata) == key


def test_an_unknown_method_is_unimplemented(channel: grpc.Channel) -> None:
    rpc = channel.unary_unary("/loadgen.chat.v1.ChatService/Nope")
    err: Any = status_of(lambda: rpc(b"", timeout=10))
    assert err.code() == grpc.StatusCode.UNIMPLEMENTED


# -- cancellation frees the engine slot -----------------------------------------------------------------------------


def test_client_cancellation_closes_the_stream(start_grpc_server: Callable[..., RunningServer]) -> None:
    running = start_grpc_server(sim=SimEngineConfig(fixed=True, fixed_ttft_ms=1, fixed_itl_ms=200))
    with grpc.insecure_channel(address(running)) as ch:
        call = stub_for(ch).Chat(request("Tell me a long story.", max_tokens=50), timeout=30)
        first = next(call)
        assert first.text
        assert running.stats()["service"]["active"] == 1
        call.cancel()
    assert wait_until(lambda: running.stats()["service"]["active"] == 0), running.stats()
    stats = running.stats()
    # cancelled while the engine was producing (the service counts that as failed) or between chunks
    assert stats["service"]["cancelled"] + stats["service"]["failed"] == 1
    assert stats["service"]["completed"] == 0
    assert stats["engine"]["running"] == 0  # the sim engine's slot is free
    assert stats["engine"]["tokens_out"] < 10  # the engine stopped producing


def test_a_passed_deadline_frees_the_slot_too(start_grpc_server: Callable[..., RunningServer]) -> None:
    running = start_grpc_server(sim=SimEngineConfig(fixed=True, fixed_ttft_ms=1, fixed_itl_ms=100))
    with grpc.insecure_channel(address(running)) as ch:
        err: Any = status_of(lambda: stub_for(ch).Chat(request("Tell me a long story.", max_tokens=50), timeout=0.3))
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert wait_until(lambda: running.stats()["service"]["active"] == 0), running.stats()
    assert running.stats()["engine"]["running"] == 0


# -- health and reflection ------------------------------------------------------------------------------------------


def test_health_service_says_serving(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", SERVICE_NAME):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    err: Any = status_of(lambda: health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5))
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_and_describes_the_service(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = list(
        stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    )
    names = {s.name for s in responses[0].list_services_response.service}
    assert {SERVICE_NAME, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names
    # what grpcurl does next: fetch the file descriptors and build the service from them
    from google.protobuf.descriptor_pool import DescriptorPool

    pool = DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    service = pool.FindServiceByName(SERVICE_NAME)
    methods = {m.name: m for m in service.methods}
    assert set(methods) == {"Chat", "Complete"}
    assert methods["Chat"].server_streaming and not methods["Complete"].server_streaming
    assert methods["Chat"].output_type.full_name == "loadgen.chat.v1.ChatChunk"
    assert {f.name for f in methods["Chat"].input_type.fields} == {"model", "messages", "max_tokens", "session_id"}


# -- stopping -------------------------------------------------------------------------------------------------------


def test_stop_lets_an_in_flight_reply_finish() -> None:
    running = grpc_server(sim=SimEngineConfig(fixed=True, fixed_ttft_ms=1, fixed_itl_ms=20))
    outcome: dict[str, Any] = {}
    with grpc.insecure_channel(address(running)) as ch:
        call = stub_for(ch).Chat(request("Tell me a long story.", max_tokens=15), timeout=10)
        first = next(call)  # in flight: ~300 ms to go, within the front's 1 s grace
        stopper = threading.Thread(target=running.stop)
        t0 = time.monotonic()
        stopper.start()
        try:
            outcome["rest"] = list(call)
        except grpc.RpcError as exc:  # pragma: no cover - the failure we test against
            outcome["error"] = exc
        stopper.join(10)
        elapsed = time.monotonic() - t0
    assert "error" not in outcome, outcome
    assert first.text and outcome["rest"][-1].usage.completion_tokens == 15
    assert not running.running
    assert elapsed < 5


def _body_tokens(running: RunningServer, req: chat_pb2.ChatRequest) -> tuple[list[chat_pb2.ChatChunk], Any]:
    with grpc.insecure_channel(address(running)) as ch:
        *body, last = list(stub_for(ch).Chat(req, timeout=10))
    return body, last


def test_a_paced_stream_stays_one_message_per_token(start_grpc_server: Callable[..., RunningServer]) -> None:
    """``--grpc-coalesce ready`` (the default): tokens 20 ms apart each had to be waited for, so each goes alone."""
    running = start_grpc_server(sim=SimEngineConfig(fixed=True, fixed_ttft_ms=20, fixed_itl_ms=20))
    assert running.config.grpc_coalesce == "ready"
    body, last = _body_tokens(running, request("Tell me a story.", max_tokens=8))
    assert [c.tokens for c in body] == [1] * 8 and last.usage.completion_tokens == 8


def test_a_burst_from_the_engine_comes_in_fewer_messages_with_every_token(
    start_grpc_server: Callable[..., RunningServer],
) -> None:
    zero = SimEngineConfig(step_base_us=0, step_per_seq_us=0, prefill_us_per_token=0)
    coalesced, one_each = (
        _body_tokens(start_grpc_server(sim=zero, grpc_coalesce=mode), request("Tell me a story.", max_tokens=64))
        for mode in ("ready", "off")
    )
    assert [c.tokens for c in one_each[0]] == [1] * 64
    assert len(coalesced[0]) < 64 and sum(c.tokens for c in coalesced[0]) == 64 == coalesced[1].usage.completion_tokens
    assert "".join(c.text for c in coalesced[0]) == "".join(c.text for c in one_each[0])


@pytest.mark.parametrize(("coalesce", "tokens"), [("ready", [3, 2]), ("off", [1, 1, 1, 1, 1])])
def test_chunks_ready_at_once_share_a_message(
    start_grpc_server: Callable[..., RunningServer], coalesce: str, tokens: list[int]
) -> None:
    """Two bursts with a pause between: the chunks of a burst share a ChatChunk (its text theirs joined, its tokens
    their sum), the one after the pause is not held back; ``off``: one ChatChunk per chunk."""
    from tests.server.test_amqp_front import Bursts

    running = start_grpc_server(grpc_coalesce=coalesce)
    service = running.service
    assert service is not None

    async def bursts(*_: Any, **__: Any) -> Any:
        return Bursts(["Hel", "lo", " wor"], ["ld", "!"])

    service.chat = bursts  # type: ignore[method-assign]
    body, last = _body_tokens(running, request("Hi"))
    assert [c.tokens for c in body] == tokens
    assert "".join(c.text for c in body) == "Hello world!" and last.finish_reason == "stop"
