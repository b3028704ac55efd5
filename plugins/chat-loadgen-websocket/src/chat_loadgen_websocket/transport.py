"""WebSocket chat streaming as a chat-loadgen transport (transport API version 1, ``docs/TRANSPORT_API.md``).

The wire format is :mod:`loadgen.wire.websocket`: one text message per turn (an OpenAI chat-completions body),
answered by one ``token`` message per chunk and a ``done`` message with usage, or an ``error`` message whose code
is a row of chat-loadgen's status table. The client is the ``websockets`` sync client: under gevent's monkey
patching (every Locust process) its reader thread is a greenlet and its socket, selector, locks and queue are
gevent's, so a turn waiting for the next message never blocks the hub.

One connection per transport (one per Locust user), opened on the first turn in the process that sends it (never
at import or in ``__init__``: Locust may fork, and the master builds a transport only to check the target). A turn
that fails mid-reply (timeout, a broken message, the connection lost, the user killed) drops the connection, so a
late message of that turn can never be read as the next turn's; the next turn opens a new one. An ``error`` reply
ends its turn cleanly and keeps the connection.

Timing (``time.perf_counter()``):

- ``t_sent``: just before the request is written, or before the connection is opened when this turn opens it
  (as for REST, whose first turn includes its connect);
- ``t_first_byte``: when the first reply message came out of the connection;
- each content chunk: when its message came out of the connection, before it is decoded;
- ``t_done``: when the ``done`` message came out.

Errors: refused, unresolvable or TLS failure -> :class:`ConnectError`; the connect or the turn past its timeout ->
:class:`TurnTimeout`; an HTTP status at the handshake or an ``error`` message -> the kind of the status table
(:class:`Overloaded` for 429/503 and ``overloaded``, :class:`ServerError` else); a message that breaks the format
or a stream cut after it began -> :class:`ProtocolError`; the connection lost before any reply ->
:class:`ConnectError`. Reasons name ``host:port``, never a URL; the API key travels only in the handshake header
and never appears in a reason.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import time
from typing import ClassVar

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.protocol import State
from websockets.sync.client import ClientConnection, connect

from loadgen.errors import (
    ConfigError,
    ConnectError,
    ProtocolError,
    ServerError,
    TransportError,
    TurnTimeout,
    WireError,
)
from loadgen.transports.base import Transport, TransportConfig
from loadgen.transports.replies import streamed_reply, whole_reply
from loadgen.types import ChatRequest, Reply, Usage
from loadgen.wire.auth import AUTH_HEADER, bearer
from loadgen.wire.status import http_kind
from loadgen.wire.text import redact_url, short
from loadgen.wire.websocket import (
    DONE,
    MAX_MESSAGE_BYTES,
    SCHEMES,
    TOKEN,
    chat_url,
    decode_message,
    encode_request,
    error_of,
    where,
)

#: How long :meth:`WebSocketTransport.close` waits for the server's side of the closing handshake.
CLOSE_TIMEOUT_S = 2.0
USER_AGENT = "chat-loadgen-websocket/0.1.0"

_ssl_contexts: dict[tuple[int, bool], ssl.SSLContext] = {}


def _ssl_context(verify: bool) -> ssl.SSLContext:
    """One TLS context per process and verify setting (loading the CA bundle costs ~26 ms of CPU: once)."""
    key = (os.getpid(), verify)
    context = _ssl_contexts.get(key)
    if context is None:
        context = ssl.create_default_context()
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        context = _ssl_contexts[key] = context
    return context


class WebSocketTransport(Transport):
    """Chat turns over one WebSocket connection, streamed one JSON message per token chunk."""

    name: ClassVar[str] = "websocket"
    schemes: ClassVar[tuple[str, ...]] = SCHEMES
    api_version: ClassVar[int] = 1

    def __init__(self, config: TransportConfig) -> None:
        super().__init__(config)
        try:
            self._url = chat_url(config.target, config.path)
        except WireError as exc:
            raise ConfigError(f"target {redact_url(config.target)!r} is not a WebSocket URL: {exc}") from None
        self._where = where(config.target)
        self._headers = {AUTH_HEADER: bearer(config.api_key)} if config.api_key else None
        self._ssl = _ssl_context(config.tls_verify) if self._url.lower().startswith("wss:") else None
        self._conn: ClientConnection | None = None
        self._closed = False

    # -- one turn --------------------------------------------------------------------------------------------------

    def _send(self, request: ChatRequest, turn_timeout: float) -> Reply:
        if self._closed:
            raise ConnectError("the transport is closed")
        body = encode_request(request, model=self.config.model).decode()
        t_sent = time.perf_counter()
        deadline = t_sent + turn_timeout
        try:
            conn = self._connection(deadline, turn_timeout)
            try:
                conn.send(body)
            except ConnectionClosed as exc:
                raise ConnectError(f"connection to {self._where} lost sending the request ({_closed(exc)})") from exc
            outcome = self._read_reply(conn, request.stream, t_sent, deadline, turn_timeout)
        except BaseException:  # cut short (a failure, a killed user, Ctrl-C): its late messages must go with it
            self._drop()
            raise
        if isinstance(outcome, ServerError):
            raise outcome  # an error reply ends its turn cleanly: the connection stays
        return outcome

    def _read_reply(
        self, conn: ClientConnection, stream: bool, t_sent: float, deadline: float, limit: float
    ) -> Reply | ServerError:
        """The reply, or the error the server answered with; raises for a turn cut short."""
        parts: list[str] = []
        times: list[float] = []
        tokens: list[float] = []
        t_first_byte: float | None = None
        perf_counter = time.perf_counter
        while True:
            remaining = deadline - perf_counter()
            try:
                if remaining <= 0:
                    raise TimeoutError
                data = conn.recv(timeout=remaining)
            except TimeoutError:
                phase = "while streaming the reply" if t_first_byte is not None else "waiting for the reply"
                raise TurnTimeout(f"turn exceeded its timeout ({limit:g}s) {phase}") from None
            except ConnectionClosed as exc:
                if t_first_byte is None:
                    raise ConnectError(f"connection to {self._where} closed before the reply ({_closed(exc)})") from exc
                raise ProtocolError(f"stream ended early: connection closed ({_closed(exc)})") from exc
            now = perf_counter()
            if t_first_byte is None:
                t_first_byte = now
            try:
                message = decode_message(data)
            except WireError as exc:
                raise ProtocolError(f"malformed reply message: {exc}") from exc
            if message.type == TOKEN:
                if message.text:
                    parts.append(message.text)
                    times.append(now)
                    tokens.append(float(message.tokens))
                continue
            if message.type == DONE:
                return self._reply(message.text, message.usage, stream, parts, times, tokens, t_sent, t_first_byte, now)
            return error_of(message)

    @staticmethod
    def _reply(
        text: str,
        usage: Usage | None,
        stream: bool,
        parts: list[str],
        times: list[float],
        tokens: list[float],
        t_sent: float,
        t_first_byte: float,
        t_done: float,
    ) -> Reply:
        if text and not parts:  # a whole (non-streamed) reply: all its text in the done message
            return whole_reply(text, usage, t_sent=t_sent, t_first_byte=t_first_byte, t_done=t_done)
        if not stream and not parts:
            return whole_reply("", usage, t_sent=t_sent, t_first_byte=t_first_byte, t_done=t_done)
        return streamed_reply(parts, times, tokens, usage, t_sent=t_sent, t_first_byte=t_first_byte, t_done=t_done)

    # -- the connection --------------------------------------------------------------------------------------------

    def _connection(self, deadline: float, turn_timeout: float) -> ClientConnection:
        conn = self._conn
        if conn is not None and conn.state is State.OPEN:
            return conn
        self._drop()  # closed by the server while idle: open a new one
        remaining = deadline - time.perf_counter()
        open_timeout = min(self.config.connect_timeout_s, remaining)
        if open_timeout <= 0:
            raise TurnTimeout(f"turn exceeded its timeout ({turn_timeout:g}s) before connecting")
        try:
            conn = connect(
                self._url,
                legacy=True,
                ssl=self._ssl,
                compression=None,
                additional_headers=self._headers,
                user_agent_header=USER_AGENT,
                open_timeout=open_timeout,
                ping_interval=None,  # no keepalive greenlet per user; a dead peer shows as a turn timeout
                close_timeout=CLOSE_TIMEOUT_S,
                max_size=MAX_MESSAGE_BYTES,
            )
        except Exception as exc:
            raise self._connect_error(exc) from exc
        self._conn = conn
        return conn

    def _connect_error(self, exc: Exception) -> TransportError:
        """What a failed connect means, in one line naming ``host:port``."""
        at = self._where
        if isinstance(exc, TimeoutError):
            return TurnTimeout(f"connect timeout to {at}")
        if isinstance(exc, InvalidStatus):
            status = exc.response.status_code
            body = short(exc.response.body.decode("utf-8", errors="replace")) if exc.response.body else ""
            return http_kind(status)(f"HTTP {status} at the WebSocket handshake with {at}: {body or 'refused'}", status)
        if isinstance(exc, ConnectionRefusedError):
            return ConnectError(f"connection refused to {at}")
        if isinstance(exc, socket.gaierror):
            return ConnectError(f"cannot resolve the host of {at}")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return ConnectError(f"TLS certificate of {at} not trusted: {short(exc.verify_message or str(exc))}")
        if isinstance(exc, ssl.SSLError):
            return ConnectError(f"TLS handshake with {at} failed: {short(exc.reason or str(exc))}")
        if isinstance(exc, InvalidHandshake | InvalidURI):
            return ProtocolError(f"WebSocket handshake with {at} failed: {short(str(exc))}")
        if isinstance(exc, OSError):
            return ConnectError(f"cannot connect to {at}: {short(str(exc)) or type(exc).__name__}")
        return ConnectError(f"cannot connect to {at}: {type(exc).__name__}: {short(str(exc))}")

    def _drop(self) -> None:
        """Forget the connection at once (no closing handshake): a turn was cut short."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close_socket()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def _closed(exc: ConnectionClosed) -> str:
    frame = exc.rcvd or exc.sent
    return f"code {frame.code}" if frame is not None else "no close frame"


__all__ = ["CLOSE_TIMEOUT_S", "WebSocketTransport"]
