"""gRPC transport: ``loadgen.chat.v1.ChatService`` (``proto/loadgen/chat/v1/chat.proto``) over grpcio's sync API.

``Chat`` (server streaming, one message per token chunk) when the request streams, ``Complete`` (unary) when
not. One :class:`grpc.Channel` per transport object, i.e. per Locust user, with a subchannel pool of its own
so that every user holds its own HTTP/2 connection, as separate clients would. The channel is made on first
use, never at import: Locust may fork (``--processes``) after importing the locustfile, and grpcio must not
have started anything before a fork.

gevent: a Locust process is monkey-patched; grpcio's sync API then needs
``grpc.experimental.gevent.init_gevent()`` called once, before the first channel exists, or its blocking
calls stall the hub. :func:`ensure_gevent_support` does that on first use, and only when ``socket`` is
actually monkey-patched (a plain threaded or asyncio process, e.g. the tests, is left alone).

TLS: ``grpcs://`` verifies the server against the system roots (``grpc.ssl_channel_credentials()``); grpcio has
no switch to skip verification, so ``tls_verify=False`` is refused, and a private CA is trusted with grpcio's
own ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH=/path/ca.pem``. ``connect_timeout_s`` bounds each connection attempt;
the turn timeout is the deadline of every call. A channel that lost its server retries every 0.1 s growing to at
most 0.5 s (:data:`MAX_RECONNECT_BACKOFF_MS`), so a server that is back is used again within about 0.6 s. A reply
past ``max_reply_bytes`` (its messages' sizes) is a :class:`ProtocolError`; the initial metadata
``x-loadgen-session: new`` sets ``Reply.session_new``.

Timing, as close to the wire as grpcio allows (``time.perf_counter()``):

- ``t_sent``: just before the call is started;
- ``t_first_byte``: when the response's initial metadata (HTTP/2 headers) arrived;
- each streamed message: stamped when the iterator hands it over, before anything else is done with it;
- ``t_done``: when the call ended with status OK (the trailers); for ``Complete``, when the response came.

A thin adapter over the wire contract (:mod:`loadgen.wire.grpc`): the method names come from the generated
descriptor, the request and usage are converted there, and every :class:`grpc.StatusCode` but OK maps to the
failure kind :mod:`loadgen.wire.status` gives it (see :data:`GRPC_ERRORS`), whose reason starts with the status name
(``"UNAVAILABLE: connection refused to 127.0.0.1:50051"``); the API key, sent as :mod:`loadgen.wire.auth` says
(metadata ``authorization: Bearer <key>``), never appears in a reason.
"""

from __future__ import annotations

import importlib
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias

import grpc

from loadgen import __version__
from loadgen.errors import (
    ConfigError,
    ConnectError,
    ProtocolError,
    ServerError,
    TransportError,
    TurnTimeout,
)
from loadgen.grpc_gen.chat.v1 import chat_pb2
from loadgen.transports.base import Transport, TransportConfig
from loadgen.transports.replies import reply_too_large, streamed_reply, whole_reply
from loadgen.types import ChatRequest, Reply
from loadgen.wire.auth import AUTH_HEADER, bearer
from loadgen.wire.grpc import (
    CHAT_METHOD,
    COMPLETE_METHOD,
    SERVICE_NAME,
    code_kind,
    decode_usage,
    encode_request,
    session_is_new,
)
from loadgen.wire.status import GRPC_MEANINGS
from loadgen.wire.text import redact_url, short

#: ``grpcs://host`` without a port goes to 443; ``grpc://`` needs an explicit port.
DEFAULT_TLS_PORT = 443
#: After a failed connect a channel waits before its next attempt (growing 1.6x from the initial wait to the most,
#: each +-20% jitter), and a call made meanwhile fails at once with the stale "connection refused". grpcio's
#: defaults (1 s growing to 120 s; this module's earlier 5-10 s) kept users failing for seconds after a restarted
#: server was back: retrying at most every ~0.5 s makes a channel see a returned server within ~0.6 s. Each
#: attempt on a server that is down is one refused connect (a few microseconds of the server's kernel).
INITIAL_RECONNECT_BACKOFF_MS = 100
MAX_RECONNECT_BACKOFF_MS = 500

Phase = Literal["send", "stream"]
if TYPE_CHECKING:  # grpc-stubs makes these generic; grpcio's own classes are not subscriptable
    ChatCallable: TypeAlias = grpc.UnaryStreamMultiCallable[chat_pb2.ChatRequest, chat_pb2.ChatChunk]
    CompleteCallable: TypeAlias = grpc.UnaryUnaryMultiCallable[chat_pb2.ChatRequest, chat_pb2.ChatResponse]

#: A call's metadata: the API key, and the turn's trace context when tracing is on.
Metadata: TypeAlias = tuple[tuple[str, str], ...]

# ---------------------------------------------------------------------------------------------------------------
# gevent


_gevent_initialised = False


def running_under_gevent() -> bool:
    """True when gevent has monkey-patched ``socket`` in this process (a Locust process, for one)."""
    monkey = sys.modules.get("gevent.monkey")  # never import gevent ourselves: nobody patched if it is not loaded
    return monkey is not None and bool(monkey.is_module_patched("socket"))


def ensure_gevent_support() -> bool:
    """Call ``grpc.experimental.gevent.init_gevent()`` once per process if, and only if, running under gevent
    monkey patching. Must run before the process's first grpc channel; returns whether gevent mode is on."""
    global _gevent_initialised
    if _gevent_initialised:
        return True
    if not running_under_gevent():
        return False
    grpc_gevent = importlib.import_module("grpc.experimental.gevent")  # not in grpc-stubs
    grpc_gevent.init_gevent()
    _gevent_initialised = True
    return True


# ---------------------------------------------------------------------------------------------------------------
# grpc.StatusCode -> loadgen.errors


@dataclass(frozen=True, slots=True)
class StatusRule:
    """How one status code becomes a :class:`TransportError`; ``meaning`` stands in for empty details."""

    error: type[TransportError]
    meaning: str


#: Every :class:`grpc.StatusCode` except OK (a test checks none is missing): the kind from the status table, the
#: code's meaning for a status that came without details.
GRPC_ERRORS: dict[grpc.StatusCode, StatusRule] = {
    code: StatusRule(code_kind(code), GRPC_MEANINGS[code.name])
    for code in grpc.StatusCode
    if code != grpc.StatusCode.OK
}


def map_grpc_error(
    code: grpc.StatusCode | None,
    details: str | None,
    *,
    where: str = "the server",
    phase: Phase = "send",
    timeout_s: float | None = None,
) -> TransportError:
    """The :class:`TransportError` for a failed call (the caller chains the :class:`grpc.RpcError`).

    ``where`` is ``host:port``; ``phase`` is ``"send"`` (nothing streamed yet) or ``"stream"`` (after the first
    message); ``timeout_s`` is the turn's timeout, for the reason of a DEADLINE_EXCEEDED.
    """
    detail = short(details or "")
    if code is None or code == grpc.StatusCode.OK:
        return ProtocolError(f"call failed without a status: {detail or 'no details'}")
    rule = GRPC_ERRORS.get(code)
    name = code.name
    if rule is None:  # pragma: no cover - a StatusCode newer than this table (a test keeps it complete)
        return ServerError(f"{name}: {detail or 'unknown status'}", code=name)
    lower = detail.lower()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        limit = f" ({timeout_s:g}s)" if timeout_s is not None else ""
        when = "while streaming the reply" if phase == "stream" else "before the reply started"
        return TurnTimeout(f"{name}: turn exceeded its timeout{limit} {when}")
    if code == grpc.StatusCode.UNAVAILABLE:
        return ConnectError(f"{name}: {_unavailable_reason(lower, detail, where, phase)}")
    if code == grpc.StatusCode.INTERNAL and "deserializ" in lower:
        return ProtocolError(f"{name}: could not parse the server's message (not {SERVICE_NAME}?)")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in lower:
        return ProtocolError(f"{name}: message larger than the allowed maximum: {detail}")
    if issubclass(rule.error, ServerError):
        return rule.error(f"{name}: {detail or rule.meaning}", code=name)
    return rule.error(f"{name}: {detail or rule.meaning}")


_DNS_HINTS = ("dns resolution failed", "errors resolving", "lookup failed", "name or service not known", "not resolve")
_TLS_HINTS = ("certificate", "ssl", "handshake", "tls")


def _unavailable_reason(lower: str, detail: str, where: str, phase: Phase) -> str:
    if "connection refused" in lower:
        return f"connection refused to {where}"
    if any(hint in lower for hint in _DNS_HINTS):
        return f"cannot resolve the host of {where}"
    if any(hint in lower for hint in _TLS_HINTS):
        return f"TLS handshake with {where} failed: {detail}"
    if phase == "stream":
        return f"{detail or 'connection lost'} (while streaming the reply)"
    if "failed to connect" in lower:
        return f"cannot connect to {where}: {detail}"
    return detail or f"{where} is unavailable"


def _rpc_error(exc: grpc.RpcError, *, where: str, phase: Phase, timeout_s: float) -> TransportError:
    code: grpc.StatusCode | None = None
    details: str | None = None
    if isinstance(exc, grpc.Call):
        code = exc.code()
        details = exc.details()
    return map_grpc_error(code, details, where=where, phase=phase, timeout_s=timeout_s)


# ---------------------------------------------------------------------------------------------------------------
# the transport


@dataclass(frozen=True, slots=True)
class GrpcTarget:
    address: str  # what grpc dials: host:port ([v6]:port)
    tls: bool

    @property
    def where(self) -> str:
        return self.address


def parse_target(target: str) -> GrpcTarget:
    """``grpc://host:port`` or ``grpcs://host[:port]`` (gRPC has no path: a target with one is refused)."""
    shown = redact_url(target)
    try:
        url = urllib.parse.urlsplit(target)
        port = url.port
    except ValueError as exc:
        raise ConfigError(f"target {shown!r} is not a valid URL: {exc}") from None
    scheme = url.scheme.lower()
    if scheme not in GrpcTransport.schemes or not url.hostname:
        raise ConfigError(f"target {shown!r} must be grpc://host:port or grpcs://host[:port]")
    if url.path not in ("", "/") or url.query or url.fragment:
        raise ConfigError(f"target {shown!r}: a gRPC target is host and port only (no path or query)")
    if url.username or url.password:
        raise ConfigError(f"target {shown!r}: put credentials in LOADGEN_API_KEY, not in the URL")
    tls = scheme == "grpcs"
    if port is None:
        if not tls:
            raise ConfigError(f"target {shown!r} needs a port: grpc://host:PORT")
        port = DEFAULT_TLS_PORT
    host = url.hostname
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return GrpcTarget(address=address, tls=tls)


class GrpcTransport(Transport):
    """``loadgen.chat.v1.ChatService`` over gRPC: ``Chat`` (streamed) or ``Complete`` (whole)."""

    name: ClassVar[str] = "grpc"
    schemes: ClassVar[tuple[str, ...]] = ("grpc", "grpcs")

    def __init__(self, config: TransportConfig) -> None:
        super().__init__(config)
        self._target = parse_target(config.target)
        if self._target.tls and not config.tls_verify:
            raise ConfigError(
                "grpcs:// cannot skip certificate verification (grpcio has no such switch): trust the server's CA "
                "instead, e.g. GRPC_DEFAULT_SSL_ROOTS_FILE_PATH=/path/to/ca.pem"
            )
        if config.connect_timeout_s <= 0:
            raise ConfigError(f"connect timeout must be positive, got {config.connect_timeout_s!r}")
        self._model = config.model or None
        self._secret = config.api_key or None
        self._metadata: Metadata = ()
        if self._secret is not None:
            self._metadata = ((AUTH_HEADER, bearer(self._secret)),)
        self._channel: grpc.Channel | None = None
        self._chat: ChatCallable | None = None
        self._complete: CompleteCallable | None = None

    # -- the channel -----------------------------------------------------------------------------------------------

    def _channel_options(self) -> list[tuple[str, Any]]:
        connect_ms = max(1, round(self.config.connect_timeout_s * 1000))
        return [
            ("grpc.primary_user_agent", f"chat-loadgen/{__version__}"),
            # one connection per transport (= per Locust user), not one shared by every channel of the process
            ("grpc.use_local_subchannel_pool", 1),
            # grpcio's name for the connect timeout (each attempt waits at least this long)
            ("grpc.min_reconnect_backoff_ms", connect_ms),  # in grpc core: the least time one attempt may take
            ("grpc.initial_reconnect_backoff_ms", INITIAL_RECONNECT_BACKOFF_MS),
            ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS),
            # one message can never be larger than the whole reply may be
            ("grpc.max_receive_message_length", self.config.max_reply_bytes),
        ]

    def _ensure_channel(self) -> tuple[ChatCallable, CompleteCallable]:
        if self._chat is None or self._complete is None:
            ensure_gevent_support()
            options = self._channel_options()
            if self._target.tls:
                channel = grpc.secure_channel(self._target.address, grpc.ssl_channel_credentials(), options)
            else:
                channel = grpc.insecure_channel(self._target.address, options)
            self._channel = channel
            self._chat = channel.unary_stream(
                CHAT_METHOD,
                request_serializer=chat_pb2.ChatRequest.SerializeToString,
                response_deserializer=chat_pb2.ChatChunk.FromString,
            )
            self._complete = channel.unary_unary(
                COMPLETE_METHOD,
                request_serializer=chat_pb2.ChatRequest.SerializeToString,
                response_deserializer=chat_pb2.ChatResponse.FromString,
            )
        return self._chat, self._complete

    # -- one turn ------------------------------------------------------------------------------------------------

    def _send(self, request: ChatRequest, turn_timeout: float) -> Reply:
        chat, complete = self._ensure_channel()
        message = self.to_proto(request)
        metadata = self._metadata
        if request.trace_headers is not None:  # tracing on (loadgen.telemetry.tracing): the turn's span context
            metadata = (*metadata, *request.trace_headers.items())
        if request.stream:
            return self._stream(chat, message, turn_timeout, metadata)
        return self._whole(complete, message, turn_timeout, metadata)

    def to_proto(self, request: ChatRequest) -> chat_pb2.ChatRequest:
        """The message this transport sends for ``request`` (its ``model`` option wins)."""
        return encode_request(request, model=self._model)

    def _stream(
        self, chat: ChatCallable, message: chat_pb2.ChatRequest, turn_timeout: float, metadata: Metadata
    ) -> Reply:
        parts: list[str] = []
        times: list[float] = []
        tokens: list[float] = []
        last: chat_pb2.ChatChunk | None = None
        phase: Phase = "send"
        left = limit = self.config.max_reply_bytes
        t_sent = time.perf_counter()
        call: Any = chat(message, timeout=turn_timeout, metadata=metadata)
        done = False
        try:
            headers = call.initial_metadata()  # returns once the headers came (or the call ended)
            t_first_byte = time.perf_counter()
            chunks: Iterator[chat_pb2.ChatChunk] = call
            for chunk in chunks:
                now = time.perf_counter()
                phase = "stream"
                left -= chunk.ByteSize()
                if left < 0:
                    raise reply_too_large(limit)
                if chunk.text:
                    parts.append(chunk.text)
                    times.append(now)
                    tokens.append(float(chunk.tokens))
                last = chunk
            t_done = time.perf_counter()
            done = True
        except grpc.RpcError as exc:
            raise _rpc_error(exc, where=self._target.where, phase=phase, timeout_s=turn_timeout) from exc
        finally:
            if not done:
                call.cancel()  # frees the server's slot; a no-op on a call that already ended
        reply = streamed_reply(
            parts, times, tokens, decode_usage(last), t_sent=t_sent, t_first_byte=t_first_byte, t_done=t_done
        )
        reply.session_new = session_is_new(headers)
        return reply

    def _whole(
        self, complete: CompleteCallable, message: chat_pb2.ChatRequest, turn_timeout: float, metadata: Metadata
    ) -> Reply:
        t_sent = time.perf_counter()
        future: Any = complete.future(message, timeout=turn_timeout, metadata=metadata)
        done = False
        try:
            headers = future.initial_metadata()
            t_first_byte = time.perf_counter()
            response: chat_pb2.ChatResponse = future.result()
            t_done = time.perf_counter()
            done = True
        except grpc.RpcError as exc:
            raise _rpc_error(exc, where=self._target.where, phase="send", timeout_s=turn_timeout) from exc
        finally:
            if not done:
                future.cancel()
        usage = decode_usage(response)
        reply = whole_reply(response.text, usage, t_sent=t_sent, t_first_byte=t_first_byte, t_done=t_done)
        reply.session_new = session_is_new(headers)
        return reply

    def close(self) -> None:
        channel, self._channel = self._channel, None
        self._chat = self._complete = None
        if channel is not None:
            channel.close()


__all__ = [
    "CHAT_METHOD",
    "COMPLETE_METHOD",
    "GRPC_ERRORS",
    "SERVICE_NAME",
    "GrpcTarget",
    "GrpcTransport",
    "StatusRule",
    "ensure_gevent_support",
    "map_grpc_error",
    "parse_target",
    "running_under_gevent",
]
