"""gRPC transport: ``loadgen.chat.v1.ChatService`` (``proto/loadgen/chat/v1/chat.proto``) over our own HTTP/2
client for plain ``grpc://`` targets, over ``grpc.aio`` for ``grpcs://``.

Which client: :data:`CLIENT_ENV` (``LOADGEN_GRPC_CLIENT``) ``h2`` (the default) sends plain ``grpc://`` calls with
:mod:`loadgen.transports.grpc_h2` (HTTP/2 and gRPC framing of our own, the reply's frames read by the gevent
hub's :class:`~loadgen.transports.read_mux.ReadMux` like REST's bodies: grpcio spent ~85-160 µs of client CPU per
streamed message); ``grpcio`` keeps them on ``grpc.aio`` as described below. ``grpcs://`` and subclasses with
their own ``_send`` (the adapter transport) always use ``grpc.aio``. Both clients give the same replies, the same
timing contract and the same errors (:func:`map_grpc_error` with a :class:`grpc.StatusCode`); the tests run both.

``Chat`` (server streaming, one message per token chunk) when the request streams, ``Complete`` (unary) when
not. One :class:`grpc.aio.Channel` per transport object, i.e. per Locust user, with a subchannel pool of its own
so that every user holds its own HTTP/2 connection, as separate clients would. The channel is made on first
use, never at import: Locust may fork (``--processes``) after importing the locustfile, and grpcio must not
have started anything before a fork.

Where the calls run: on the process's asyncio loop (:class:`loadgen.transports.bridge.AsyncBridge`, one loop in
a real thread per process, made in the process that uses it), the channel made, used and closed in that loop's
thread. A turn is one coroutine there: it starts the call, stamps every event of the reply as it comes and
builds the :class:`Reply`; the greenlet (or thread) that sent the turn waits for it in one hop. grpcio's sync
API under gevent (``grpc.experimental.gevent.init_gevent()``) instead handed every streamed message through
gevent's thread pool, which cost ~4x the client CPU per streamed turn (reports/BENCHMARKS.md). Under gevent
:mod:`loadgen.transports.grpc_aio` starts grpc.aio's poller on a real thread. A greenlet killed while it waits
(``GreenletExit``: Locust stopping a user) cancels the task, and with it the call; the call's deadline is the
turn's timeout, and the bridge's own wait a backstop :data:`BRIDGE_SLACK_S` longer. A channel left on a loop
that is gone (a stopped bridge, the parent's before a fork) is dropped and a new one made.
:func:`ensure_gevent_support` (``init_gevent()``) stays for sync grpcio elsewhere in a gevent process (the
bench's bare gRPC user); the transport no longer calls it.

TLS: ``grpcs://`` verifies the server against the system roots (``grpc.ssl_channel_credentials()``); grpcio has
no switch to skip verification, so ``tls_verify=False`` is refused, and a private CA is trusted with grpcio's
own ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH=/path/ca.pem``. ``connect_timeout_s`` bounds each connection attempt;
the turn timeout is the deadline of every call. A channel that lost its server retries every 0.1 s growing to at
most 0.5 s (:data:`MAX_RECONNECT_BACKOFF_MS`), so a server that is back is used again within about 0.6 s. A reply
past ``max_reply_bytes`` (its messages' sizes) is a :class:`ProtocolError`; the initial metadata
``x-loadgen-session: new`` sets ``Reply.session_new``.

Timing, as close to the wire as grpcio allows (``time.perf_counter()``, taken in the loop thread; with the ``h2``
client: the moment of the hub's wake-up, or of the ``recv``, that brought each frame):

- ``t_sent``: just before the call is started (in the loop thread);
- ``t_first_byte``: when the response's initial metadata (HTTP/2 headers) arrived;
- each streamed message: stamped when ``read()`` hands it over, before anything else is done with it;
- ``t_done``: when the call ended with status OK (the trailers); for ``Complete``, when the response came.

A thin adapter over the wire contract (:mod:`loadgen.wire.grpc`): the method names come from the generated
descriptor, the request and usage are converted there, and every :class:`grpc.StatusCode` but OK maps to the
failure kind :mod:`loadgen.wire.status` gives it (see :data:`GRPC_ERRORS`), whose reason starts with the status name
(``"UNAVAILABLE: connection refused to 127.0.0.1:50051"``); the API key, sent as :mod:`loadgen.wire.auth` says
(metadata ``authorization: Bearer <key>``), never appears in a reason.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeAlias, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import DecodeError

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
from loadgen.transports import grpc_aio
from loadgen.transports.base import Transport, TransportConfig
from loadgen.transports.bridge import AsyncBridge, BridgeError
from loadgen.transports.grpc_h2 import CallResult, H2Channel
from loadgen.transports.h2_connection import H2CallError
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
#: The bridge waits this much longer than the turn's timeout: the call's own deadline ends a turn first.
BRIDGE_SLACK_S = 5.0
#: How long closing a channel (on its loop) may take.
CLOSE_TIMEOUT_S = 5.0
#: What ``read()`` of a streamed call gives at its end.
EOF: Any = getattr(grpc.aio, "EOF")  # noqa: B009 - not in grpc-stubs
T = TypeVar("T")

Phase = Literal["send", "stream"]
USER_AGENT_KEY = "user-agent"
_USER_AGENT = f"chat-loadgen/{__version__}"
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
    if isinstance(exc, (grpc.Call, grpc.aio.AioRpcError)):
        code = exc.code()
        details = exc.details()
    return map_grpc_error(code, details, where=where, phase=phase, timeout_s=timeout_s)


# ---------------------------------------------------------------------------------------------------------------
# the transport


@dataclass(frozen=True, slots=True)
class GrpcTarget:
    address: str  # what grpc dials: host:port ([v6]:port)
    tls: bool
    host: str = field(default="", compare=False)
    port: int = field(default=0, compare=False)

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
    return GrpcTarget(address=address, tls=tls, host=host, port=port)


#: Which client speaks plain ``grpc://`` targets: ``h2`` (:mod:`loadgen.transports.grpc_h2`) or ``grpcio``.
CLIENT_ENV = "LOADGEN_GRPC_CLIENT"
CLIENTS = ("h2", "grpcio")
DEFAULT_CLIENT = "h2"


def grpc_client() -> str:
    """The client :data:`CLIENT_ENV` asks for (:data:`DEFAULT_CLIENT` when unset)."""
    client = os.environ.get(CLIENT_ENV, "").strip().lower() or DEFAULT_CLIENT
    if client not in CLIENTS:
        raise ConfigError(f"{CLIENT_ENV}={client!r}: expected one of {', '.join(CLIENTS)}")
    return client


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
        #: the channel and its multi-callables live on ``_bridge``'s loop: made, used and closed in its thread
        self._channel: grpc.aio.Channel | None = None
        self._bridge: AsyncBridge | None = None
        self._callables: dict[object, Any] = {}
        #: plain grpc:// with our own HTTP/2 client (a subclass with its own ``_send``, e.g. the adapter: grpcio)
        self._h2: H2Channel | None = None
        if not self._target.tls and type(self)._send is GrpcTransport._send and grpc_client() == "h2":
            target = self._target
            self._h2 = H2Channel(target.host, target.port, target.address, config.connect_timeout_s)

    # -- the channel (loop thread) -----------------------------------------------------------------------------

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

    def _loop_channel(self) -> grpc.aio.Channel:
        """This transport's channel, made on first use; only ever called in the bridge's loop thread."""
        channel = self._channel
        if channel is None:
            grpc_aio.prepare()  # under gevent: grpc.aio's poller on a real thread (before the first channel)
            options = self._channel_options()
            if self._target.tls:
                channel = grpc.aio.secure_channel(self._target.address, grpc.ssl_channel_credentials(), options)
            else:
                channel = grpc.aio.insecure_channel(self._target.address, options)
            self._channel = channel
            self._callables = {}
        return channel

    def _callable(self, key: object, make: Callable[[grpc.aio.Channel], Any]) -> Any:
        """The multi-callable ``make(channel)`` of this transport's channel, made once per channel (loop thread)."""
        channel = self._loop_channel()
        found = self._callables.get(key)
        if found is None:
            found = self._callables[key] = make(channel)
        return found

    def _chat(self) -> Any:
        return self._callable(
            CHAT_METHOD,
            lambda channel: channel.unary_stream(
                CHAT_METHOD,
                request_serializer=chat_pb2.ChatRequest.SerializeToString,
                response_deserializer=chat_pb2.ChatChunk.FromString,
            ),
        )

    def _complete(self) -> Any:
        return self._callable(
            COMPLETE_METHOD,
            lambda channel: channel.unary_unary(
                COMPLETE_METHOD,
                request_serializer=chat_pb2.ChatRequest.SerializeToString,
                response_deserializer=chat_pb2.ChatResponse.FromString,
            ),
        )

    # -- one turn ------------------------------------------------------------------------------------------------

    def _send(self, request: ChatRequest, turn_timeout: float) -> Reply:
        message = self.to_proto(request)
        metadata = self._metadata
        if request.trace_headers is not None:  # tracing on (loadgen.telemetry.tracing): the turn's span context
            metadata = (*metadata, *request.trace_headers.items())
        if self._h2 is not None:
            return self._h2_send(self._h2, message, request.stream, turn_timeout, metadata)
        if request.stream:
            return self._on_loop(lambda: self._stream(self._chat(), message, turn_timeout, metadata), turn_timeout)
        return self._on_loop(lambda: self._whole(self._complete(), message, turn_timeout, metadata), turn_timeout)

    def _bridge_now(self) -> AsyncBridge:
        """The process's bridge; a channel left on another one (stopped, or the parent's before a fork) is dropped:
        its loop is gone."""
        bridge = AsyncBridge.get()
        if self._bridge is not bridge:
            self._channel, self._callables, self._bridge = None, {}, bridge
        return bridge

    def _on_loop(self, turn: Callable[[], Awaitable[T]], turn_timeout: float) -> T:
        """Run ``turn()`` on the loop; the greenlet (or thread) waits for its result in one hop. The call's own
        deadline is the turn's timeout: the bridge's wait is a backstop a little longer."""
        bridge = self._bridge_now()
        try:
            return bridge.run(turn, timeout=turn_timeout + BRIDGE_SLACK_S)
        except TimeoutError as exc:
            raise TurnTimeout(f"turn exceeded its timeout ({turn_timeout:g}s): no answer from the gRPC loop") from exc
        except BridgeError as exc:
            raise ConnectError(f"the gRPC transport's event loop is not running: {exc}") from exc

    def to_proto(self, request: ChatRequest) -> chat_pb2.ChatRequest:
        """The message this transport sends for ``request`` (its ``model`` option wins)."""
        return encode_request(request, model=self._model)

    async def _stream(self, chat: Any, message: Any, turn_timeout: float, metadata: Metadata) -> Reply:
        """One streamed call, in the loop thread; a cancelled task (the waiting greenlet was killed) cancels it."""
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
            headers = await call.initial_metadata()  # once the headers came (or the call ended)
            t_first_byte = time.perf_counter()
            read = call.read
            while True:
                chunk = await read()
                now = time.perf_counter()
                if chunk is EOF:
                    break
                if chunk is None:  # grpc.aio logs a message it cannot deserialize and hands over None
                    raise _unparseable(phase)
                phase = "stream"
                left -= chunk.ByteSize()
                if left < 0:
                    raise reply_too_large(limit)
                if chunk.text:
                    parts.append(chunk.text)
                    times.append(now)
                    tokens.append(float(chunk.tokens))
                last = chunk
            t_done = time.perf_counter()  # read() gave EOF: the call ended with OK (any other status raises)
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

    async def _whole(self, complete: Any, message: Any, turn_timeout: float, metadata: Metadata) -> Reply:
        """One unary call, in the loop thread."""
        t_sent = time.perf_counter()
        call: Any = complete(message, timeout=turn_timeout, metadata=metadata)
        done = False
        try:
            headers = await call.initial_metadata()
            t_first_byte = time.perf_counter()
            response: chat_pb2.ChatResponse | None = await call
            t_done = time.perf_counter()
            if response is None:
                raise _unparseable("send")
            done = True
        except grpc.RpcError as exc:
            raise _rpc_error(exc, where=self._target.where, phase="send", timeout_s=turn_timeout) from exc
        finally:
            if not done:
                call.cancel()
        usage = decode_usage(response)
        reply = whole_reply(response.text, usage, t_sent=t_sent, t_first_byte=t_first_byte, t_done=t_done)
        reply.session_new = session_is_new(headers)
        return reply

    # -- one turn with our own HTTP/2 client (loadgen.transports.grpc_h2) -------------------------------------------

    def _h2_send(
        self, h2: H2Channel, message: chat_pb2.ChatRequest, stream: bool, turn_timeout: float, metadata: Metadata
    ) -> Reply:
        """One call by :class:`H2Channel`: the same reply, timing and errors as :meth:`_stream` / :meth:`_whole`."""
        headers = [(USER_AGENT_KEY, _USER_AGENT), *((k.lower(), v) for k, v in metadata)]
        result = h2.call(
            CHAT_METHOD if stream else COMPLETE_METHOD,
            headers,
            message.SerializeToString(),
            turn_timeout,
            self.config.max_reply_bytes,
        )
        reply = self._h2_stream(result, turn_timeout) if stream else self._h2_whole(result, turn_timeout)
        reply.session_new = session_is_new(result.headers)
        return reply

    def _h2_stream(self, result: CallResult, turn_timeout: float) -> Reply:
        parts: list[str] = []
        times: list[float] = []
        tokens: list[float] = []
        last: chat_pb2.ChatChunk | None = None
        phase: Phase = "send"
        parse = chat_pb2.ChatChunk.FromString
        for at, raw in result.messages:
            try:
                chunk = parse(raw)
            except DecodeError:
                raise _unparseable(phase) from None
            phase = "stream"
            if chunk.text:
                parts.append(chunk.text)
                times.append(at)
                tokens.append(float(chunk.tokens))
            last = chunk
        self._h2_check(result, phase, turn_timeout)
        assert result.ended_at is not None
        return streamed_reply(
            parts,
            times,
            tokens,
            decode_usage(last),
            t_sent=result.t_sent,
            t_first_byte=result.headers_at,
            t_done=result.ended_at,
        )

    def _h2_whole(self, result: CallResult, turn_timeout: float) -> Reply:
        self._h2_check(result, "send", turn_timeout)
        if len(result.messages) != 1:
            count = len(result.messages)
            raise map_grpc_error(grpc.StatusCode.INTERNAL, f"{count} messages in the reply to a unary call")
        try:
            response = chat_pb2.ChatResponse.FromString(result.messages[0][1])
        except DecodeError:
            raise _unparseable("send") from None
        assert result.ended_at is not None
        usage = decode_usage(response)
        return whole_reply(
            response.text, usage, t_sent=result.t_sent, t_first_byte=result.headers_at, t_done=result.ended_at
        )

    def _h2_check(self, result: CallResult, phase: Phase, turn_timeout: float) -> None:
        """Raise what ended the call, if it did not end with OK."""
        error = result.error
        if error is None:
            if result.status == grpc.StatusCode.OK:
                return
            error = H2CallError(result.status or grpc.StatusCode.UNKNOWN, result.details)
        where = self._target.where
        if isinstance(error, H2CallError):
            code, details = error.code(), error.details()
            raise map_grpc_error(code, details, where=where, phase=phase, timeout_s=turn_timeout) from error
        if isinstance(error, TimeoutError):
            code = grpc.StatusCode.DEADLINE_EXCEEDED
            raise map_grpc_error(code, "Deadline Exceeded", where=where, phase=phase, timeout_s=turn_timeout) from error
        if isinstance(error, TransportError):
            raise error
        raise map_grpc_error(grpc.StatusCode.INTERNAL, str(error), where=where, phase=phase) from error

    def close(self) -> None:
        if self._h2 is not None:
            self._h2.close()
        channel, self._channel = self._channel, None
        self._callables = {}
        bridge, self._bridge = self._bridge, None
        if channel is None:
            return
        if bridge is None or bridge is not AsyncBridge.current() or bridge.in_loop_thread:
            return  # its loop is gone (stopped, another process's): so is its connection
        with contextlib.suppress(TimeoutError, BridgeError):
            bridge.run(lambda: channel.close(None), timeout=CLOSE_TIMEOUT_S)


def _unparseable(phase: Phase) -> TransportError:
    """What the sync API raised for a message it could not deserialize (INTERNAL), mapped the same way."""
    return map_grpc_error(grpc.StatusCode.INTERNAL, "Exception deserializing response!", phase=phase)


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
