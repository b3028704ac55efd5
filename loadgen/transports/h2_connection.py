"""One HTTP/2 connection of the gRPC transport's own client (:mod:`loadgen.transports.grpc_h2`) and the reader of
one call's response on it, with no waiting of their own: the caller reads the socket (or the hub's
:class:`~loadgen.transports.read_mux.ReadMux` does) and feeds the bytes in.

:class:`H2Connection`: the connection's state (HPACK both ways, flow-control windows both ways, the server's
SETTINGS, GOAWAY), the frames that start a call (the preface, our SETTINGS and a connection WINDOW_UPDATE before the
first), the SETTINGS and PING acknowledgements and window top-ups it owes (written at once, never waiting).

:class:`CallReader`: the response of one call: its headers, its gRPC messages (the 5-byte length prefix stripped,
compressed ones inflated when ``grpc-encoding`` says how), its trailers. What ends a call other than a status in
the trailers is an :class:`H2CallError` (a :class:`grpc.RpcError` with ``code()`` and ``details()``, as grpcio
reports the same event): an HTTP ``:status`` other than 200 and RST_STREAM codes as the gRPC spec maps them
(:data:`HTTP_STATUS_CODES`, :data:`RST_STREAM_CODES`), the connection's end UNAVAILABLE ``Socket closed``, a
message larger than the reply may be RESOURCE_EXHAUSTED; a reply past its size limit is
:func:`~loadgen.transports.replies.reply_too_large`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import urllib.parse
import zlib
from collections.abc import Sequence
from typing import Final

import grpc
import hpack

from loadgen.transports import h2_frames as h2
from loadgen.transports.replies import reply_too_large

#: Our SETTINGS: no server push, the largest stream window (a reply is bounded by ``max_reply_bytes`` anyway).
CLIENT_SETTINGS: Final = {h2.SETTINGS_ENABLE_PUSH: 0, h2.SETTINGS_INITIAL_WINDOW_SIZE: h2.MAX_WINDOW}
#: The connection window is raised to this at the start, and topped up when half of it was used.
CONNECTION_WINDOW: Final = h2.MAX_WINDOW
RECV_BYTES: Final = 65536

#: HTTP ``:status`` to gRPC status (gRPC's doc/http-grpc-status-mapping.md); any other is UNKNOWN.
HTTP_STATUS_CODES: Final = {
    400: grpc.StatusCode.INTERNAL,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.UNIMPLEMENTED,
    429: grpc.StatusCode.UNAVAILABLE,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.UNAVAILABLE,
}
#: RST_STREAM error codes to gRPC status (gRPC's doc/PROTOCOL-HTTP2.md); any other is INTERNAL.
RST_STREAM_CODES: Final = {
    h2.REFUSED_STREAM: grpc.StatusCode.UNAVAILABLE,
    h2.CANCEL: grpc.StatusCode.CANCELLED,
    h2.ENHANCE_YOUR_CALM: grpc.StatusCode.RESOURCE_EXHAUSTED,
    h2.INADEQUATE_SECURITY: grpc.StatusCode.PERMISSION_DENIED,
}
_CODES: Final = {code.value[0]: code for code in grpc.StatusCode}


class H2CallError(grpc.RpcError):
    """A call that failed, as grpcio would have reported it."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


# ---------------------------------------------------------------------------------------------------------------
# one connection


class H2Connection:
    """One HTTP/2 connection (plain TCP), one stream at a time."""

    __slots__ = (
        "_acked",
        "_decoder",
        "_encoder",
        "_out",
        "_started",
        "broken",
        "frames",
        "goaway",
        "next_stream",
        "peer_frame_size",
        "peer_window",
        "pid",
        "send_window",
        "sock",
    )

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pid = os.getpid()
        self.frames = h2.FrameDecoder()
        self._encoder = hpack.Encoder()
        self._decoder = hpack.Decoder()
        self._out = b""  # frames to send (acknowledgements) not written yet
        self._started = False  # preface and SETTINGS sent
        self._acked = 0  # flow-controlled bytes received, already given back to the connection window
        self.next_stream = 1
        self.send_window = h2.DEFAULT_WINDOW  # the connection's, for what we send
        self.peer_window = h2.DEFAULT_WINDOW  # the server's initial stream window
        self.peer_frame_size = h2.DEFAULT_MAX_FRAME_SIZE
        self.goaway = False
        self.broken = False

    # -- between calls -----------------------------------------------------------------------------------------

    def usable(self) -> bool:
        """Read, without waiting, what came since the last call; False when the connection must not be used."""
        if self.broken or self.goaway or self.pid != os.getpid():
            return False
        sock = self.sock
        try:
            sock.settimeout(0.0)
            while True:
                try:
                    data = sock.recv(RECV_BYTES)
                except BlockingIOError:
                    break
                if not data:
                    return False
                for frame in self.frames.feed(data):
                    self.on_frame(frame, None)
            if self._out:
                sock.sendall(self._flush_bytes())
        except Exception:  # anything at all: a connection we cannot vouch for is not used
            return False
        return not self.goaway and not self.frames.pending

    def close(self) -> None:
        self.broken = True
        with contextlib.suppress(OSError):
            self.sock.close()

    def abort(self, stream_id: int) -> None:
        """The call on ``stream_id`` did not end cleanly: cancel it (best effort, never waiting) and close."""
        if not self.broken and stream_id:
            with contextlib.suppress(Exception):
                os.write(self.sock.fileno(), h2.rst_stream(stream_id, h2.CANCEL))
        self.close()

    # -- a call ------------------------------------------------------------------------------------------------

    def request_frames(self, headers: Sequence[tuple[str, str]], body: bytes, call: CallReader) -> bytes:
        """What starts the call (the preface first on a new connection), with as much of ``body`` as the windows
        allow (``call.unsent`` keeps the rest)."""
        parts: list[bytes] = []
        if not self._started:
            self._started = True
            parts += (
                h2.PREFACE,
                h2.settings(CLIENT_SETTINGS),
                h2.window_update(0, CONNECTION_WINDOW - h2.DEFAULT_WINDOW),
            )
        if self._out:
            parts.append(self._flush_bytes())
        block = self._encoder.encode(headers)
        parts.append(h2.header_frames(call.stream_id, block, self.peer_frame_size))
        call.unsent = body
        parts.append(self.body_frames(call))
        return b"".join(parts)

    def body_frames(self, call: CallReader) -> bytes:
        """DATA frames of what is left of the request's body, as far as the windows allow."""
        body = call.unsent
        room = min(self.send_window, call.send_window)
        if room <= 0 and body:
            return b""
        piece, rest = body[:room], body[room:]
        self.send_window -= len(piece)
        call.send_window -= len(piece)
        call.unsent = rest
        return h2.data_frames(call.stream_id, piece, self.peer_frame_size, end_stream=not rest)

    def header_list(self, block: bytes) -> list[tuple[str, str]]:
        try:
            return [(str(k), str(v)) for k, v in self._decoder.decode(block)]
        except hpack.HPACKError as exc:
            raise H2CallError(grpc.StatusCode.INTERNAL, f"bad HPACK header block: {exc}") from exc

    def on_frame(self, frame: h2.Frame, call: CallReader | None) -> None:
        """One frame read from the connection: the connection's own handled here, the call's passed to it."""
        type_, flags, stream, payload = frame
        if stream and call is not None and stream == call.stream_id:
            if type_ == h2.DATA:
                call.on_data(payload, flags)
            elif type_ == h2.HEADERS:
                call.on_headers(self.header_list(payload), flags)
            elif type_ == h2.RST_STREAM:
                code = h2.parse_u32(payload, "RST_STREAM")
                if code in (h2.NO_ERROR, h2.CANCEL) and time.perf_counter() >= call.deadline:
                    raise TimeoutError("the server ended the call at its deadline")  # as grpc-core reads it
                status = RST_STREAM_CODES.get(code, grpc.StatusCode.INTERNAL)
                raise H2CallError(status, f"Received RST_STREAM with error code {code}")
            elif type_ == h2.WINDOW_UPDATE:
                call.send_window += h2.parse_u32(payload, "WINDOW_UPDATE") & h2.MAX_WINDOW
        elif type_ == h2.SETTINGS:
            if not flags & h2.ACK:
                self._settings(h2.parse_settings(payload), call)
                self._out += h2.settings_ack()
        elif type_ == h2.PING:
            if not flags & h2.ACK:
                self._out += h2.ping_ack(payload)
        elif type_ == h2.WINDOW_UPDATE:
            if not stream:
                self.send_window += h2.parse_u32(payload, "WINDOW_UPDATE") & h2.MAX_WINDOW
        elif type_ == h2.GOAWAY:
            last, code, _ = h2.parse_goaway(payload)
            self.goaway = True
            if call is not None and not call.finished and call.stream_id > last:
                raise H2CallError(grpc.StatusCode.UNAVAILABLE, f"the server is going away (GOAWAY code {code})")
        elif type_ == h2.HEADERS:
            self.header_list(payload)  # another stream's: decoded all the same, to keep the HPACK table in step
        elif type_ == h2.PUSH_PROMISE:
            raise h2.H2ProtocolError("PUSH_PROMISE although push is off")
        # DATA of another stream, PRIORITY, unknown types: nothing to do (flow control counts DATA below)
        received = self.frames.flow_bytes - self._acked
        if received >= CONNECTION_WINDOW // 2:
            self._acked += received
            self._out += h2.window_update(0, received)
            if call is not None and not call.finished:
                self._out += h2.window_update(call.stream_id, received)

    def _settings(self, values: dict[int, int], call: CallReader | None) -> None:
        window = values.get(h2.SETTINGS_INITIAL_WINDOW_SIZE)
        if window is not None:
            if call is not None:
                call.send_window += window - self.peer_window
            self.peer_window = window
        size = values.get(h2.SETTINGS_MAX_FRAME_SIZE)
        if size is not None:
            self.peer_frame_size = size
        table = values.get(h2.SETTINGS_HEADER_TABLE_SIZE)
        if table is not None:
            self._encoder.header_table_size = table

    def _flush_bytes(self) -> bytes:
        out, self._out = self._out, b""
        return out

    def flush_nowait(self) -> None:
        """Write the pending acknowledgements without waiting (from the hub); what does not fit waits."""
        out = self._out
        if not out:
            return
        try:
            sent = os.write(self.sock.fileno(), out)
        except BlockingIOError:
            return
        except OSError:
            self._out = b""
            return  # the read that follows sees the connection's end
        self._out = out[sent:]


# ---------------------------------------------------------------------------------------------------------------
# one call


class CallReader:
    """The response of one call, fed with what the connection brought (by :class:`ReadMux` in the hub, or by
    ``recv`` calls): :meth:`feed` returns the gRPC messages the bytes completed (a list, empty when none), with
    ``None`` where the response's headers came (so that they are stamped as the messages are);
    ``finished`` once the trailers came (``status``, ``details``)."""

    __slots__ = (
        "_buf",
        "_conn",
        "_encoding",
        "_max_message",
        "_max_reply",
        "_pending",
        "_room",
        "deadline",
        "details",
        "finished",
        "headers",
        "send_window",
        "status",
        "stream_id",
        "unsent",
    )

    def __init__(self, conn: H2Connection, stream_id: int, max_reply: int, deadline: float = float("inf")) -> None:
        self._conn = conn
        self.deadline = deadline
        self.stream_id = stream_id
        self.send_window = conn.peer_window
        self.unsent = b""
        self._buf = b""
        self._max_reply = max_reply
        self._max_message = max_reply
        self._room = max_reply
        self._encoding = ""
        self._pending: list[bytes | None] = []
        self.headers: list[tuple[str, str]] | None = None
        self.status: grpc.StatusCode | None = None
        self.details = ""
        self.finished = False

    def feed(self, data: bytes) -> list[bytes | None]:
        conn = self._conn
        on_frame = conn.on_frame
        messages: list[bytes | None] = []
        self._pending = messages
        try:
            for frame in conn.frames.feed(data):
                on_frame(frame, self)
        except h2.H2ProtocolError as exc:
            raise H2CallError(grpc.StatusCode.INTERNAL, f"HTTP/2 protocol error: {exc}") from exc
        finally:
            if conn._out:
                conn.flush_nowait()
        self._pending = []  # (after an error it keeps what came before it, for the caller)
        return messages

    def eof(self) -> None:
        """The server closed the connection before the call ended."""
        self._conn.broken = True
        raise H2CallError(grpc.StatusCode.UNAVAILABLE, "Socket closed")

    # -- from the connection -----------------------------------------------------------------------------------

    def on_headers(self, headers: list[tuple[str, str]], flags: int) -> None:
        if self.finished:
            raise h2.H2ProtocolError("HEADERS after the end of the stream")
        end = bool(flags & h2.END_STREAM)
        if self.headers is None:  # the response's headers (or, ending the stream, a trailers-only response)
            self.headers = headers
            self._pending.append(None)
            fields = dict(headers)
            status = fields.get(":status", "")
            if status != "200" and not (end and "grpc-status" in fields):
                code = HTTP_STATUS_CODES.get(int(status) if status.isdigit() else 0, grpc.StatusCode.UNKNOWN)
                raise H2CallError(code, f"Received http2 header with status: {status or 'none'}")
            if not fields.get("content-type", "").startswith("application/grpc") and not end:
                raise H2CallError(grpc.StatusCode.UNKNOWN, "the response is not gRPC (its content-type)")
            self._encoding = fields.get("grpc-encoding", "identity").strip().lower()
            if not end:
                return
        elif not end:
            raise h2.H2ProtocolError("trailers without END_STREAM")
        self._trailers(dict(headers))

    def _trailers(self, fields: dict[str, str]) -> None:
        self.finished = True
        if self._buf:
            raise H2CallError(grpc.StatusCode.INTERNAL, "the stream ended inside a message")
        raw = fields.get("grpc-status")
        if raw is None:
            self.status = grpc.StatusCode.UNKNOWN
            self.details = "the server's trailers have no grpc-status"
            return
        self.status = _CODES.get(int(raw) if raw.isdigit() else -1, grpc.StatusCode.UNKNOWN)
        self.details = urllib.parse.unquote(fields.get("grpc-message", ""))

    def on_data(self, payload: bytes, flags: int) -> None:
        if self.headers is None or self.finished:
            raise h2.H2ProtocolError("DATA before the response's headers or after its end")
        buf = self._buf + payload if self._buf else payload
        pos = 0
        end = len(buf)
        messages = self._pending
        while end - pos >= 5:
            length = int.from_bytes(buf[pos + 1 : pos + 5], "big")
            if length > self._max_message:
                raise H2CallError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"Received message larger than max ({length} vs. {self._max_message})",
                )
            stop = pos + 5 + length
            if stop > end:
                break
            message = buf[pos + 5 : stop]
            if buf[pos]:
                message = self._inflate(message)
            pos = stop
            self._room -= len(message)
            if self._room < 0:
                raise reply_too_large(self._max_reply)
            messages.append(message)
        self._buf = buf[pos:] if pos else buf
        if flags & h2.END_STREAM:
            self.finished = True
            raise H2CallError(grpc.StatusCode.INTERNAL, "the server ended the stream without trailers")

    def _inflate(self, message: bytes) -> bytes:
        encoding = self._encoding
        if encoding in ("gzip", "deflate"):
            try:
                return zlib.decompress(message, 31 if encoding == "gzip" else 15)
            except zlib.error as exc:
                raise H2CallError(grpc.StatusCode.INTERNAL, f"could not decompress a message: {exc}") from exc
        raise H2CallError(
            grpc.StatusCode.INTERNAL, f"a compressed message with grpc-encoding {encoding!r} (none was asked for)"
        )


__all__ = [
    "CLIENT_SETTINGS",
    "CONNECTION_WINDOW",
    "HTTP_STATUS_CODES",
    "RST_STREAM_CODES",
    "CallReader",
    "H2CallError",
    "H2Connection",
]
