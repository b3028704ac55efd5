"""REST transport: OpenAI-compatible chat completions (``POST`` :data:`~loadgen.wire.openai.CHAT_PATH`), streamed
as Server-Sent Events.

A thin adapter over the wire contract: the body is :func:`loadgen.wire.openai.encode_request`, the stream is cut by
:mod:`loadgen.wire.sse` and read by :mod:`loadgen.wire.openai` (the learned chunk shape on the hot path), an
error status or ``event: error`` becomes the failure kind :mod:`loadgen.wire.status` gives its code, and the key
goes as :func:`loadgen.wire.auth.bearer` says. What is left here is httpx: the client, its errors, the timing.

A plain ``http://`` target is spoken to by :class:`~loadgen.transports.http1_stream.Http1Client` (one keep-alive
connection per transport, the body read straight off the socket, one pass per ``recv`` over the chunked framing:
httpcore's and h11's layers cost ~40 µs per streamed token); httpx still builds the request and reads error
statuses, whole replies and content codings from its response object. https keeps httpx all the way.

One sync :class:`httpx.Client` per transport (one per Locust user: a client shared by many greenlets
collapses under load), every https client of a process sharing ONE :class:`ssl.SSLContext`, built lazily on
first use in the process that uses it (building one costs ~26 ms of blocking CPU; Locust may fork after import).

Timing, as close to the wire as httpx allows (``time.perf_counter()``):

- ``t_sent``: just before :meth:`httpx.Client.send`;
- ``t_first_byte``: when the response headers arrived (``send(..., stream=True)`` returned);
- each content chunk: when the bytes of its first line came out of the connection (each piece as it
  arrives, whatever its size: never held back to fill a buffer; on plain http, the ``recv`` that brought
  them), before any decoding or parsing;
- ``t_done``: the ``[DONE]`` line, or the end of the body when a stream ends on a ``finish_reason``.

Errors come out as :mod:`loadgen.errors` (one table: :mod:`loadgen.transports.httpx_errors`), chaining the httpx
exception; the API key never appears in a reason. A reply past ``max_reply_bytes`` (bytes of the body as they come,
before any decoding) is a :class:`ProtocolError`, and so is a whole (non-streamed) reply to a streaming request,
unless ``accept_unstreamed``: then it is read whole and flagged (``Reply.status`` ``"unstreamed"``). The server's
``x-loadgen-session: new`` header sets ``Reply.session_new`` (:mod:`loadgen.wire.session`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from typing import ClassVar

import httpcore  # noqa: F401 - httpx imports it on the first Client (~70 ms with trio installed): not mid-load
import httpx

from loadgen import __version__
from loadgen.errors import ConfigError, ProtocolError, ServerError, TransportError, TurnTimeout
from loadgen.transports.base import Transport, TransportConfig
from loadgen.transports.deadline import TurnDeadline, deadline_transport
from loadgen.transports.http1_stream import Http1Body, Http1Client, encode_headers, encode_request
from loadgen.transports.httpx_errors import (
    HTTPX_ERRORS,
    HTTPX_EXCEPTIONS,
    READ_FAILURES,
    ErrorRule,
    Phase,
    map_httpx_error,
)
from loadgen.transports.replies import reply_too_large, streamed_reply, whole_reply
from loadgen.types import UNSTREAMED, ChatRequest, Reply, Usage
from loadgen.wire import sse
from loadgen.wire.auth import AUTH_HEADER, bearer
from loadgen.wire.openai import (
    CHAT_PATH,
    JSON_CONTENT_TYPE,
    ChatChunk,
    ContentChunkShape,
    decode_event,
    error_from_body,
    parse_chat_chunk,
    parse_chat_completion,
)
from loadgen.wire.openai import encode_request as encode_request_body
from loadgen.wire.session import SESSION_NEW, SESSION_STATE_HEADER
from loadgen.wire.sse import LineSplitter, SSEParser
from loadgen.wire.text import redact_url

DEFAULT_PATH = CHAT_PATH
#: At most this much of an error response's body is read for its message.
ERROR_BODY_LIMIT = 16 * 1024


# ---------------------------------------------------------------------------------------------------------------
# per-process set-up, done on first use (never at import: Locust may fork after importing the locustfile)

_ssl_contexts: dict[str, ssl.SSLContext] = {}
_ssl_pid: int | None = None
_logs_quietened = False


def shared_ssl_context(verify: bool) -> ssl.SSLContext:
    """The one SSL context of this process for https targets with ``verify`` on or off (built on first call,
    and again in a forked child). Building one loads the CA bundle: ~26 ms of CPU that blocks the hub."""
    return _shared_context("verify" if verify else "no-verify", lambda: httpx.create_ssl_context(verify=verify))


def _plain_http_context() -> ssl.SSLContext:
    """For http:// targets, which never use TLS: httpx builds a context for every client all the same, so hand
    it a cheap one with no CA loaded. It still requires verification, so any TLS use would fail, not pass."""
    return _shared_context("plain-http", lambda: ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))


def _shared_context(key: str, build: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    # No lock: building does not yield to other greenlets, and two threads racing would only build one twice.
    global _ssl_pid
    if _ssl_pid != os.getpid():
        _ssl_contexts.clear()
        _ssl_pid = os.getpid()
    ctx = _ssl_contexts.get(key)
    if ctx is None:
        ctx = _ssl_contexts[key] = build()
    return ctx


def _quieten_http_logs() -> None:
    """httpx logs one INFO line per request (Locust sets the root logger to INFO): ~10% of throughput."""
    global _logs_quietened
    if not _logs_quietened:
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)
        _logs_quietened = True


# ---------------------------------------------------------------------------------------------------------------
# the transport


def chat_url(target: str, path: str | None = None) -> str:
    """``{target}{path}``; a target that already ends with ``/v1`` does not get a second one."""
    base = target.rstrip("/")
    path = path or DEFAULT_PATH
    if not path.startswith("/"):
        path = "/" + path
    if base.endswith("/v1") and path.startswith("/v1/"):
        path = path[3:]
    return base + path


class _DeadlineStream(httpx.SyncByteStream):
    """Wraps a response's byte stream: the whole-turn deadline is checked on every piece that arrives, so a
    server that dribbles bytes forever (with or without line breaks) still ends as :class:`TurnTimeout`, and the
    bytes are counted, so a reply past ``max_bytes`` ends as a :class:`ProtocolError`. (A server that goes
    silent is ended at the deadline by the connection's own reads: :mod:`loadgen.transports.deadline`.)

    Closing it lets go of the inner stream: httpx's stream and its response refer to each other, and that
    cycle would otherwise outlive the turn until a full garbage collection (see :meth:`close`)."""

    def __init__(self, inner: httpx.SyncByteStream, deadline: float, timeout_s: float, max_bytes: int) -> None:
        self._inner = inner
        self._deadline = deadline
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes
        self._left = max_bytes

    def __iter__(self) -> Iterator[bytes]:
        for piece in self._inner:
            if time.perf_counter() > self._deadline:
                raise TurnTimeout(f"turn exceeded its timeout ({self._timeout_s:g}s) while streaming the reply")
            self._left -= len(piece)
            if self._left < 0:
                raise reply_too_large(self._max_bytes)
            yield piece

    def close(self) -> None:
        inner, self._inner = self._inner, _CLOSED
        inner.close()


_CLOSED = httpx.ByteStream(b"")


class RestTransport(Transport):
    """OpenAI-compatible chat completions over HTTP(S), streamed (SSE) or whole.

    The turn timeout bounds the whole turn, whatever the server does: every connect, write and read of the
    client's connections waits at most what is left of the turn (:mod:`loadgen.transports.deadline`), and the
    deadline is checked on every piece of the body that arrives, so silence before the headers, headers then
    silence, and a dribble all end as :class:`TurnTimeout` at the deadline, its reason naming the limit (``turn
    exceeded its timeout (5s) before the reply`` / ``... while streaming the reply``). A connect timeout shorter
    than the turn keeps its own reason.
    """

    name: ClassVar[str] = "rest"
    schemes: ClassVar[tuple[str, ...]] = ("http", "https")

    def __init__(self, config: TransportConfig, *, transport: httpx.BaseTransport | None = None) -> None:
        """``transport`` replaces httpx's network transport (tests pass an :class:`httpx.MockTransport`)."""
        super().__init__(config)
        try:
            url = httpx.URL(config.target)
        except httpx.InvalidURL as exc:
            raise ConfigError(f"target {redact_url(config.target)!r} is not a valid URL: {exc}") from None
        if url.scheme not in self.schemes or not url.host:
            raise ConfigError(f"target {redact_url(config.target)!r} must be http(s)://host[:port][/prefix]")
        if config.max_reply_bytes < 1:
            raise ConfigError(f"the reply size limit must be at least 1 byte, got {config.max_reply_bytes}")
        host = f"[{url.host}]" if ":" in url.host else url.host
        self._where = f"{host}:{url.port or (443 if url.scheme == 'https' else 80)}"
        self._url = chat_url(config.target, config.path)
        self._model = config.model
        headers = {"User-Agent": f"chat-loadgen/{__version__}"}
        self._secret = config.api_key or None
        if self._secret is not None:
            headers[AUTH_HEADER] = bearer(self._secret)
        _quieten_http_logs()
        ssl_context = shared_ssl_context(config.tls_verify) if url.scheme == "https" else _plain_http_context()
        self._turn_deadline = TurnDeadline()  # held on every socket operation of this client's connections
        self._client = httpx.Client(
            verify=ssl_context,
            headers=headers,
            follow_redirects=False,
            transport=transport or deadline_transport(ssl_context, self._turn_deadline),
        )
        # plain http with httpx's own network transport: our HTTP/1.1 client (loadgen.transports.http1_stream);
        # https or a transport passed in: httpx all the way. (No proxy either way: a client given a transport
        # does not read proxies from the environment.)
        self._http1: Http1Client | None = None
        if self.direct_http1 and transport is None and url.scheme == "http":
            self._http1 = Http1Client(url.host, url.port or 80)
        # and this class's own requests are written in their wire form (a subclass building its own: httpx)
        self._wire_heads: dict[bool, bytes] | None = None
        if self._http1 is not None and type(self)._build_request is RestTransport._build_request:
            self._wire_heads = {}
        self._closed = False

    #: plain http:// targets are sent by :class:`~loadgen.transports.http1_stream.Http1Client` (``False``: httpx)
    direct_http1: ClassVar[bool] = True

    # -- one turn ------------------------------------------------------------------------------------------------

    def _send(self, request: ChatRequest, turn_timeout: float) -> Reply:
        http_request: httpx.Request | bytes
        if self._wire_heads is not None and not self._client.cookies:
            http_request = self._wire_request(request, self._wire_heads)
        else:
            http_request = self._build_request(request, turn_timeout)
            if request.trace_headers is not None:  # tracing on (loadgen.telemetry.tracing): the turn's span context
                http_request.headers.update(request.trace_headers)
        t_sent = time.perf_counter()
        self._turn_deadline.at = t_sent + turn_timeout
        try:
            return self._exchange(http_request, request.stream, t_sent, turn_timeout)
        finally:
            self._turn_deadline.at = None

    def _timed_out(self, exc: httpx.TimeoutException, phase: Phase, turn_timeout: float) -> TransportError:
        """Every wait of a turn ends by its deadline at the latest (:mod:`loadgen.transports.deadline`): a timeout
        names the turn's limit, unless the connect timeout, when shorter, ran out first."""
        deadline = self._turn_deadline.at
        if isinstance(exc, httpx.ConnectTimeout) and deadline is not None and time.perf_counter() < deadline:
            return map_httpx_error(exc, where=self._where, phase=phase)
        when = "while streaming the reply" if phase == "body" else "before the reply"
        return TurnTimeout(f"turn exceeded its timeout ({turn_timeout:g}s) {when}")

    def _wire_request(self, request: ChatRequest, heads: dict[bool, bytes]) -> bytes:
        """The request of one turn in its wire form, for the direct path: what :meth:`_build_request` and httpx
        would send, byte for byte, without building httpx's request objects every turn (~0.3 ms a turn: the
        largest per-turn part once the reply is read off the socket). The request line and the headers that
        never change are built by httpx once per transport; the body, its length and tracing headers each turn."""
        head = heads.get(request.stream)
        if head is None:
            template = self._build_request(request, self.config.timeout_s)
            head = heads[request.stream] = encode_request(template, body=False)
        body = encode_request_body(request, model=self._model)
        lines = [head, b"Content-Length: ", str(len(body)).encode(), b"\r\n"]
        if request.trace_headers is not None:
            lines += encode_headers((k.encode(), v.encode()) for k, v in request.trace_headers.items())
        lines += (b"\r\n", body)
        return b"".join(lines)

    def _exchange(
        self, http_request: httpx.Request | bytes, streaming: bool, t_sent: float, turn_timeout: float
    ) -> Reply:
        http1 = self._http1
        direct = http1 is not None and (isinstance(http_request, bytes) or http1.serves(http_request.url))
        try:
            if isinstance(http_request, bytes):
                assert http1 is not None
                connect_timeout = min(self.config.connect_timeout_s, turn_timeout)
                deadline = t_sent + turn_timeout
                response = http1.send_bytes(
                    http_request, "POST", deadline, connect_timeout, self.config.max_reply_bytes
                )
            elif direct:
                assert http1 is not None
                response = http1.send(http_request, t_sent + turn_timeout, self.config.max_reply_bytes)
            else:
                response = self._client.send(http_request, stream=True)
        except httpx.TimeoutException as exc:
            raise self._timed_out(exc, "send", turn_timeout) from exc
        except HTTPX_EXCEPTIONS as exc:
            raise map_httpx_error(exc, where=self._where, phase="send") from exc
        t_first_byte = time.perf_counter()
        try:
            if t_first_byte - t_sent > turn_timeout:
                raise TurnTimeout(f"turn exceeded its timeout ({turn_timeout:g}s) before the reply")
            body: httpx.SyncByteStream
            if direct:  # the deadline and the size limit are kept by the body itself, on every recv
                body = _sync_stream(response)
                if "set-cookie" in response.headers:  # as httpx's send does
                    if isinstance(http_request, bytes):
                        response.request = httpx.Request("POST", self._url)
                    self._client.cookies.extract_cookies(response)
            else:
                body = _DeadlineStream(
                    _sync_stream(response), t_sent + turn_timeout, turn_timeout, self.config.max_reply_bytes
                )
                response.stream = body
            if not 200 <= response.status_code < 300:
                raise self._status_error(response)
            content_type = response.headers.get("content-type", "").lower()
            streamed = sse.CONTENT_TYPE in content_type if content_type else streaming
            if streamed:
                encoding = response.headers.get("content-encoding", "identity").strip().lower()
                # no content coding: the pieces straight from the connection, skipping httpx's decoder and
                # chunker layers (three calls a piece, two pieces a token); otherwise httpx decodes them
                pieces = body if encoding in ("", "identity") else response.iter_bytes()
                reply = self._read_stream(pieces, t_sent, t_first_byte)
            elif streaming:
                reply = self._unstreamed(response, content_type, t_sent, t_first_byte)
            else:
                reply = self._read_whole(response, t_sent, t_first_byte)
            reply.session_new = response.headers.get(SESSION_STATE_HEADER) == SESSION_NEW
            return reply
        except httpx.TimeoutException as exc:
            raise self._timed_out(exc, "body", turn_timeout) from exc
        except HTTPX_EXCEPTIONS as exc:
            raise map_httpx_error(exc, where=self._where, phase="body") from exc
        finally:
            # the turn's outcome is already decided; a failed close only loses the connection
            with contextlib.suppress(*HTTPX_EXCEPTIONS):
                response.close()

    def _build_request(self, request: ChatRequest, turn_timeout: float) -> httpx.Request:
        """The HTTP request of one turn (what a subclass speaking another API replaces)."""
        return self._client.build_request(
            "POST",
            self._url,
            content=encode_request_body(request, model=self._model),
            headers={
                "Accept": sse.CONTENT_TYPE if request.stream else JSON_CONTENT_TYPE,
                "Content-Type": JSON_CONTENT_TYPE,
            },
            timeout=httpx.Timeout(turn_timeout, connect=min(self.config.connect_timeout_s, turn_timeout)),
        )

    def _unstreamed(self, response: httpx.Response, content_type: str, t_sent: float, t_first_byte: float) -> Reply:
        """A whole reply to a streaming request: a ProtocolError, unless ``accept_unstreamed`` (then flagged)."""
        shown = content_type.split(";", 1)[0].strip() or "no content type"
        if not self.config.accept_unstreamed:
            raise ProtocolError(
                f"asked for a stream ({sse.CONTENT_TYPE}) but the server sent a whole reply ({shown}); "
                "its time to first token would be the whole reply's"
            )
        reply = self._read_whole(response, t_sent, t_first_byte)
        reply.status = UNSTREAMED
        return reply

    def _read_stream(self, pieces: Iterable[bytes], t_sent: float, t_first_byte: float) -> Reply:
        # long on purpose: the measured per-token hot path, inlined (reports/BENCHMARKS.md: REST 0.74x -> 0.94x)
        lines = LineSplitter()
        parser = SSEParser()
        parts: list[str] = []
        times: list[float] = []
        usage: Usage | None = None
        finished = False
        t_done: float | None = None
        event_start: float | None = None  # when the first line of the event being read arrived
        # the hot path, one per token: an event of one "data: ..." line is held here as bytes, not fed to the
        # parser, and read when its blank line comes (through the learned shape when it fits); anything else
        # (more data lines, other fields, comments) goes through the parser with the held line first
        held: bytes | None = None
        shape: ContentChunkShape | None = None  # learned from one of the first content chunks
        learn_tries = 3
        parser_idle = True  # nothing fed to the parser yet (the usual case: every event held)
        perf_counter = time.perf_counter
        # each piece with its arrival: the body's own stamps (read by the loop's ReadMux, or as they came), or
        # the moment a decoding layer (gzip, ...) handed it over
        stamped = pieces.stamped() if isinstance(pieces, Http1Body) else ((perf_counter(), p) for p in pieces)
        try:
            for now, piece in stamped:
                if t_done is not None:
                    continue  # after [DONE]: read to the end so that the connection can be reused
                for line in lines.feed(piece):
                    if line:  # only a blank line completes an event
                        if held is None and line.startswith(b"data: ") and (parser_idle or parser.idle):
                            held = line[6:]
                            event_start = now
                            continue
                        parser_idle = False  # the parser is used from here on: ask it
                        if held is not None:
                            parser.feed_line("data: " + held.decode("utf-8", errors="replace"))
                            held = None
                        if event_start is None and not line.startswith(b":"):
                            event_start = now
                        parser.feed_line(line.decode("utf-8", errors="replace"))
                        continue
                    at = event_start if event_start is not None else now
                    event_start = None
                    chunk: ChatChunk | None
                    if held is not None:
                        content = shape.content(held) if shape is not None else None
                        if content is not None:  # a plain content chunk of the learned shape
                            held = None
                            if content:
                                parts.append(content)
                                times.append(at)
                            continue
                        chunk = parse_chat_chunk(held.decode("utf-8", errors="replace"))
                        if shape is None and learn_tries and chunk.content:
                            learn_tries -= 1
                            shape = ContentChunkShape.learn(held, chunk)
                        held = None
                    else:
                        event = parser.feed_line("")
                        chunk = decode_event(event) if event is not None else None
                    if chunk is None:
                        continue
                    if chunk.done:
                        t_done = now
                        break  # the rest of the body is read (and ignored) by the loop above
                    if chunk.content:
                        parts.append(chunk.content)
                        times.append(at)
                    if chunk.finish_reason:
                        finished = True
                    if chunk.usage is not None:
                        usage = chunk.usage
        except READ_FAILURES:
            if t_done is None:
                raise
            # the reply was complete at [DONE]; only the tail of the body failed
        if t_done is None:
            if not finished:
                raise ProtocolError("stream ended early")
            ended = pieces.ended_at if isinstance(pieces, Http1Body) else None
            t_done = ended if ended is not None else time.perf_counter()
        # no OpenAI chunk says how many tokens it carries: one each, or usage's count spread evenly over them all
        return streamed_reply(parts, times, None, usage, t_sent=t_sent, t_first_byte=t_first_byte, t_done=t_done)

    def _read_whole(self, response: httpx.Response, t_sent: float, t_first_byte: float) -> Reply:
        body = response.read()
        t_done = time.perf_counter()
        chunk = parse_chat_completion(body.decode("utf-8", errors="replace"))
        return whole_reply(chunk.content or "", chunk.usage, t_sent=t_sent, t_first_byte=t_first_byte, t_done=t_done)

    def _status_error(self, response: httpx.Response) -> ServerError:
        body = bytearray()
        try:
            for piece in response.iter_bytes():
                body += piece
                if len(body) >= ERROR_BODY_LIMIT:
                    break
        except READ_FAILURES:
            pass  # the status alone says enough
        text = body[:ERROR_BODY_LIMIT].decode("utf-8", errors="replace").strip()
        status = response.status_code
        if 300 <= status < 400:
            return ServerError(f"HTTP {status}: unexpected redirect", code=status)
        return error_from_body(text or response.reason_phrase or "(no body)", prefix=f"HTTP {status}", status=status)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._http1 is not None:
                self._http1.close()
            self._client.close()


def _sync_stream(response: httpx.Response) -> httpx.SyncByteStream:
    stream = response.stream
    if not isinstance(stream, httpx.SyncByteStream):  # pragma: no cover - a sync client gives a sync stream
        raise TypeError("expected a sync response stream")
    return stream


__all__ = [
    "HTTPX_ERRORS",
    "HTTPX_EXCEPTIONS",
    "ErrorRule",
    "RestTransport",
    "chat_url",
    "map_httpx_error",
    "shared_ssl_context",
]
