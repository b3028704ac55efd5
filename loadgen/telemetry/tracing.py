"""OpenTelemetry spans per conversation and per turn, and the trace context every transport sends.

On with Locust's own ``--otel`` (its tracer provider, exporters from the ``OTEL_*`` environment variables;
``pip install "chat-loadgen[otel]"``), off by default. Off, nothing here is imported: the runtime holds ``None``
for its :class:`TurnTracing`, a turn costs one ``None`` check, and a :class:`~loadgen.types.ChatRequest` carries
no ``trace_headers`` (reports/BENCHMARKS.md, "Tracing off: cost per turn").

On, each conversation is one root span :data:`CONVERSATION_SPAN` and each of its turns a child span
:data:`TURN_SPAN` (kind client), started before the request is sent and ended when the turn is reported. The
turn's context goes out with its request (:func:`inject`, the global propagator: W3C ``traceparent`` and
``tracestate`` unless ``OTEL_PROPAGATORS`` says otherwise) in the HTTP headers, the gRPC metadata or the AMQP
message headers; the reference server continues the trace (:mod:`loadgen.telemetry.serve_tracing`).

A turn span's attributes (:data:`ATTRIBUTES`): the transport, dialogue, turn index and conversation id when it
starts; the time to first token (ms), output tokens, retention verdict (``passed``, ``failed`` or ``unchecked``)
and, for a failed turn, the failure kind (the error's class: ``ConnectError``, ``TurnTimeout``...,
``RetentionFailure``, ``SessionLost``) when it ends; a failed turn's status is ERROR with the reason. Spans still
open when the test stops (a turn cut off, a conversation not finished) end then, marked ``cut off``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from loadgen.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from loadgen.dialogues.conversation import Conversation
    from loadgen.dialogues.model import Turn
    from loadgen.metrics.turns import TurnOutcome
    from loadgen.types import ChatRequest

#: The instrumentation scope of every span chat-loadgen makes.
TRACER_NAME = "chat-loadgen"
CONVERSATION_SPAN = "chat.conversation"
TURN_SPAN = "chat.turn"

TRANSPORT = "chat.transport"
DIALOGUE = "chat.dialogue"
TURN_INDEX = "chat.turn.index"
CONVERSATION_ID = "chat.conversation.id"
TURNS = "chat.conversation.turns"
TTFT_MS = "chat.ttft_ms"
OUTPUT_TOKENS = "chat.output_tokens"
RETENTION = "chat.retention"
FAILURE_KIND = "chat.failure.kind"
FAILED_TURNS = "chat.conversation.failed_turns"
#: The attributes a turn span may carry.
ATTRIBUTES = (TRANSPORT, DIALOGUE, TURN_INDEX, CONVERSATION_ID, TTFT_MS, OUTPUT_TOKENS, RETENTION, FAILURE_KIND)
#: The status description of a span still open when the test stopped.
CUT_OFF = "cut off"
INSTALL_HINT = 'pip install "chat-loadgen[otel]"'


def failure_kind(outcome: TurnOutcome) -> tuple[str, str] | None:
    """A failed turn's kind and reason (the names our failure counts use), ``None`` for a turn that passed."""
    if outcome.error is not None:
        return type(outcome.error).__name__, outcome.error.reason
    if not outcome.retention_passed:
        return "RetentionFailure", outcome.retention_reason or ""
    if outcome.session_lost is not None:
        return "SessionLost", outcome.session_lost
    return None


def retention_verdict(outcome: TurnOutcome) -> str:
    if not outcome.retention_checked:
        return "unchecked"
    return "passed" if outcome.retention_passed else "failed"


@dataclass(slots=True)
class _Open:
    """A conversation whose span is open, and its turn in flight."""

    span: Span
    turns: int
    turn: Span | None = None
    failed: int = 0


class TurnTracing:
    """Spans of the conversations one process runs (users in greenlets of one thread: no locking)."""

    def __init__(self, tracer: Tracer, transport: str) -> None:
        from opentelemetry import propagate, trace
        from opentelemetry.context import Context
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self._tracer = tracer
        self._transport = transport
        self._open: dict[str, _Open] = {}
        self._inject = propagate.inject
        self._in_context = trace.set_span_in_context
        self._root = Context()  # a conversation's trace starts afresh, whatever span is current
        self._client = SpanKind.CLIENT
        self._status, self._error_code = Status, StatusCode.ERROR

    @property
    def open_conversations(self) -> int:
        return len(self._open)

    def start_turn(self, conversation: Conversation, turn: Turn, request: ChatRequest) -> ChatRequest:
        """Start the turn's span (and its conversation's, at its first turn): ``request`` with its trace context."""
        cid = conversation.conversation_id
        dialogue = conversation.dialogue
        entry = self._open.get(cid)
        if entry is None:
            span = self._tracer.start_span(
                CONVERSATION_SPAN,
                context=self._root,
                attributes={
                    TRANSPORT: self._transport,
                    DIALOGUE: dialogue.name,
                    CONVERSATION_ID: cid,
                    TURNS: len(dialogue.turns),
                },
            )
            entry = self._open[cid] = _Open(span, len(dialogue.turns))
        elif entry.turn is not None:  # the previous turn was never reported (its user went on): it ends now
            self._end_cut_off(entry.turn)
        entry.turn = self._tracer.start_span(
            TURN_SPAN,
            context=self._in_context(entry.span),
            kind=self._client,
            attributes={
                TRANSPORT: self._transport,
                DIALOGUE: dialogue.name,
                TURN_INDEX: turn.index,
                CONVERSATION_ID: cid,
            },
        )
        headers: dict[str, str] = {}
        self._inject(headers, context=self._in_context(entry.turn))
        return replace(request, trace_headers=headers)

    def end_turn(self, outcome: TurnOutcome, conversation_id: str) -> None:
        """End the turn's span with what the turn came to (a turn listener); its conversation's after its last."""
        entry = self._open.get(conversation_id)
        if entry is None or entry.turn is None:
            return
        span, entry.turn = entry.turn, None
        reply = outcome.reply
        if reply is not None:
            ttft = reply.ttft_s()
            if ttft is not None:
                span.set_attribute(TTFT_MS, ttft * 1000.0)
            span.set_attribute(OUTPUT_TOKENS, reply.output_tokens)
        span.set_attribute(RETENTION, retention_verdict(outcome))
        failed = failure_kind(outcome)
        if failed is not None:
            entry.failed += 1
            span.set_attribute(FAILURE_KIND, failed[0])
            span.set_status(self._status(self._error_code, failed[1]))
        span.end()
        if outcome.turn >= entry.turns:
            del self._open[conversation_id]
            entry.span.set_attribute(FAILED_TURNS, entry.failed)
            entry.span.end()

    def end_open(self) -> None:
        """End every span still open (the test stopped): turns cut off, conversations left unfinished."""
        entries, self._open = self._open, {}
        for entry in entries.values():
            if entry.turn is not None:
                self._end_cut_off(entry.turn)
            entry.span.set_attribute(FAILED_TURNS, entry.failed)
            self._end_cut_off(entry.span)

    def _end_cut_off(self, span: Span) -> None:
        span.set_status(self._status(self._error_code, CUT_OFF))
        span.end()


def turn_tracing(transport: str) -> TurnTracing:
    """Tracing with the process's tracer provider (Locust's ``--otel`` set it up); :class:`ConfigError` when
    OpenTelemetry is not installed."""
    try:
        from opentelemetry import trace
    except ImportError:
        raise ConfigError(f"--otel: OpenTelemetry is not installed; {INSTALL_HINT}") from None
    from loadgen import __version__

    return TurnTracing(trace.get_tracer(TRACER_NAME, __version__), transport)


__all__ = [
    "ATTRIBUTES",
    "CONVERSATION_SPAN",
    "TRACER_NAME",
    "TURN_SPAN",
    "TurnTracing",
    "failure_kind",
    "retention_verdict",
    "turn_tracing",
]
