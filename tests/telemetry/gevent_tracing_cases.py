"""Spans per conversation and turn as a Locust user makes them (``--otel``), driven in process: a ConversationUser
runs its conversation in the test's own greenlet over a scripted transport, spans go to the SDK's in-memory
exporter (the process's tracer provider, as Locust's ``--otel`` sets one).

Importing Locust monkey-patches the process with gevent, so these run in a Python of their own, started by
``test_tracing.py``; they are not collected by the main test session.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import configargparse
import gevent
import pytest
from locust.env import Environment
from locust.event import Events
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from loadgen.errors import ConfigError
from loadgen.locust_plugin import ConversationUser, options, runtime
from loadgen.telemetry import locust_tracing
from loadgen.telemetry.tracing import (
    CONVERSATION_SPAN,
    CUT_OFF,
    TRACER_NAME,
    TURN_SPAN,
    turn_tracing,
)
from tests.scripted_transport import DIALOGUE, ScriptedTransport

EXPORTER = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(_provider)  # what Locust's --otel does (with exporters from OTEL_*)


class ChatUser(ConversationUser):
    pass


def _parsed(tmp_path: Path, *, otel: bool) -> argparse.Namespace:
    (tmp_path / "plan.yaml").write_text(DIALOGUE, encoding="utf-8")
    parser = configargparse.ArgumentParser()
    options.add_arguments(parser)
    parsed = parser.parse_args(["--dialogues", str(tmp_path / "plan.yaml"), "--think-min", "0", "--think-max", "0"])
    parsed.otel = otel  # Locust's own flag (its parser, not ours, declares it)
    return parsed


@pytest.fixture
def env() -> Iterator[Environment]:
    EXPORTER.clear()
    environment = Environment(user_classes=[ChatUser], events=Events(), host="http://scripted")
    environment.create_local_runner()
    yield environment
    runtime.reset_runtime()


def _runtime(env: Environment, tmp_path: Path, *, otel: bool = True, role: str = "local") -> runtime.LoadgenRuntime:
    parsed = _parsed(tmp_path, otel=otel)
    rt = runtime.build_runtime(parsed, role, env.events.request)
    locust_tracing.setup(SimpleNamespace(parsed_options=parsed, events=env.events), rt, role)
    return rt


def _spans(name: str) -> list[ReadableSpan]:
    return [s for s in EXPORTER.get_finished_spans() if s.name == name]


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_one_span_per_turn_children_of_the_conversation_span(env: Environment, tmp_path: Path) -> None:
    _runtime(env, tmp_path)
    transport = ScriptedTransport(fail_at=(2,), forget_at=(5,))
    user = ChatUser(env)
    user.transport = transport
    user.converse()

    (conversation,) = _spans(CONVERSATION_SPAN)
    turns = sorted(_spans(TURN_SPAN), key=lambda s: _attrs(s)["chat.turn.index"])
    assert len(turns) == 5 == len(transport.requests)
    assert conversation.parent is None
    cid = _attrs(conversation)["chat.conversation.id"]
    assert _attrs(conversation) == {
        "chat.transport": "rest",
        "chat.dialogue": "plan",
        "chat.conversation.id": cid,
        "chat.conversation.turns": 5,
        "chat.conversation.failed_turns": 2,
    }
    for k, (span, request) in enumerate(zip(turns, transport.requests, strict=True), start=1):
        assert span.parent is not None and span.parent.span_id == conversation.context.span_id
        assert span.context.trace_id == conversation.context.trace_id and span.kind is SpanKind.CLIENT
        # the request carried this turn's own context: W3C traceparent version-trace-span-flags
        context = span.context
        assert request.trace_headers == {
            "traceparent": f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
        }
        assert context.trace_flags.sampled
        attrs = _attrs(span)
        assert (attrs["chat.transport"], attrs["chat.dialogue"], attrs["chat.turn.index"]) == ("rest", "plan", k)
        assert attrs["chat.conversation.id"] == cid
    ok, failed, _, unchecked, forgot = (_attrs(s) for s in turns)
    assert 0.9 <= ok["chat.ttft_ms"] <= 1.1 and ok["chat.output_tokens"] == 3.0
    assert (ok["chat.retention"], "chat.failure.kind" in ok) == ("unchecked", False)
    assert turns[0].status.status_code is StatusCode.UNSET
    # a transport failure: no reply (no TTFT, no tokens), its kind, status ERROR with the reason
    assert failed["chat.failure.kind"] == "ConnectError" and "chat.ttft_ms" not in failed
    assert turns[1].status.status_code is StatusCode.ERROR and turns[1].status.description == "refused at send 2"
    assert unchecked["chat.retention"] == "unchecked"  # probes a code whose planting turn failed
    assert (forgot["chat.retention"], forgot["chat.failure.kind"]) == ("failed", "RetentionFailure")
    assert turns[4].status.status_code is StatusCode.ERROR
    assert all(s.instrumentation_scope is not None and s.instrumentation_scope.name == TRACER_NAME for s in turns)


def test_each_conversation_is_a_trace_of_its_own(env: Environment, tmp_path: Path) -> None:
    rt = _runtime(env, tmp_path)
    user = ChatUser(env)
    user.transport = ScriptedTransport(forget_at=(4,))
    user.converse()
    user.converse()
    conversations = _spans(CONVERSATION_SPAN)
    assert len(conversations) == 2 and len(_spans(TURN_SPAN)) == 10
    assert conversations[0].context.trace_id != conversations[1].context.trace_id
    assert rt.tracing is not None and rt.tracing.open_conversations == 0
    passed = [s for s in _spans(TURN_SPAN) if _attrs(s)["chat.turn.index"] == 5]
    assert [_attrs(s)["chat.retention"] for s in passed] == ["passed", "passed"]


def test_spans_still_open_when_the_test_stops_end_cut_off(env: Environment, tmp_path: Path) -> None:
    rt = _runtime(env, tmp_path)
    user = ChatUser(env)
    user.transport = ScriptedTransport(hang=True)
    talking = gevent.spawn(user.converse)
    gevent.sleep(0.2)
    talking.kill()  # the run ends mid-turn: turn 3 is cut off
    assert len(_spans(TURN_SPAN)) == 2 and not _spans(CONVERSATION_SPAN)
    env.events.test_stop.fire(environment=env)
    cut = [s for s in _spans(TURN_SPAN) if _attrs(s)["chat.turn.index"] == 3]
    (conversation,) = _spans(CONVERSATION_SPAN)
    assert len(cut) == 1 and cut[0].status.description == CUT_OFF and cut[0].status.status_code is StatusCode.ERROR
    assert conversation.status.description == CUT_OFF
    assert rt.tracing is not None and rt.tracing.open_conversations == 0


def test_off_without_otel_and_on_a_master(env: Environment, tmp_path: Path) -> None:
    rt = _runtime(env, tmp_path, otel=False)
    transport = ScriptedTransport()
    user = ChatUser(env)
    user.transport = transport
    user.converse()
    assert rt.tracing is None and len(rt.turn_listeners) == 0
    assert all(r.trace_headers is None for r in transport.requests) and not EXPORTER.get_finished_spans()
    runtime.reset_runtime()
    assert _runtime(env, tmp_path, role="master").tracing is None


def test_otel_without_opentelemetry_installed_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(
        ConfigError, match=r'^--otel: OpenTelemetry is not installed; pip install "chat-loadgen\[otel\]"$'
    ):
        turn_tracing("rest")
