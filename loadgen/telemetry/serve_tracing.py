"""The reference server's side of a traced turn: one span :data:`SERVE_SPAN` per request, child of the client's.

On with ``loadgen serve --otel`` (``pip install "chat-loadgen[otel]"``), off by default: off, the chat service
holds ``None`` and nothing here is imported. A front hands the service the trace context its request came with
(:func:`carrier_of`: the HTTP headers, the gRPC metadata or the AMQP message headers); the service
(:meth:`loadgen.server.service.ChatService.chat`) starts the span at the moment the front received the request,
with the client's turn span as its parent (a request without a context starts a trace of its own), and marks:

- ``chat.admitted``: the engine took the request, with ``chat.queue_wait_ms`` since it was received (for an
  engine that admits when it hands out the first chunk, this includes the prefill);
- ``chat.first_token``: the first chunk went out, ``chat.ttft_ms`` since the request was received;
- ``chat.done``: the reply ended (``chat.outcome`` ``completed``, ``cancelled`` or ``failed``), with the tokens
  and ``chat.decode_ms`` since the first token; a request refused before its reply started (bad, unauthorized,
  overloaded, an injected error) ends its span at once with the failure's name. Either failure sets ERROR.

The tracer provider is the process's when one is set (a test's, or an embedding application's); otherwise
:func:`serve_tracing` sets one up from the standard ``OTEL_*`` environment variables: ``OTEL_TRACES_EXPORTER``
``otlp`` (the default; ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_PROTOCOL`` ``grpc`` or
``http/protobuf``, endpoint from ``OTEL_EXPORTER_OTLP_ENDPOINT``), ``console`` or ``none``; ``OTEL_SERVICE_NAME``
defaults to :data:`SERVICE_NAME`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from loadgen.errors import ConfigError
from loadgen.telemetry.tracing import INSTALL_HINT, TRACER_NAME

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

SERVE_SPAN = "chat.serve"
SERVICE_NAME = "loadgen-serve"
#: The header and metadata names a W3C trace context travels in (lower case, as HTTP/2 and gRPC give them).
TRACE_FIELDS = frozenset({"traceparent", "tracestate"})


def carrier_of(pairs: Iterable[tuple[Any, Any]] | Mapping[str, Any] | None) -> dict[str, str] | None:
    """The trace context fields among a request's headers (name and value pairs, or a mapping; bytes or text),
    ``None`` when there are none."""
    if pairs is None:
        return None
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    found: dict[str, str] = {}
    for name, value in items:
        key = name.decode("latin-1") if isinstance(name, bytes) else str(name)
        key = key.lower()
        if key in TRACE_FIELDS:
            found[key] = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return found or None


class ServeTracing:
    """Starts and ends the server spans of one chat service (used from its event loop only)."""

    def __init__(self, tracer: Tracer) -> None:
        from opentelemetry import propagate
        from opentelemetry.context import Context
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self._tracer = tracer
        self._extract = propagate.extract
        self._root = Context()
        self._server = SpanKind.SERVER
        self._status, self._error_code = Status, StatusCode.ERROR

    def start(self, carrier: Mapping[str, str] | None, received_at: float | None) -> Span:
        """The span of a request received at ``received_at`` (:func:`time.monotonic`; now when ``None``)."""
        start_ns = time.time_ns()
        if received_at is not None:
            start_ns -= max(0, int((time.monotonic() - received_at) * 1e9))
        context = self._extract(carrier) if carrier else self._root
        return self._tracer.start_span(SERVE_SPAN, context=context, kind=self._server, start_time=start_ns)

    @staticmethod
    def admitted(
        span: Span, received_at: float | None, *, request_id: str, prompt_tokens: int, session_new: bool
    ) -> None:
        span.set_attribute("chat.request_id", request_id)
        span.set_attribute("chat.prompt_tokens", prompt_tokens)
        span.set_attribute("chat.session_new", session_new)
        span.add_event("chat.admitted", {"chat.queue_wait_ms": _ms_since(received_at)})

    @staticmethod
    def first_token(span: Span, received_at: float | None) -> float:
        """Mark the first chunk going out; returns when (:func:`time.monotonic`)."""
        span.add_event("chat.first_token", {"chat.ttft_ms": _ms_since(received_at)})
        return time.monotonic()

    def done(
        self, span: Span, outcome: str, *, completion_tokens: int, finish_reason: str, first_at: float | None
    ) -> None:
        """End the span of a reply that ended: ``completed``, ``cancelled`` (the client went) or ``failed``."""
        span.set_attribute("chat.completion_tokens", completion_tokens)
        span.set_attribute("chat.finish_reason", finish_reason)
        span.add_event(
            "chat.done",
            {
                "chat.outcome": outcome,
                "chat.completion_tokens": completion_tokens,
                "chat.decode_ms": _ms_since(first_at),
            },
        )
        if outcome != "completed":
            span.set_status(self._status(self._error_code, outcome))
        span.end()

    def refused(self, span: Span, failure: str, message: str) -> None:
        """End the span of a request refused before its reply started (``failure``: the status table's row)."""
        span.set_attribute("chat.failure", failure)
        span.set_status(self._status(self._error_code, f"{failure}: {message}"))
        span.end()


def _ms_since(then: float | None) -> float:
    return 0.0 if then is None else max(0.0, (time.monotonic() - then) * 1000.0)


def serve_tracing() -> ServeTracing:
    """Tracing with the process's tracer provider, set up from ``OTEL_*`` when there is none yet
    (:class:`ConfigError` when OpenTelemetry is not installed)."""
    try:
        from opentelemetry import trace
        from opentelemetry.trace import ProxyTracerProvider
    except ImportError:
        raise ConfigError(f"--otel: OpenTelemetry is not installed; {INSTALL_HINT}") from None
    from loadgen import __version__

    if isinstance(trace.get_tracer_provider(), ProxyTracerProvider):  # none set yet
        trace.set_tracer_provider(provider_from_env())
    return ServeTracing(trace.get_tracer(TRACER_NAME, __version__))


def provider_from_env() -> TracerProvider:
    """An SDK tracer provider exporting as the standard ``OTEL_*`` variables say (see the module doc)."""
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
    except ImportError:
        raise ConfigError(f"--otel: the OpenTelemetry SDK is not installed; {INSTALL_HINT}") from None
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", SERVICE_NAME)})
    provider = TracerProvider(resource=resource)
    for exporter in _names(os.environ.get("OTEL_TRACES_EXPORTER", "otlp")):
        if exporter == "otlp":
            provider.add_span_processor(BatchSpanProcessor(_otlp_exporter()))
        elif exporter == "console":
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        elif exporter != "none":
            raise ConfigError(f"OTEL_TRACES_EXPORTER {exporter!r}: use otlp, console or none")
    return provider


def _names(value: str) -> list[str]:
    return [name.strip().lower() for name in value.split(",") if name.strip()]


def _otlp_exporter() -> Any:
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    )
    protocol = protocol.strip().lower()
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        elif protocol in ("http/protobuf", "http"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # type: ignore[assignment]
        else:
            raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL {protocol!r}: use grpc or http/protobuf")
    except ImportError:
        raise ConfigError(f"--otel: the OTLP exporter for {protocol} is not installed; {INSTALL_HINT}") from None
    return OTLPSpanExporter()


__all__ = [
    "SERVE_SPAN",
    "SERVICE_NAME",
    "TRACE_FIELDS",
    "ServeTracing",
    "carrier_of",
    "provider_from_env",
    "serve_tracing",
]
