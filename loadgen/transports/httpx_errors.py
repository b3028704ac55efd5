"""httpx's exceptions as :mod:`loadgen.errors`, for the REST transport: one table, every httpx exception class.

:data:`HTTPX_ERRORS` maps each class (concrete ones and their bases alike) to a rule; :func:`map_httpx_error` uses
the nearest class in an exception's MRO and names the phase: ``"send"`` (connect, write, wait for the headers) or
``"body"`` (reading the reply). A failed connect says why from the OS error httpx chained (``connection refused to
127.0.0.1:8000``, a TLS certificate not trusted, a host that does not resolve); an error status is the failure kind
the status table gives it (:func:`loadgen.wire.openai.error_from_body`). A reason names ``host:port``, never a URL.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from typing import Literal

import httpx

from loadgen.errors import ConnectError, ProtocolError, ServerError, TransportError, TurnTimeout, cause_of
from loadgen.wire.openai import error_from_body
from loadgen.wire.text import short

Phase = Literal["send", "body"]


@dataclass(frozen=True, slots=True)
class ErrorRule:
    """How one httpx exception class becomes a :class:`TransportError`.

    ``reason`` may use ``{where}`` (``host:port``) and ``{detail}`` (httpx's own message, shortened);
    ``while_streaming`` replaces it when the exception came while reading the body.
    """

    error: type[TransportError]
    reason: str
    while_streaming: str | None = None


#: Every httpx exception class, concrete ones and their bases alike; :func:`map_httpx_error` uses the nearest
#: class in the exception's MRO. A test walks httpx's hierarchy and fails on any class missing here.
HTTPX_ERRORS: dict[type[Exception], ErrorRule] = {
    # timeouts: say which phase
    httpx.ConnectTimeout: ErrorRule(TurnTimeout, "connect timeout to {where}"),
    httpx.ReadTimeout: ErrorRule(
        TurnTimeout, "timed out waiting for response headers", "read timeout while streaming the reply"
    ),
    httpx.WriteTimeout: ErrorRule(TurnTimeout, "timed out sending the request"),
    httpx.PoolTimeout: ErrorRule(TurnTimeout, "timed out waiting for a free connection"),
    httpx.TimeoutException: ErrorRule(TurnTimeout, "timed out", "timed out while streaming the reply"),
    # the network
    httpx.ConnectError: ErrorRule(ConnectError, "cannot connect to {where}: {detail}"),  # refined below
    httpx.ReadError: ErrorRule(
        ProtocolError, "connection lost waiting for the response: {detail}", "stream ended early: {detail}"
    ),
    httpx.WriteError: ErrorRule(ConnectError, "connection lost sending the request: {detail}"),
    httpx.CloseError: ErrorRule(ConnectError, "error closing the connection: {detail}"),
    httpx.NetworkError: ErrorRule(ConnectError, "network error: {detail}"),
    httpx.ProxyError: ErrorRule(ConnectError, "proxy error: {detail}"),
    httpx.UnsupportedProtocol: ErrorRule(ConnectError, "unsupported URL scheme: {detail}"),
    httpx.TransportError: ErrorRule(ConnectError, "transport error: {detail}"),
    # HTTP itself
    httpx.RemoteProtocolError: ErrorRule(
        ProtocolError, "server broke off before answering: {detail}", "stream ended early: {detail}"
    ),
    httpx.LocalProtocolError: ErrorRule(ProtocolError, "could not form a valid HTTP request: {detail}"),
    httpx.ProtocolError: ErrorRule(ProtocolError, "HTTP protocol error: {detail}"),
    httpx.DecodingError: ErrorRule(ProtocolError, "could not decode the response body: {detail}"),
    httpx.TooManyRedirects: ErrorRule(ProtocolError, "too many redirects"),
    httpx.RequestError: ErrorRule(ConnectError, "request failed: {detail}"),
    httpx.HTTPStatusError: ErrorRule(ServerError, "HTTP error status: {detail}"),
    httpx.HTTPError: ErrorRule(ConnectError, "HTTP error: {detail}"),
    # raised outside the HTTPError tree
    httpx.InvalidURL: ErrorRule(ConnectError, "invalid URL: {detail}"),
    httpx.CookieConflict: ErrorRule(ProtocolError, "conflicting cookies: {detail}"),
    httpx.StreamConsumed: ErrorRule(ProtocolError, "response stream already consumed"),
    httpx.StreamClosed: ErrorRule(ProtocolError, "response stream already closed"),
    httpx.ResponseNotRead: ErrorRule(ProtocolError, "response body not read"),
    httpx.RequestNotRead: ErrorRule(ProtocolError, "request body not read"),
    httpx.StreamError: ErrorRule(ProtocolError, "response stream error: {detail}"),
}

#: What ``except`` catches around httpx calls: the roots of every class in :data:`HTTPX_ERRORS`.
HTTPX_EXCEPTIONS: tuple[type[Exception], ...] = (
    httpx.HTTPError,
    httpx.InvalidURL,
    httpx.CookieConflict,
    httpx.StreamError,
)

#: What can end the reading of a body early: an httpx error or the whole-turn deadline.
READ_FAILURES: tuple[type[Exception], ...] = (*HTTPX_EXCEPTIONS, TurnTimeout)


def map_httpx_error(exc: Exception, *, where: str = "the server", phase: Phase = "send") -> TransportError:
    """The :class:`TransportError` for an httpx exception (the caller chains it: ``raise ... from exc``).

    ``where`` is ``host:port`` (never a URL with credentials); ``phase`` is ``"send"`` (connect, write, wait
    for the headers) or ``"body"`` (reading the reply).
    """
    rule = next((HTTPX_ERRORS[cls] for cls in type(exc).__mro__ if cls in HTTPX_ERRORS), None)
    if rule is None:
        return ProtocolError(f"unexpected {type(exc).__name__}: {short(str(exc))}")
    if isinstance(exc, httpx.ConnectError):
        return ConnectError(_connect_reason(exc, where))
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        try:
            text = exc.response.text
        except httpx.ResponseNotRead:
            text = ""
        return error_from_body(text or exc.response.reason_phrase, prefix=f"HTTP {status}", status=status)
    template = rule.while_streaming if phase == "body" and rule.while_streaming else rule.reason
    return rule.error(template.format(where=where, detail=short(str(exc)) or type(exc).__name__))


def _connect_reason(exc: httpx.ConnectError, where: str) -> str:
    """Say why a connect failed (e.g. ``connection refused to 127.0.0.1:8000``) from the OS error httpx chained."""
    cause = cause_of(exc, ConnectionRefusedError, ssl.SSLError, socket.gaierror)
    if isinstance(cause, ConnectionRefusedError):
        return f"connection refused to {where}"
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"TLS certificate of {where} not trusted: {short(cause.verify_message or str(cause))}"
    if isinstance(cause, ssl.SSLError):
        return f"TLS handshake with {where} failed: {short(cause.reason or str(cause))}"
    if isinstance(cause, socket.gaierror):
        return f"cannot resolve the host of {where}"
    text = str(exc).lower()
    if "refused" in text:
        return f"connection refused to {where}"
    if "certificate" in text or "ssl" in text:
        return f"TLS handshake with {where} failed: {short(str(exc))}"
    return f"cannot connect to {where}: {short(str(exc)) or 'connection failed'}"


__all__ = ["HTTPX_ERRORS", "HTTPX_EXCEPTIONS", "READ_FAILURES", "ErrorRule", "Phase", "map_httpx_error"]
