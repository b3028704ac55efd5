"""A traced turn from the client into the reference server, on every transport: the request carries the turn
span's ``traceparent`` (HTTP headers, gRPC metadata, AMQP message headers) and the server's ``chat.serve`` span
shares its trace id with the turn span as its parent. Real servers on loopback (``loadgen serve --otel`` in a
thread), the AMQP front on the local RabbitMQ; spans collected by the SDK's in-memory exporter."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import ProxyTracerProvider, SpanKind, StatusCode

from loadgen.dialogues import ConversationFactory
from loadgen.dialogues.loader import load_dialogue
from loadgen.server.app import run_in_thread
from loadgen.server.config import ServerConfig, SimEngineConfig
from loadgen.server.main import OPTIONS, build_config
from loadgen.telemetry.serve_tracing import SERVE_SPAN, carrier_of
from loadgen.telemetry.tracing import CONVERSATION_SPAN, TURN_SPAN, TurnTracing
from loadgen.transports import make_transport
from loadgen.transports.base import TransportConfig
from loadgen.types import ChatMessage, ChatRequest
from tests.adapters.conftest import adapter_transport
from tests.amqp_broker import BROKER_URL, require_broker, unique_queue

EXPORTER = InMemorySpanExporter()
DIALOGUE = """\
name: traced
turns:
  - user: "Hello, I am Ada."
  - user: "I live in Lyon."
  - user: "Any news?"
  - user: "Where do I live?"
  - user: "What is my name?"
"""
TURNS = 5


def _provider() -> TracerProvider:
    """The process's tracer provider, exporting to :data:`EXPORTER` (set once: OpenTelemetry allows no other)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, ProxyTracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    assert isinstance(provider, TracerProvider)
    if not getattr(provider, "_loadgen_test_exporter", False):
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        provider._loadgen_test_exporter = True  # type: ignore[attr-defined]
    return provider


_DIALOGUE_FILE: list[Path] = []


@pytest.fixture
def spans(tmp_path: Path) -> Iterator[InMemorySpanExporter]:
    (tmp_path / "traced.yaml").write_text(DIALOGUE, encoding="utf-8")
    _DIALOGUE_FILE[:] = [tmp_path / "traced.yaml"]
    _provider()
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()


def _converse(transport_name: str, target: str, *, adapter: str | None = None, **config: Any) -> None:
    """The traced turns of one conversation over the named transport (or an adapter's); every span ended."""
    tracing = TurnTracing(_provider().get_tracer("test"), transport_name)
    dialogue = load_dialogue(_DIALOGUE_FILE[0])
    conversation = ConversationFactory([dialogue], seed=1).new(0)
    if adapter is not None:
        transport = adapter_transport(adapter, target, timeout_s=10.0, **config)
    else:
        transport = make_transport(transport_name, TransportConfig(target=target, timeout_s=10.0, **config))
    try:
        for turn in dialogue.turns:
            request = tracing.start_turn(conversation, turn, conversation.request(turn))
            assert request.trace_headers is not None and "traceparent" in request.trace_headers
            conversation.record(turn, transport.send(request, timeout=10.0), None)
            tracing.end_turn(_outcome(transport_name, turn.index), conversation.conversation_id)
    finally:
        transport.close()


def _outcome(transport: str, turn: int) -> Any:
    from loadgen.metrics.turns import TurnOutcome

    return TurnOutcome(transport=transport, dialogue="traced", turn=turn, reply=None)


def _wait_for(exporter: InMemorySpanExporter, name: str, count: int) -> list[ReadableSpan]:
    deadline = time.monotonic() + 10.0
    while True:
        found = [s for s in exporter.get_finished_spans() if s.name == name]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def _check_joined(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    """Each server span is the child of one client turn span, in its trace; returns the server spans."""
    turns = _wait_for(exporter, TURN_SPAN, TURNS)
    served = _wait_for(exporter, SERVE_SPAN, TURNS)
    (conversation,) = _wait_for(exporter, CONVERSATION_SPAN, 1)
    assert len(turns) == TURNS and len(served) == TURNS
    by_id = {s.context.span_id: s for s in turns}
    assert {s.parent.span_id for s in served if s.parent is not None} == set(by_id)
    for span in served:
        assert span.parent is not None and span.parent.is_remote
        client = by_id[span.parent.span_id]
        assert span.context.trace_id == client.context.trace_id == conversation.context.trace_id
        assert span.kind is SpanKind.SERVER and span.status.status_code is StatusCode.UNSET
        assert [e.name for e in span.events] == ["chat.admitted", "chat.first_token", "chat.done"]
        done = span.events[-1].attributes or {}
        assert done["chat.outcome"] == "completed" and int(str(done["chat.completion_tokens"])) > 0
        assert client.start_time is not None and span.start_time is not None and span.end_time is not None
        assert client.end_time is not None and client.start_time <= span.start_time <= span.end_time
    return served


def test_rest_carries_traceparent_and_the_server_span_joins_the_trace(spans: InMemorySpanExporter) -> None:
    with run_in_thread(ServerConfig(rest_port=0, otel=True)) as server:
        _converse("rest", server.urls["rest"])
        served = _check_joined(spans)
    assert all(dict(s.attributes or {})["chat.prompt_tokens"] for s in served)


def test_an_adapters_rest_carries_traceparent_too(spans: InMemorySpanExporter) -> None:
    with run_in_thread(ServerConfig(rest_port=0, otel=True)) as server:
        _converse("adapter-rest", server.urls["rest"], adapter="openai")
        _check_joined(spans)


def test_grpc_carries_traceparent_in_its_metadata(spans: InMemorySpanExporter) -> None:
    with run_in_thread(ServerConfig(rest_port=None, grpc_port=0, otel=True)) as server:
        _converse("grpc", server.urls["grpc"])
        _check_joined(spans)


@pytest.mark.amqp
def test_amqp_carries_traceparent_in_its_message_headers(spans: InMemorySpanExporter) -> None:
    require_broker()
    config = ServerConfig(rest_port=None, amqp_url=BROKER_URL, amqp_queue=unique_queue(), otel=True)
    with run_in_thread(config) as server:
        _converse("amqp", server.urls["amqp"], connect_timeout_s=5.0)
        _check_joined(spans)


def test_a_request_without_a_trace_context_starts_a_trace_and_a_refused_one_ends_in_error(
    spans: InMemorySpanExporter,
) -> None:
    config = ServerConfig(rest_port=0, otel=True, sim=SimEngineConfig(fixed=True, fixed_ttft_ms=1, fixed_itl_ms=1))
    with run_in_thread(config) as server:
        transport = make_transport("rest", TransportConfig(target=server.urls["rest"], timeout_s=10.0))
        try:
            transport.send(ChatRequest(messages=(ChatMessage("user", "Hi"),), max_tokens=3))
            with pytest.raises(Exception, match="max_tokens"):
                transport.send(ChatRequest(messages=(ChatMessage("user", "Hi"),), max_tokens=100_000))
        finally:
            transport.close()
        ok, refused = _wait_for(spans, SERVE_SPAN, 2)
    assert ok.parent is None and ok.status.status_code is StatusCode.UNSET
    assert refused.parent is None and refused.status.status_code is StatusCode.ERROR
    assert dict(refused.attributes or {})["chat.failure"] == "BAD_REQUEST" and not refused.events


def test_off_by_default_the_server_makes_no_span(spans: InMemorySpanExporter) -> None:
    with run_in_thread(ServerConfig(rest_port=0)) as server:
        assert server.service is not None and server.service.tracing is None
        _converse("rest", server.urls["rest"])
    assert len(_wait_for(spans, TURN_SPAN, TURNS)) == TURNS
    assert not [s for s in spans.get_finished_spans() if s.name == SERVE_SPAN]


def test_serve_otel_option() -> None:
    import argparse

    from loadgen.option_table import add_options

    parser = argparse.ArgumentParser()
    add_options(parser, OPTIONS)
    assert build_config(parser.parse_args([])).otel is False
    assert build_config(parser.parse_args(["--otel"])).otel is True


def test_carrier_of_reads_the_trace_fields_of_any_header_form() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert carrier_of([(b"content-type", b"json"), (b"traceparent", parent.encode())]) == {"traceparent": parent}
    assert carrier_of((("TraceParent", parent), ("tracestate", "a=1"))) == {"traceparent": parent, "tracestate": "a=1"}
    assert carrier_of({"traceparent": parent.encode(), "x-sent-at": 5}) == {"traceparent": parent}
    assert carrier_of({"authorization": "Bearer k"}) is None and carrier_of(None) is None
