"""ONE table of the failures a server answers with, and what each is on every wire and to every client.

A front names what went wrong as a :class:`Failure` and answers with that row's code: the HTTP status (and the
OpenAI error ``type``), the gRPC status code, or the AMQP error reply's ``code``. A transport maps the code it
receives back to a client failure kind (:mod:`loadgen.errors`) with :func:`http_kind`, :func:`grpc_kind` or
:func:`amqp_kind`; for every row the three give the row's ``kind``, so the same server event is the same failure
kind on REST, gRPC and AMQP (``compare-transports`` compares like with like):

=================  ====  ==================  ==============  ===========
failure            HTTP  gRPC                AMQP            client kind
=================  ====  ==================  ==============  ===========
BAD_REQUEST        400   INVALID_ARGUMENT    bad_request     ServerError
UNAUTHORIZED       401   UNAUTHENTICATED     unauthorized    ServerError
OVERLOADED         429   RESOURCE_EXHAUSTED  overloaded      Overloaded
ENGINE_STOPPED     500   ABORTED             engine_stopped  ServerError
INTERNAL           500   INTERNAL            internal        ServerError
=================  ====  ==================  ==============  ===========

ENGINE_STOPPED is the engine stopping (or failing) in the middle of a reply: the server answered, so it is a
:class:`~loadgen.errors.ServerError` everywhere. It is not UNAVAILABLE on gRPC, whose clients must read that
code as a connection failure (grpcio reports a refused connection with it), nor 503 on HTTP, which other servers
send for "no capacity" (both keep those meanings for servers other than ours: :func:`grpc_kind`,
:func:`http_kind`). Codes outside the table are mapped too: every gRPC code (DEADLINE_EXCEEDED is a
:class:`~loadgen.errors.TurnTimeout`, UNAVAILABLE a :class:`~loadgen.errors.ConnectError`), HTTP 503 as
:class:`~loadgen.errors.Overloaded`, any other error status or AMQP code as a
:class:`~loadgen.errors.ServerError`. gRPC codes are kept by name here, so that importing this module never
loads grpcio (:mod:`loadgen.wire.grpc` turns them into ``grpc.StatusCode``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from loadgen.errors import ConnectError, Overloaded, ServerError, TransportError, TurnTimeout


class Failure(enum.Enum):
    """What went wrong on the server, whatever the wire."""

    BAD_REQUEST = "bad_request"  # the request can never be served as sent (malformed, invalid, too large)
    UNAUTHORIZED = "unauthorized"  # a missing or wrong API key, where the server requires one
    OVERLOADED = "overloaded"  # no capacity now (the engine's queue or memory is full): retry later
    ENGINE_STOPPED = "engine_stopped"  # the engine stopped or failed mid-reply
    INTERNAL = "internal"  # anything else: a bug of the server


@dataclass(frozen=True, slots=True)
class Status:
    """One row: the codes a front answers a :class:`Failure` with, and the kind a client files it under."""

    http: int
    http_type: str  # the "type" of the OpenAI error object
    grpc: str  # a grpc.StatusCode name
    amqp: str  # the "code" of the AMQP error reply
    kind: type[ServerError]
    label: str  # how a client's reason names it, where the wire has no name of its own (AMQP)
    meaning: str  # what a front says when it knows nothing more precise


# fmt: off
STATUS: dict[Failure, Status] = {
    Failure.BAD_REQUEST:    Status(400, "invalid_request_error", "INVALID_ARGUMENT", "bad_request", ServerError,
                                   "bad request", "bad request"),
    Failure.UNAUTHORIZED:   Status(401, "authentication_error", "UNAUTHENTICATED", "unauthorized", ServerError,
                                   "unauthorized", "missing or wrong API key"),
    Failure.OVERLOADED:     Status(429, "overloaded", "RESOURCE_EXHAUSTED", "overloaded", Overloaded,
                                   "overloaded", "the server has no capacity now, retry later"),
    Failure.ENGINE_STOPPED: Status(500, "engine_stopped", "ABORTED", "engine_stopped", ServerError,
                                   "engine stopped", "the engine stopped mid-reply"),
    Failure.INTERNAL:       Status(500, "server_error", "INTERNAL", "internal", ServerError,
                                   "server error", "internal error"),
}
# fmt: on

# ---------------------------------------------------------------------------------------------------------------
# client side: a received code -> a failure kind

#: HTTP statuses outside the table: other servers send 503 for "no capacity now" (as 429).
_HTTP_OTHERS: dict[int, type[ServerError]] = {503: Overloaded}
_HTTP_KINDS = {**_HTTP_OTHERS, **{row.http: row.kind for row in STATUS.values()}}

#: gRPC codes outside the table that are not a server's answer: the library's own timeout and connection failure.
_GRPC_OTHERS: dict[str, type[TransportError]] = {"DEADLINE_EXCEEDED": TurnTimeout, "UNAVAILABLE": ConnectError}
_GRPC_KINDS = {**_GRPC_OTHERS, **{row.grpc: row.kind for row in STATUS.values()}}

#: What each gRPC code means, for a reason when the status came without details (every code but OK).
GRPC_MEANINGS: dict[str, str] = {
    "CANCELLED": "the call was cancelled",
    "UNKNOWN": "the server failed with an unknown error",
    "INVALID_ARGUMENT": "the server rejected the request",
    "DEADLINE_EXCEEDED": "deadline exceeded",
    "NOT_FOUND": "not found",
    "ALREADY_EXISTS": "already exists",
    "PERMISSION_DENIED": "permission denied",
    "RESOURCE_EXHAUSTED": "the server has no capacity now",
    "FAILED_PRECONDITION": "failed precondition",
    "ABORTED": "aborted",
    "OUT_OF_RANGE": "out of range",
    "UNIMPLEMENTED": "the target does not implement this method (not the chat service?)",
    "INTERNAL": "internal error",
    "UNAVAILABLE": "the service is unavailable",
    "DATA_LOSS": "data loss",
    "UNAUTHENTICATED": "missing or wrong API key",
}

_AMQP_KINDS = {row.amqp: row.kind for row in STATUS.values()}
_AMQP_LABELS = {row.amqp: row.label for row in STATUS.values()}


def http_kind(code: str | int | None) -> type[ServerError]:
    """The failure kind of an HTTP error status (or an error object's numeric ``code``, as text or number)."""
    if isinstance(code, str):
        code = int(code) if code.strip().isdigit() else None
    if isinstance(code, bool) or not isinstance(code, int):
        return ServerError
    return _HTTP_KINDS.get(code, ServerError)


def grpc_kind(name: str) -> type[TransportError]:
    """The failure kind of a gRPC status code, by name (``"RESOURCE_EXHAUSTED"``); every code but OK."""
    return _GRPC_KINDS.get(name, ServerError)


def amqp_kind(code: str) -> type[ServerError]:
    """The failure kind of an AMQP error reply's ``code`` (a code this table does not know: ServerError)."""
    return _AMQP_KINDS.get(code, ServerError)


def amqp_label(code: str) -> str:
    """How a client's reason names an AMQP error code: ``"overloaded"``, or ``"server error (teapot)"``."""
    return _AMQP_LABELS.get(code) or f"server error ({code})"


#: The AMQP error codes a server may send.
AMQP_CODES = frozenset(_AMQP_KINDS)

__all__ = [
    "AMQP_CODES",
    "GRPC_MEANINGS",
    "STATUS",
    "Failure",
    "Status",
    "amqp_kind",
    "amqp_label",
    "grpc_kind",
    "http_kind",
]
