"""A small gRPC client of our own over HTTP/2 (plain TCP, ``grpc://``): one call at a time per connection, the
response frames read in the gevent hub by :class:`~loadgen.transports.read_mux.ReadMux`.

Why: grpcio spends ~85-160 µs of client CPU per streamed message (its completion queue, the asyncio loop thread,
the hop back to the greenlet). Here, as for REST's plain http (:mod:`loadgen.transports.http1_stream`), every
socket whose reply is being read sits in the hub's one ``epoll`` set: one callback reads what came, strips the
HTTP/2 and gRPC framing and stamps every message with the moment of that wake-up; the
turn's greenlet wakes once, when the call ended (trailers), failed or ran past its deadline. Outside gevent (a
plain thread) the same reader is fed by blocking ``recv`` calls in the calling thread.

Connections (:class:`~loadgen.transports.h2_connection.H2Connection`, with the reader of one call's response,
:class:`~loadgen.transports.h2_connection.CallReader`): one TCP connection per :class:`H2Channel` (one per transport,
i.e. per Locust user), carrying one stream at a time; a channel used by two greenlets at once opens a second
connection (never two streams on one). The first request goes with the client preface, our SETTINGS (no push, a stream
window of 2**31-1) and a connection WINDOW_UPDATE, in one ``sendall``; the connection window is topped up once half of
it was used. SETTINGS and PINGs from the server are acknowledged as they are read (from the hub while a reply
streams). A request larger than the server's frame size is split; one larger than its send window waits for
WINDOW_UPDATE frames. Between calls nothing reads the connection: before the next call whatever came meanwhile is read
without waiting (SETTINGS, PING, WINDOW_UPDATE); a GOAWAY, the end of the connection or anything unexpected makes the
call open a new connection instead (a stale connection never fails a turn). A call that did not end cleanly (an error
other than a status in the trailers, the deadline, a killed greenlet) sends RST_STREAM(CANCEL) and closes the
connection: it is never used again in an unknown state.

Failures are :class:`H2CallError` (a :class:`grpc.RpcError` with ``code()`` and ``details()``), which the gRPC
transport maps with the same table as grpcio's errors: a status in the trailers (or a trailers-only response)
as sent, ``grpc-message`` percent-decoded; an HTTP ``:status`` other than 200 and RST_STREAM codes as the gRPC
spec maps them (:mod:`loadgen.transports.h2_connection`); a refused, reset or closed connection
UNAVAILABLE; the deadline ``httpx.ReadTimeout``/``TimeoutError`` (the caller's DEADLINE_EXCEEDED).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import grpc
import httpx

from loadgen.transports import h2_frames as h2
from loadgen.transports import http1_stream
from loadgen.transports.bridge import gevent_patched
from loadgen.transports.h2_connection import RECV_BYTES, CallReader, H2CallError, H2Connection
from loadgen.transports.read_mux import read_mux

#: The deadline sent to the server (``grpc-timeout``) is the turn's timeout and this much: the server reads it
#: on its own clock, which may be a few milliseconds behind, and the turn's own deadline must end the turn first
#: (as a DEADLINE_EXCEEDED of this client, then a RST_STREAM(CANCEL) that frees the server's slot).
DEADLINE_SLACK_S: Final = 0.05
#: At most this many idle connections are kept per channel.
MAX_IDLE: Final = 4


def grpc_timeout(seconds: float) -> str:
    """The ``grpc-timeout`` header's value (at most 8 digits and a unit)."""
    micros = max(1, int(seconds * 1_000_000))
    if micros < 100_000_000:
        return f"{micros}u"
    millis = -(-micros // 1000)
    if millis < 100_000_000:
        return f"{millis}m"
    return f"{min(99_999_999, -(-millis // 1000))}S"


@dataclass(slots=True)
class CallResult:
    """What one call brought: the response's headers (``headers_at``), every message with its arrival, the end
    (``ended_at``, the status in the trailers) or the error that ended it (after the messages before it)."""

    t_sent: float
    headers: list[tuple[str, str]] | None = None
    headers_at: float | None = None
    messages: list[tuple[float, bytes]] = field(default_factory=list)
    ended_at: float | None = None
    status: grpc.StatusCode | None = None
    details: str = ""
    error: BaseException | None = None

    def add(self, at: float, piece: list[bytes | None]) -> None:
        """What one read brought, at ``at``: messages, and ``None`` for the response's headers."""
        messages = self.messages
        for message in piece:
            if message is None:
                self.headers_at = at
            else:
                messages.append((at, message))


# ---------------------------------------------------------------------------------------------------------------
# the channel: a transport's connections


class H2Channel:
    """The connections of one transport to ``host:port`` (see the module's docstring)."""

    def __init__(self, host: str, port: int, authority: str, connect_timeout_s: float) -> None:
        self._host = host
        self._port = port
        self.authority = authority
        self._connect_timeout_s = connect_timeout_s
        self.idle: list[H2Connection] = []
        self._family = http1_stream.address_family(host)  # an IP address: no name lookup

    @property
    def multiplex(self) -> bool:
        """Replies read by the hub's ReadMux: in a gevent-patched process, or as ``LOADGEN_READ_MUX`` says."""
        multiplex = http1_stream.MULTIPLEX
        return gevent_patched() if multiplex is None else multiplex

    def call(
        self, path: str, metadata: Sequence[tuple[str, str]], body: bytes, timeout_s: float, max_reply: int
    ) -> CallResult:
        """One call: ``body`` (a serialized request) to ``path``; never raises but for a killed greenlet.

        A kept connection that fails before any answer came (the server closed it, reset it or refused the stream
        as we sent: the request was not processed) is replaced by a new one for a second try, within the turn's
        deadline: a stale connection never fails a turn."""
        t_sent = time.perf_counter()
        deadline = t_sent + timeout_s
        conn = self._take()
        result = self._attempt(conn, t_sent, deadline, path, metadata, body, timeout_s, max_reply)
        error = result.error
        if (
            conn is not None
            and isinstance(error, H2CallError)
            and error.code() == grpc.StatusCode.UNAVAILABLE
            and result.headers is None
            and time.perf_counter() < deadline
        ):
            result = self._attempt(None, t_sent, deadline, path, metadata, body, timeout_s, max_reply)
        return result

    def _attempt(
        self,
        conn: H2Connection | None,
        t_sent: float,
        deadline: float,
        path: str,
        metadata: Sequence[tuple[str, str]],
        body: bytes,
        timeout_s: float,
        max_reply: int,
    ) -> CallResult:
        """The call on ``conn`` (None: a new connection)."""
        result = CallResult(t_sent=t_sent)
        call: CallReader | None = None
        clean = False
        try:
            if conn is None:
                conn = self._connect(deadline)
            stream_id = conn.next_stream
            conn.next_stream += 2
            call = CallReader(conn, stream_id, max_reply, deadline)
            headers = [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", path),
                (":authority", self.authority),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
                ("grpc-timeout", grpc_timeout(timeout_s + DEADLINE_SLACK_S)),
                *metadata,
            ]
            framed = b"\0" + len(body).to_bytes(4, "big") + body
            payload = conn.request_frames(headers, framed, call)
            _sendall(conn.sock, payload, deadline)
            while call.unsent and not call.finished:  # a request larger than the server's windows
                self._recv_into(conn, call, result, deadline)
                more = conn.body_frames(call)
                if more:
                    _sendall(conn.sock, more, deadline)
            if self.multiplex:
                read = read_mux().read(conn.sock, call, b"", deadline)
                for at, piece in read.pieces:
                    result.add(at, piece)
                if read.error is not None:
                    result.add(time.perf_counter(), call._pending)  # what came before the error
                    raise read.error
                if result.ended_at is None:  # (not already ended while the request was being sent)
                    result.ended_at = read.ended_at
            else:
                while not call.finished:
                    self._recv_into(conn, call, result, deadline)
            result.headers = call.headers
            result.status, result.details = call.status, call.details
            clean = not call.unsent  # (a reply that ended before the whole request went: the stream is not closed)
        except Exception as exc:
            result.error = _call_error(exc)
            if call is not None:
                result.headers = call.headers
        finally:
            if conn is not None:
                if clean:
                    self._release(conn)
                else:  # an error, the deadline, or a killed greenlet (GreenletExit passes through)
                    conn.abort(call.stream_id if call is not None else 0)
        return result

    def _recv_into(self, conn: H2Connection, call: CallReader, result: CallResult, deadline: float) -> None:
        sock = conn.sock
        left = deadline - time.perf_counter()
        if left <= 0:
            raise TimeoutError("the turn's deadline has passed")
        sock.settimeout(left)
        data = sock.recv(RECV_BYTES)
        now = time.perf_counter()
        if not data:
            call.eof()
        try:
            messages = call.feed(data)
        except Exception:
            result.add(now, call._pending)  # what came before the error
            raise
        result.add(now, messages)
        if call.finished:
            result.ended_at = now

    def _take(self) -> H2Connection | None:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if conn.usable():
                return conn
            conn.close()
        return None

    def _release(self, conn: H2Connection) -> None:
        if conn.goaway or conn.broken or len(self.idle) >= MAX_IDLE:
            conn.close()
        else:
            self.idle.append(conn)

    def _connect(self, deadline: float) -> H2Connection:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise TimeoutError("the turn's deadline has passed")
        timeout = min(left, self._connect_timeout_s)
        try:
            sock = http1_stream.open_tcp(self._host, self._port, self._family, timeout)
        except socket.gaierror as exc:
            raise H2CallError(grpc.StatusCode.UNAVAILABLE, f"errors resolving {self._host}: {exc}") from exc
        except TimeoutError as exc:
            if timeout >= left:  # the turn's deadline, not the connect timeout
                raise
            raise H2CallError(
                grpc.StatusCode.UNAVAILABLE, f"failed to connect to all addresses: connect timed out ({timeout:g}s)"
            ) from exc
        except OSError as exc:
            raise H2CallError(
                grpc.StatusCode.UNAVAILABLE,
                f"failed to connect to all addresses; Failed to connect to remote host: {exc.strerror or exc}",
            ) from exc
        return H2Connection(sock)

    def close(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()


def _sendall(sock: socket.socket, data: bytes, deadline: float) -> None:
    left = deadline - time.perf_counter()
    if left <= 0:
        raise TimeoutError("the turn's deadline has passed")
    sock.settimeout(left)
    sock.sendall(data)


def _call_error(exc: Exception) -> BaseException:
    """What ended a call, as the transport maps it: an :class:`H2CallError`, a ``TimeoutError`` for the deadline,
    or a :class:`~loadgen.errors.TransportError` raised as it is (the size limit)."""
    if isinstance(exc, H2CallError | TimeoutError):
        return exc
    if isinstance(exc, httpx.ReadTimeout):  # the ReadMux's deadline
        return TimeoutError(str(exc))
    if isinstance(exc, h2.H2ProtocolError):
        return H2CallError(grpc.StatusCode.INTERNAL, f"HTTP/2 protocol error: {exc}")
    if isinstance(exc, httpx.ReadError | OSError):
        return H2CallError(grpc.StatusCode.UNAVAILABLE, str(exc) or "Socket closed")
    return exc


__all__ = ["DEADLINE_SLACK_S", "MAX_IDLE", "CallResult", "H2CallError", "H2Channel", "grpc_timeout"]
