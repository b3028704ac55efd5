"""A small HTTP/1.1 client for the REST transport's plain ``http://`` targets: one keep-alive connection, one
request at a time, the body read straight off the socket.

Why: streamed replies cost the generator per token. Through httpx every token went through httpcore's
connection and pool layers and h11's event machinery (a state machine, event objects, a receive buffer) before
the transport saw its bytes; here one ``recv`` per wake-up goes through a tight loop that strips the chunked
framing with ``bytes.find`` and slicing, and each piece comes out with everything that one ``recv`` brought.

What stays httpx's: the request (built by :class:`httpx.Client` exactly as before: headers, cookies, tracing
headers, the body) and the response object (:class:`httpx.Response` over this module's body stream), so error
statuses, whole replies and content codings (gzip, ...) are read by httpx's own code on top of these bytes.
Failures are raised as the httpx exceptions httpcore raises for the same event (``ConnectError`` chained to the
OS error, ``ConnectTimeout``, ``ReadTimeout``, ``WriteError``, ``RemoteProtocolError`` ...), so the transport
maps them through its one table (:mod:`loadgen.transports.httpx_errors`).

Every wait (connect, send, each ``recv``) is bounded by what is left of the turn (``deadline``,
``time.perf_counter()`` seconds): silence or a dribble ends at the deadline as the timeout of that phase. The
body counts its bytes (after the chunked framing, before any content decoding) against ``max_bytes``.

Keep-alive: the connection is kept for the next request only when a response was read to its end, framed by
``Content-Length`` or chunked, on HTTP/1.1 without ``Connection: close``, with nothing after it; it is dropped
when idle for :data:`KEEPALIVE_EXPIRY_S` (httpx's default) or when the server closed it meanwhile. A response
not read to its end (an error, the deadline, a greenlet killed mid-read) closes the connection: no half-read
reply is ever left for the next turn.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import time
from collections.abc import Iterable, Iterator
from typing import Final

import httpx

from loadgen.transports.bridge import gevent_patched
from loadgen.transports.read_mux import ReadMux, read_mux
from loadgen.transports.replies import reply_too_large

#: An idle connection older than this is closed, not reused (httpx's default pool keeps them 5 s).
KEEPALIVE_EXPIRY_S: Final = 5.0
#: Largest response head (status line and headers) accepted.
MAX_HEAD_BYTES: Final = 64 * 1024
#: Largest chunk-size or trailer line accepted.
MAX_CHUNK_LINE: Final = 4 * 1024
RECV_BYTES: Final = 65536
#: Streamed bodies through a :class:`~loadgen.transports.read_mux.ReadMux`: None (the default) in a gevent-patched
#: process; True or False for every client that was not told (tests run both ways). ``LOADGEN_READ_MUX=0`` in the
#: environment turns it off (``1``: on), e.g. to compare the two in ``loadgen bench capacity``.
MULTIPLEX: bool | None = {"0": False, "1": True}.get(os.environ.get("LOADGEN_READ_MUX", ""))

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_STATUS_LINE = re.compile(rb"HTTP/(1\.[01]) ([0-9]{3})(?: ([^\r\n]*))?")
_INCOMPLETE_CHUNKED = "peer closed connection without sending complete message body: incomplete chunked read"


def _left(deadline: float, error: type[httpx.TimeoutException]) -> float:
    left = deadline - time.perf_counter()
    if left <= 0:
        raise error("the turn's deadline has passed")
    return left


def address_family(host: str) -> socket.AddressFamily | None:
    """The address family of ``host`` when it is an IP address, else None (a name, to be looked up).

    An IP address is connected to without a name lookup: gevent's resolver runs lookups on a thread pool, and its
    first one (starting the pool) held the hub ~0.1-0.2 s, every connect of a new user paying 5-40 ms.
    """
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return None


def open_tcp(host: str, port: int, family: socket.AddressFamily | None, timeout: float) -> socket.socket:
    """A TCP connection to ``host:port`` made within ``timeout`` seconds, with ``TCP_NODELAY``; ``family`` from
    :func:`address_family` (None: the name is looked up). Raises what :mod:`socket` raises."""
    if family is None:
        sock = socket.create_connection((host, port), timeout)
    else:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


class Http1Client:
    """One keep-alive HTTP/1.1 connection to ``host:port`` (plain TCP), used by one turn at a time."""

    __slots__ = ("_family", "_host", "_idle", "_idle_since", "_multiplex", "_port")

    def __init__(self, host: str, port: int, multiplex: bool | None = None) -> None:
        #: streamed bodies read through the hub's :class:`~loadgen.transports.read_mux.ReadMux` (default: in a
        #: gevent-patched process, i.e. any Locust process; see :data:`MULTIPLEX`)
        self._multiplex = multiplex
        self._host = host
        self._port = port
        self._family = address_family(host)
        self._idle: socket.socket | None = None
        self._idle_since = 0.0

    @property
    def mux(self) -> ReadMux | None:
        """Where :meth:`Http1Body.stamped` reads a body: this thread's :class:`ReadMux`, or None (one ``recv`` at a
        time in the calling greenlet or thread)."""
        multiplex = self._multiplex
        if multiplex is None:
            multiplex = MULTIPLEX if MULTIPLEX is not None else gevent_patched()
        return read_mux() if multiplex else None

    def serves(self, url: httpx.URL) -> bool:
        """True when ``url`` goes to this client's origin over plain http."""
        return url.scheme == "http" and url.host == self._host and (url.port or 80) == self._port

    def send(self, request: httpx.Request, deadline: float, max_bytes: int) -> httpx.Response:
        """Send ``request`` and read the response head; the body is read by iterating ``response.stream``
        (closing the response closes the connection unless the body was read to its end)."""
        connect_timeout = request.extensions.get("timeout", {}).get("connect")
        return self.send_bytes(encode_request(request), request.method, deadline, connect_timeout, max_bytes, request)

    def send_bytes(
        self,
        payload: bytes,
        method: str,
        deadline: float,
        connect_timeout: float | None,
        max_bytes: int,
        request: httpx.Request | None = None,
    ) -> httpx.Response:
        """:meth:`send` for a request already in its wire form (``request``, if given, goes on the response)."""
        sock = self._take()
        try:
            if sock is None:
                sock = self._connect(deadline, connect_timeout)
            try:
                sock.settimeout(_left(deadline, httpx.WriteTimeout))
                sock.sendall(payload)
            except TimeoutError as exc:
                raise httpx.WriteTimeout(str(exc) or "timed out") from exc
            except OSError as exc:
                raise httpx.WriteError(str(exc)) from exc
            return self._read_head(sock, method, request, deadline, max_bytes)
        except BaseException:
            if sock is not None:
                sock.close()
            raise

    def close(self) -> None:
        sock, self._idle = self._idle, None
        if sock is not None:
            sock.close()

    # -- the connection ----------------------------------------------------------------------------------------

    def _take(self) -> socket.socket | None:
        """The idle connection if it can be reused (young enough, not closed by the server meanwhile)."""
        sock, self._idle = self._idle, None
        if sock is None:
            return None
        if time.monotonic() - self._idle_since < KEEPALIVE_EXPIRY_S:
            sock.settimeout(0.0)
            try:
                sock.recv(1, socket.MSG_PEEK)  # anything (even the end of the stream) is not for a new request
            except BlockingIOError:
                return sock  # nothing to read: still open, still idle
            except OSError:
                pass
        sock.close()
        return None

    def _release(self, sock: socket.socket) -> None:
        if self._idle is not None:  # pragma: no cover - one turn at a time: never two idle connections
            self._idle.close()
        self._idle = sock
        self._idle_since = time.monotonic()

    def _connect(self, deadline: float, connect_timeout: float | None) -> socket.socket:
        left = _left(deadline, httpx.ConnectTimeout)
        timeout = left if connect_timeout is None else min(left, connect_timeout)
        try:
            sock = open_tcp(self._host, self._port, self._family, timeout)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from exc
        return sock

    def _read_head(
        self, sock: socket.socket, method: str, request: httpx.Request | None, deadline: float, max_bytes: int
    ) -> httpx.Response:
        buf = b""
        while True:
            match = _HEAD_END.search(buf)
            while match is None:
                if len(buf) > MAX_HEAD_BYTES:
                    raise httpx.RemoteProtocolError("response headers too long")
                data = _recv(sock, deadline)
                if not data:
                    if buf:
                        raise httpx.RemoteProtocolError("peer closed connection without sending complete headers")
                    raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
                buf += data
                match = _HEAD_END.search(buf, max(0, len(buf) - len(data) - 3))
            lines = buf[: match.start()].split(b"\n")
            buf = buf[match.end() :]
            status_match = _STATUS_LINE.fullmatch(lines[0].rstrip(b"\r"))
            if status_match is None:
                raise httpx.RemoteProtocolError("malformed status line")
            version, status, reason = status_match.group(1, 2, 3)
            status_code = int(status)
            if status_code == 101:
                raise httpx.RemoteProtocolError("unexpected switch of protocols")
            if status_code >= 200:
                break
            # an interim 1xx response: its head is read and the real one follows
        headers = _headers(lines[1:])
        framing, length, keep_alive = _framing(method, status_code, version, headers)
        body = Http1Body(self, sock, buf, framing, length, keep_alive, deadline, max_bytes)
        return httpx.Response(
            status_code,
            headers=headers,
            stream=body,
            request=request,
            extensions={"http_version": b"HTTP/" + version, "reason_phrase": reason or b""},
        )


CHUNKED, LENGTH, UNTIL_CLOSE = 0, 1, 2


class ChunkedDecoder:
    """The chunked framing stripped from what each ``recv`` brought: :meth:`feed` returns the body bytes of every
    chunk the new bytes completed or went on with (in one piece), ``finished`` once the last chunk and the trailers
    came; what followed them is ``leftover``. A framing error is an ``httpx.RemoteProtocolError``; the body's size
    past ``max_bytes`` a :class:`~loadgen.errors.ProtocolError` (:func:`reply_too_large`)."""

    __slots__ = ("_buf", "_crlf", "_max_bytes", "_pending", "_room", "_trailers", "finished")

    def __init__(self, max_bytes: int) -> None:
        self._buf = b""
        self._pending = 0  # bytes of the current chunk's data still to come
        self._crlf = False  # the current chunk's data is complete: its CRLF comes next
        self._trailers = False  # the last chunk came: trailer lines until a blank one
        self._max_bytes = max_bytes
        self._room = max_bytes
        self.finished = False

    @property
    def leftover(self) -> bytes:
        return self._buf

    def feed(self, data: bytes) -> bytes:
        buf = self._buf + data if self._buf else data
        pending = self._pending
        crlf = self._crlf
        out: list[bytes] = []
        pos = 0
        end = len(buf)
        size_line = _CHUNK_SIZE.fullmatch
        while True:
            if pending:
                take = end - pos
                if take > pending:
                    take = pending
                elif take <= 0:
                    break
                out.append(buf[pos : pos + take] if take != end else buf)
                pos += take
                pending -= take
                if pending:
                    break
                crlf = True
            if crlf:
                if end - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise httpx.RemoteProtocolError("chunk data not followed by CRLF")
                pos += 2
                crlf = False
            nl = buf.find(b"\n", pos)
            if nl < 0:
                if end - pos > MAX_CHUNK_LINE:
                    raise httpx.RemoteProtocolError("chunk header too long")
                break
            line = buf[pos:nl]
            pos = nl + 1
            if self._trailers:
                if line in (b"", b"\r"):
                    self.finished = True
                    break
                continue
            size_text = line.split(b";", 1)[0].strip(b" \t\r")
            if size_line(size_text) is None:
                raise httpx.RemoteProtocolError(f"illegal chunk header: {line[:40]!r}")
            pending = int(size_text, 16)
            if not pending:
                self._trailers = True
        self._buf = buf[pos:] if pos else buf
        self._pending = pending
        self._crlf = crlf
        if not out:
            return b""
        piece = out[0] if len(out) == 1 else b"".join(out)
        self._room -= len(piece)
        if self._room < 0:
            raise reply_too_large(self._max_bytes)
        return piece

    def eof(self) -> None:
        """The server closed the connection before the body's end."""
        raise httpx.RemoteProtocolError(_INCOMPLETE_CHUNKED)


class PlainDecoder:
    """A body of ``length`` bytes (``Content-Length``), or, with ``length`` -1, one that lasts until the server
    closes the connection; the same interface as :class:`ChunkedDecoder`."""

    __slots__ = ("_left", "_length", "_max_bytes", "_room", "finished", "leftover")

    def __init__(self, length: int, max_bytes: int) -> None:
        self._length = length
        self._left = length
        self._max_bytes = max_bytes
        self._room = max_bytes
        self.finished = length == 0
        self.leftover = b""

    def feed(self, data: bytes) -> bytes:
        if self.finished:  # bytes after the body: not for it
            self.leftover += data
            return b""
        left = self._left
        if 0 < left < len(data):
            piece, self.leftover = data[:left], data[left:]
        else:
            piece = data
        if left > 0:
            self._left = left = left - len(piece)
            self.finished = left == 0
        self._room -= len(piece)
        if self._room < 0:
            raise reply_too_large(self._max_bytes)
        return piece

    def eof(self) -> None:
        """The server closed the connection: the end of a body that lasts until then, else an error."""
        if self._left >= 0:
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body: "
                f"received {self._length - self._left} bytes, expected {self._length}"
            )
        self.finished = True


BodyDecoder = ChunkedDecoder | PlainDecoder


class Http1Body(httpx.SyncByteStream):
    """The body of one response, as pieces: every piece is all the body bytes one ``recv`` brought (chunked
    framing removed), yielded as soon as it came; or, through :meth:`stamped`, each with its arrival time."""

    def __init__(
        self,
        client: Http1Client,
        sock: socket.socket,
        buffered: bytes,
        framing: int,
        length: int,
        keep_alive: bool,
        deadline: float,
        max_bytes: int,
    ) -> None:
        self._client: Http1Client | None = client
        self._sock: socket.socket | None = sock
        self._buffered = buffered
        self._framing = framing
        self._length = length
        self._keep_alive = keep_alive
        self._deadline = deadline
        self._max_bytes = max_bytes
        #: when the body's end was seen (:meth:`stamped` through a :class:`ReadMux`), else None
        self.ended_at: float | None = None

    def _decoder(self) -> BodyDecoder:
        if self._framing == CHUNKED:
            return ChunkedDecoder(self._max_bytes)
        return PlainDecoder(self._length if self._framing == LENGTH else -1, self._max_bytes)

    def __iter__(self) -> Iterator[bytes]:
        sock = self._sock
        if sock is None:
            raise httpx.StreamClosed()
        return self._pieces(sock, self._decoder())

    def stamped(self) -> Iterator[tuple[float, bytes]]:
        """The pieces of :meth:`__iter__`, each with the ``time.perf_counter()`` of its arrival. Through the
        client's :class:`ReadMux` (a gevent process) the whole body is read by the event loop first, every
        ``recv`` stamped as it completes and no greenlet woken per piece; the pieces then come one after the
        other, and an error that ended the body is raised after the pieces before it."""
        sock = self._sock
        if sock is None:
            raise httpx.StreamClosed()
        client = self._client
        mux = client.mux if client is not None else None
        decoder = self._decoder()
        if mux is None:
            perf_counter = time.perf_counter
            for piece in self._pieces(sock, decoder):
                yield perf_counter(), piece
            return
        buffered, self._buffered = self._buffered, b""
        result = mux.read(sock, decoder, buffered, self._deadline)
        yield from result.pieces
        if result.error is not None:
            raise result.error
        self.ended_at = result.ended_at
        self._done(sock, decoder.leftover)

    def _pieces(self, sock: socket.socket, decoder: BodyDecoder) -> Iterator[bytes]:
        data, self._buffered = self._buffered, b""
        if data:
            piece = decoder.feed(data)
            if piece:
                yield piece
        deadline = self._deadline
        while not decoder.finished:
            data = _recv(sock, deadline)
            if not data:
                decoder.eof()
                break
            piece = decoder.feed(data)
            if piece:
                yield piece
        self._done(sock, decoder.leftover)

    def _done(self, sock: socket.socket, leftover: bytes) -> None:
        """The body was read to its end: the connection goes back for the next request, or is closed."""
        client, self._client, self._sock = self._client, None, None
        if client is not None and self._keep_alive and not leftover:
            client._release(sock)
        else:
            sock.close()

    def close(self) -> None:
        sock, self._sock, self._client = self._sock, None, None
        if sock is not None:  # not read to its end: nobody else may read the rest
            sock.close()


def _recv(sock: socket.socket, deadline: float) -> bytes:
    try:
        sock.settimeout(_left(deadline, httpx.ReadTimeout))
        return sock.recv(RECV_BYTES)
    except TimeoutError as exc:
        raise httpx.ReadTimeout(str(exc) or "timed out") from exc
    except OSError as exc:
        raise httpx.ReadError(str(exc)) from exc


def encode_request(request: httpx.Request, *, body: bool = True) -> bytes:
    """The request as bytes on the wire: request line, httpx's headers as they are, the body (``body=False``:
    the request line and headers but ``Content-Length``, without the blank line that ends them)."""
    lines = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    if body:
        lines += encode_headers(request.headers.raw)
        lines += (b"\r\n", request.read())
    else:
        lines += encode_headers((k, v) for k, v in request.headers.raw if k.lower() != b"content-length")
    return b"".join(lines)


def encode_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[bytes]:
    """``name: value`` lines; a name or value that would break the framing is a ``LocalProtocolError``."""
    lines: list[bytes] = []
    for name, value in headers:
        if b"\r" in value or b"\n" in value or b"\0" in value or b"\r" in name or b"\n" in name or b":" in name:
            raise httpx.LocalProtocolError("Illegal header value")
        lines += (name, b": ", value, b"\r\n")
    return lines


def _headers(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    for raw in lines:
        line = raw.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):  # obsolete line folding: the previous header goes on
            if not headers:
                raise httpx.RemoteProtocolError("malformed header line")
            name, value = headers[-1]
            headers[-1] = (name, value + b" " + line.strip(b" \t"))
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise httpx.RemoteProtocolError("malformed header line")
        headers.append((name, value.strip(b" \t")))
    return headers


def _framing(method: str, status: int, version: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[int, int, bool]:
    """How the body is delimited (RFC 9112 section 6.3): (framing, length, keep-alive)."""
    codings: list[bytes] = []
    lengths: set[bytes] = set()
    close = version != b"1.1"
    for name, value in headers:
        lower = name.lower()
        if lower == b"transfer-encoding":
            codings += (c.strip().lower() for c in value.split(b","))
        elif lower == b"content-length":
            lengths.update(v.strip() for v in value.split(b","))
        elif lower == b"connection":
            tokens = {t.strip().lower() for t in value.split(b",")}
            if b"close" in tokens:
                close = True
            elif b"keep-alive" in tokens and version == b"1.0":
                close = False
    if method == "HEAD" or status in (204, 304):
        return LENGTH, 0, not close
    if codings:
        if codings != [b"chunked"]:
            raise httpx.RemoteProtocolError("unsupported transfer encoding")
        return CHUNKED, 0, not close
    if lengths:
        if len(lengths) != 1:
            raise httpx.RemoteProtocolError("conflicting Content-Length headers")
        (text,) = lengths
        if not text.isdigit():
            raise httpx.RemoteProtocolError("malformed Content-Length header")
        return LENGTH, int(text), not close
    return UNTIL_CLOSE, -1, False


__all__: list[str] = [
    "KEEPALIVE_EXPIRY_S",
    "MULTIPLEX",
    "BodyDecoder",
    "ChunkedDecoder",
    "Http1Body",
    "Http1Client",
    "PlainDecoder",
    "address_family",
    "encode_headers",
    "encode_request",
    "open_tcp",
]
