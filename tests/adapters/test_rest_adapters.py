"""REST adapters end to end: each shipped REST profile against a service of its API on loopback, each reply format,
and the failures a service can cause, each as the failure kind the built-in transports give it."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadgen.errors import ConfigError, Overloaded, ProtocolError, ServerError, TurnTimeout
from loadgen.server.app import RunningServer, run_in_thread
from loadgen.server.config import ServerConfig, SimEngineConfig
from loadgen.transports import make_transport
from loadgen.transports.base import TransportConfig
from loadgen.types import ChatMessage, ChatRequest, Reply
from tests.adapters.conftest import adapter_transport, write_adapter
from tests.adapters.rest_servers import ProfileServer
from tests.transports.conftest import ScriptServer
from tests.transports.test_rest import END, head, piece, whole

FACT = "My booking code is QX4821."
QUESTION = "What was my booking code again?"
KEY = "sk-adapter-secret-42"


def first_turn(*, stream: bool = True) -> ChatRequest:
    """A turn that plants a fact (:func:`second_turn` asks about it)."""
    return ChatRequest(messages=(ChatMessage("system", "Be brief."), ChatMessage("user", FACT)), max_tokens=24,
                       stream=stream)  # fmt: skip


def second_turn(first: ChatRequest, reply: Reply, *, server_history: bool = False) -> ChatRequest:
    if server_history:
        return dataclasses.replace(first, messages=(ChatMessage("user", QUESTION),))
    messages = (*first.messages, ChatMessage("assistant", reply.text), ChatMessage("user", QUESTION))
    return dataclasses.replace(first, messages=messages)


def assert_streamed(reply: Reply) -> None:
    assert len(reply.chunk_times) > 3
    ttft = reply.ttft_s()
    assert ttft is not None and 0 < ttft < reply.e2e_s()
    assert reply.chunk_times == sorted(reply.chunk_times)
    assert reply.inter_token_samples()


@pytest.fixture(scope="module")
def reference() -> Iterator[RunningServer]:
    server = run_in_thread(ServerConfig(rest_port=0, sim=SimEngineConfig(fixed=True, fixed_ttft_ms=5,
                                                                         fixed_itl_ms=1)))  # fmt: skip
    yield server
    server.stop()


@pytest.mark.parametrize("stream", [True, False])
def test_openai_profile_reads_what_the_built_in_rest_transport_reads(reference: RunningServer, stream: bool) -> None:
    url = reference.urls["rest"]
    adapter = adapter_transport("openai", url)
    built_in = make_transport("rest", TransportConfig(target=url))
    try:
        first = first_turn(stream=stream)
        ours, theirs = adapter.send(first), built_in.send(first)
        assert (ours.text, ours.usage, len(ours.chunk_times)) == (theirs.text, theirs.usage, len(theirs.chunk_times))
        answer = adapter.send(second_turn(first, ours))
        assert "QX4821" in answer.text
        if stream:
            assert_streamed(ours)
    finally:
        adapter.close()
        built_in.close()


def test_ollama_profile_streams_ndjson(profile_server: ProfileServer) -> None:
    transport = adapter_transport("ollama", profile_server.url, model="llama3.2")
    try:
        first = first_turn()
        reply = transport.send(first)
        assert_streamed(reply)
        assert reply.usage is not None and reply.usage.completion_tokens == len(reply.chunk_times)
        seen = profile_server.requests[-1]
        assert seen.path == "/api/chat"
        assert seen.body == {
            "model": "llama3.2",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": FACT}],
            "stream": True,
            "options": {"num_predict": 24},
        }
        assert "authorization" not in seen.headers  # no key set: no header
        answer = transport.send(second_turn(first, reply))
        assert "QX4821" in answer.text
        whole_reply = transport.send(dataclasses.replace(first, stream=False))
        assert whole_reply.text == reply.text
        assert len(whole_reply.chunk_times) == 1
    finally:
        transport.close()


def test_anthropic_profile_reads_named_events_and_sends_the_key(profile_server: ProfileServer) -> None:
    transport = adapter_transport("anthropic", profile_server.url, api_key=KEY)
    try:
        first = first_turn()
        reply = transport.send(first)
        assert_streamed(reply)
        seen = profile_server.requests[-1]
        assert seen.path == "/v1/messages"
        assert seen.headers["x-api-key"] == KEY
        assert "authorization" not in seen.headers
        assert seen.body["system"] == "Be brief."
        assert seen.body["messages"] == [{"role": "user", "content": FACT}]
        assert reply.usage is not None
        # the words of the system prompt and the message, and one token a word
        assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (7, len(reply.chunk_times))
        answer = transport.send(second_turn(first, reply))
        assert "QX4821" in answer.text
        whole_reply = transport.send(dataclasses.replace(first, stream=False))
        assert whole_reply.text == reply.text  # content[*].text joined
    finally:
        transport.close()


def test_rasa_profile_keeps_the_history_on_the_service(profile_server: ProfileServer) -> None:
    transport = adapter_transport("rasa-rest", profile_server.url)
    try:
        first = ChatRequest(messages=(ChatMessage("user", FACT),), session_id="conv-7", stream=False)
        reply = transport.send(first)
        assert reply.text.endswith("\nAnything else?")
        assert profile_server.requests[-1].body == {"sender": "conv-7", "message": FACT}
        answer = transport.send(second_turn(first, reply, server_history=True))
        assert "QX4821" in answer.text
        assert profile_server.requests[-1].body == {"sender": "conv-7", "message": QUESTION}
    finally:
        transport.close()


PLAIN = """
name: plain
protocol: rest
history: {item: "{content}"}
request:
  path: /plain
  body: {history: "{history}", limit: "{max_tokens}"}
reply:
  format: text
"""


def test_plain_chunked_text(tmp_path: Path, profile_server: ProfileServer) -> None:
    transport = adapter_transport(str(write_adapter(tmp_path, PLAIN)), profile_server.url)
    try:
        reply = transport.send(ChatRequest(messages=(ChatMessage("user", "Hello there"),), max_tokens=12))
        assert_streamed(reply)
        assert len(reply.text.split()) == 12
    finally:
        transport.close()


# -- failures, from a scripted server ------------------------------------------------------------------------------

NDJSON_HEAD = head(content_type="application/x-ndjson")


def ndjson(content: str, *, done: bool = False) -> bytes:
    return piece(f'{{"message": {{"content": "{content}"}}, "done": {str(done).lower()}}}\n')


@pytest.mark.parametrize(
    ("script", "error", "reason"),
    [
        ([whole(500, '{"error": "out of memory"}')], ServerError, "HTTP 500: out of memory"),
        ([whole(429, "slow down")], Overloaded, "HTTP 429: slow down"),
        ([whole(503, "")], Overloaded, "HTTP 503: X"),
        ([NDJSON_HEAD, ndjson("Hel"), piece("{not json\n"), END], ProtocolError, "malformed NDJSON line"),
        ([NDJSON_HEAD, ndjson("Hel"), ndjson("lo"), END], ProtocolError,
         "stream ended early: the body ended before the field `done`"),
        ([NDJSON_HEAD, ndjson("Hel"), ndjson("lo"), "close"], ProtocolError, "stream ended early"),
        ([NDJSON_HEAD, ndjson("Hel"), piece('{"error": "model unloaded"}\n'), END], ServerError,
         "stream error: model unloaded"),
        ([NDJSON_HEAD, piece('{"msg": "Hi", "done": true}\n'), END], ProtocolError,
         "no part of the reply had the text field `message.content`"),
        ([whole(200, '{"message": {"content": "Hi"}, "done": true}')], None, "Hi"),
    ],
)  # fmt: skip
def test_ollama_failures_map_to_their_kinds(
    http_server: ScriptServer, script: list[bytes | str], error: type[Exception] | None, reason: str
) -> None:
    transport = adapter_transport("ollama", http_server.route(script))
    try:
        first = first_turn()
        if error is None:
            assert transport.send(first).text == reason
            return
        with pytest.raises(error) as info:
            transport.send(first)
        assert type(info.value) is error
        assert reason in str(info.value)
    finally:
        transport.close()


def anthropic_event(name: str, data: str) -> bytes:
    return piece(f"event: {name}\ndata: {data}\n\n")


@pytest.mark.parametrize(
    ("events", "error", "reason"),
    [
        ([anthropic_event("error", '{"error": {"type": "overloaded_error", "message": "Overloaded"}}')], Overloaded,
         "stream error: Overloaded"),
        ([anthropic_event("content_block_delta", '{"delta": {"text": "Hi"}}'),
          anthropic_event("error", '{"type": "error", "error": {"type": "api_error", "message": "Internal"}}')],
         ServerError, "stream error: Internal"),
        ([anthropic_event("content_block_delta", '{"delta": {"text": "Hi"}}')], ProtocolError,
         "stream ended early: the body ended before the event 'message_stop'"),
    ],
)  # fmt: skip
def test_anthropic_failures_map_to_their_kinds(
    http_server: ScriptServer, events: list[bytes], error: type[Exception], reason: str
) -> None:
    transport = adapter_transport("anthropic", http_server.route([head(), *events, END]))
    try:
        with pytest.raises(error) as info:
            transport.send(first_turn())
        assert type(info.value) is error
        assert str(info.value) == reason
    finally:
        transport.close()


def test_a_missing_field_in_a_whole_reply_is_a_protocol_error(http_server: ScriptServer) -> None:
    transport = adapter_transport("rasa-rest", http_server.route([whole(200, '{"text": "not a list"}')]))
    try:
        with pytest.raises(ProtocolError, match=r"no part of the reply had the text field `\$\[\*\]\.text`"):
            transport.send(ChatRequest(messages=(ChatMessage("user", "Hi"),), session_id="s"))
    finally:
        transport.close()


def test_a_silent_service_times_out_within_the_turn_timeout(http_server: ScriptServer) -> None:
    transport = adapter_transport("ollama", http_server.route([NDJSON_HEAD, ndjson("Hel"), "hang"]))
    try:
        started = time.perf_counter()
        with pytest.raises(TurnTimeout):
            transport.send(first_turn(), timeout=0.5)
        assert time.perf_counter() - started < 5
    finally:
        transport.close()


def test_a_dribbling_service_ends_at_the_turn_deadline(http_server: ScriptServer) -> None:
    dribble = [NDJSON_HEAD] + [step for _ in range(200) for step in (ndjson("x"), 0.05)]
    transport = adapter_transport("ollama", http_server.route(dribble))
    try:
        with pytest.raises(TurnTimeout, match="turn exceeded its timeout"):
            transport.send(first_turn(), timeout=0.6)
    finally:
        transport.close()


def test_the_key_never_appears_in_a_reason(http_server: ScriptServer) -> None:
    echo = whole(401, f'{{"error": {{"message": "bad key {KEY}"}}}}')
    transport = adapter_transport("anthropic", http_server.route([echo]), api_key=KEY)
    try:
        with pytest.raises(ServerError) as info:
            transport.send(first_turn())
        assert KEY not in str(info.value)
        assert "bad key ***" in str(info.value)
    finally:
        transport.close()


def test_a_secret_the_body_needs_must_be_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = PLAIN.replace('limit: "{max_tokens}"', 'token: "{env:PLAIN_TOKEN}"')
    path = write_adapter(tmp_path, text)
    monkeypatch.delenv("PLAIN_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="adapter 'plain' sends \\{env:PLAIN_TOKEN\\} in its request: set the "
                                          "environment variable PLAIN_TOKEN"):  # fmt: skip
        adapter_transport(str(path), "http://127.0.0.1:9")


def test_the_transport_needs_an_adapter() -> None:
    with pytest.raises(ConfigError, match="the adapter-rest transport needs --adapter FILE"):
        make_transport("adapter-rest", TransportConfig(target="http://127.0.0.1:9"))
    with pytest.raises(ConfigError, match="does not suit transport 'adapter-rest'"):
        adapter_transport("ollama", "grpc://127.0.0.1:9")
