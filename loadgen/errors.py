"""One small error tree for the whole project.

Transports translate their own library's exceptions into :class:`TransportError` subclasses (chaining the
original with ``raise ... from exc``); a Locust user reports them as failures, never re-raises them. Which kind
a server's answer becomes (HTTP status, gRPC code, AMQP error code) is one table: :mod:`loadgen.wire.status`.
A message that breaks a wire format is a :class:`WireError` where it is decoded (a server answers it as a bad
request; a transport reports it as a :class:`ProtocolError`).
"""

from __future__ import annotations

#: How far :func:`cause_of` follows a chain of causes.
CAUSE_DEPTH = 8


class LoadgenError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(LoadgenError):
    """Bad input found before any load starts (options, files, URLs). The message says what to do."""


class WireError(LoadgenError, ValueError):
    """A message that does not follow its wire format (:mod:`loadgen.wire`). The text says what is wrong, names
    the field, and is safe to show."""


class TransportError(LoadgenError):
    """A turn could not be completed over the wire. ``reason`` is short and safe to show and to group by."""

    kind = "transport"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConnectError(TransportError):
    """Could not reach the target (refused, DNS, TLS handshake, broker down)."""


class TurnTimeout(TransportError):
    """The turn did not finish within its timeout (connect, first byte, or whole reply)."""


class ProtocolError(TransportError):
    """The peer answered with something we cannot parse (malformed SSE/JSON/protobuf)."""


class ServerError(TransportError):
    """The peer answered with an error (HTTP status, gRPC status, ``event: error``)."""

    def __init__(self, reason: str, code: str | int | None = None) -> None:
        super().__init__(reason)
        self.code = code


class Overloaded(ServerError):
    """The peer refused for lack of capacity (HTTP 429/503, RESOURCE_EXHAUSTED, queue full)."""


class Unroutable(TransportError):
    """The message could not be routed to any consumer (AMQP mandatory return)."""


class RetentionFailure(LoadgenError):
    """The reply did not contain a fact planted earlier in the conversation. Not a transport error."""

    kind = "retention"


def cause_of(exc: BaseException, *types: type[BaseException]) -> BaseException | None:
    """The first exception of one of ``types`` in ``exc``'s chain (itself, its ``__cause__`` or ``__context__``, and
    theirs, up to :data:`CAUSE_DEPTH` deep), or ``None``: what a library's error was really about (a refused
    connection, a TLS certificate, a name that does not resolve)."""
    cause: BaseException | None = exc
    for _ in range(CAUSE_DEPTH):
        if cause is None:
            return None
        if isinstance(cause, types):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None
