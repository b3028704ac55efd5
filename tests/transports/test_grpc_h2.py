"""The gRPC transport's own HTTP/2 client against small misbehaving servers on loopback, written with raw frames:
RST_STREAM, GOAWAY and closed connections between turns, HTTP error statuses, trailers-only errors, PINGs that must
be acknowledged mid-stream, a send window that makes a big request wait, a server that stalls. Every test runs
with the replies read by the hub's ReadMux and by ``recv`` calls."""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import hpack
import pytest

from loadgen.errors import ConnectError, Overloaded, ProtocolError, ServerError, TurnTimeout
from loadgen.grpc_gen.chat.v1 import chat_pb2
from loadgen.transports import grpc as grpc_transport
from loadgen.transports import h2_frames as h2
from loadgen.transports import http1_stream
from loadgen.transports.base import TransportConfig
from loadgen.transports.grpc import GrpcTransport
from loadgen.transports.grpc_h2 import grpc_timeout
from loadgen.types import ChatMessage, ChatRequest


@pytest.fixture(autouse=True, params=[False, True], ids=["recv", "read-mux"])
def multiplex(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    monkeypatch.setenv(grpc_transport.CLIENT_ENV, "h2")
    monkeypatch.setattr(http1_stream, "MULTIPLEX", request.param)
    value: bool = request.param
    return value


def ask(text: str = "hi", **fields: Any) -> ChatRequest:
    return ChatRequest(messages=(ChatMessage("user", text),), **fields)


def message(chunk: chat_pb2.ChatChunk | chat_pb2.ChatResponse, *, compressed: bool = False) -> bytes:
    raw = chunk.SerializeToString()
    return (b"\x01" if compressed else b"\x00") + len(raw).to_bytes(4, "big") + raw


class Peer:
    """The server's side of one connection: frames in and out, HPACK both ways."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.frames = h2.FrameDecoder(max_frame_size=2**24 - 1)
        self.decoder = hpack.Decoder()
        self.encoder = hpack.Encoder()
        self.seen: list[h2.Frame] = []
        self._queue: list[h2.Frame] = []
        self._preface = False

    def frame(self, timeout: float = 5.0) -> h2.Frame | None:
        """The next frame from the client (None: it closed the connection)."""
        while not self._queue:
            if not self._preface:
                data = b""
                while len(data) < len(h2.PREFACE):
                    more = self._recv(timeout)
                    if not more:
                        return None
                    data += more
                assert data.startswith(h2.PREFACE)
                self._preface = True
                self._queue += self.frames.feed(data[len(h2.PREFACE) :])
                continue
            data = self._recv(timeout)
            if not data:
                return None
            self._queue += self.frames.feed(data)
        got = self._queue.pop(0)
        self.seen.append(got)
        return got

    def _recv(self, timeout: float) -> bytes:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return b""

    def request(self) -> tuple[int, dict[str, str], bytes]:
        """The next call: its stream, headers and body (a whole request, END_STREAM seen)."""
        headers: dict[str, str] = {}
        body = b""
        stream = 0
        while True:
            got = self.frame()
            assert got is not None, "the client closed the connection"
            if got.type == h2.HEADERS:
                stream = got.stream_id
                headers = dict(self.decoder.decode(got.payload))
            elif got.type == h2.DATA and got.stream_id == stream:
                body += got.payload
            if got.stream_id == stream and got.flags & h2.END_STREAM:
                return stream, headers, body

    def send(self, *frames: bytes) -> None:
        self.sock.sendall(b"".join(frames))

    def headers(self, stream: int, fields: list[tuple[str, str]], *, end: bool = False) -> bytes:
        return h2.header_frames(stream, self.encoder.encode(fields), 16384, end_stream=end)

    def ok_headers(self, stream: int) -> bytes:
        return self.headers(stream, [(":status", "200"), ("content-type", "application/grpc")])

    def trailers(self, stream: int, status: int = 0, text: str = "") -> bytes:
        fields = [("grpc-status", str(status))]
        if text:
            fields.append(("grpc-message", urllib.parse.quote(text)))
        return self.headers(stream, fields, end=True)

    def reply(self, stream: int, *texts: str) -> None:
        """A whole streamed reply: headers, one message per text, the usage, OK trailers."""
        chunks = [message(chat_pb2.ChatChunk(text=t, tokens=1)) for t in texts]
        final = chat_pb2.ChatChunk(finish_reason="stop", usage=chat_pb2.Usage(prompt_tokens=1, completion_tokens=2))
        self.send(
            self.ok_headers(stream),
            *(h2.frame(h2.DATA, 0, stream, c) for c in chunks),
            h2.frame(h2.DATA, 0, stream, message(final)),
            self.trailers(stream),
        )


class RawServer:
    """Accepts connections on loopback; each runs ``handler(peer)`` in a thread of its own."""

    def __init__(self, handler: Callable[[Peer], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target = f"grpc://127.0.0.1:{self.port}"
        self.peers: list[Peer] = []
        self.errors: list[BaseException] = []
        self._handler = handler
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            peer = Peer(sock)
            self.peers.append(peer)
            threading.Thread(target=self._run, args=(peer,), daemon=True).start()

    def _run(self, peer: Peer) -> None:
        try:
            self._handler(peer)
        except BaseException as exc:  # shown by the test that checks ``errors``
            self.errors.append(exc)

    def close(self) -> None:
        self.listener.close()
        for peer in self.peers:
            peer.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[Peer], None]], RawServer]]:
    servers: list[RawServer] = []
    transports: list[GrpcTransport] = []

    def start(handler: Callable[[Peer], None]) -> RawServer:
        servers.append(RawServer(handler))
        return servers[-1]

    yield start
    for transport in transports:
        transport.close()
    for server in servers:
        server.close()


def transport_for(server: RawServer, **fields: Any) -> GrpcTransport:
    transport = GrpcTransport(TransportConfig(target=server.target, **fields))
    assert transport._h2 is not None
    return transport


def wait_closed(peer: Peer) -> list[h2.Frame]:
    """Every frame until the client closes the connection."""
    while peer.frame() is not None:
        pass
    return peer.seen


# -- the happy path, and what a connection carries -----------------------------------------------------------------


def test_a_streamed_reply_its_request_and_headers(serve: Callable[..., RawServer]) -> None:
    seen: dict[str, Any] = {}

    def handler(peer: Peer) -> None:
        stream, headers, body = peer.request()
        seen["headers"], seen["body"], seen["client_settings"] = headers, body, peer.seen[0]
        peer.reply(stream, "Hello ", "world")
        wait_closed(peer)

    server = serve(handler)
    transport = transport_for(server, api_key="sk-k", timeout_s=7)
    reply = transport.send(ask("hello there", max_tokens=5, trace_headers={"traceparent": "00-ab-cd-01"}))
    assert reply.text == "Hello world" and reply.chunk_tokens == [1.0, 1.0]
    assert reply.t_first_byte is not None and reply.t_sent < reply.t_first_byte <= reply.chunk_times[0]
    assert reply.chunk_times[-1] <= reply.t_done
    headers = seen["headers"]
    assert headers[":method"] == "POST" and headers[":scheme"] == "http"
    assert headers[":path"] == "/loadgen.chat.v1.ChatService/Chat"
    assert headers[":authority"] == f"127.0.0.1:{server.port}"
    assert headers["content-type"] == "application/grpc" and headers["te"] == "trailers"
    assert headers["authorization"] == "Bearer sk-k" and headers["traceparent"] == "00-ab-cd-01"
    assert headers["user-agent"].startswith("chat-loadgen/")
    assert headers["grpc-timeout"] == grpc_timeout(7.05)
    assert seen["body"][:1] == b"\0"
    request = chat_pb2.ChatRequest.FromString(seen["body"][5:])
    assert request.messages[0].content == "hello there" and request.max_tokens == 5
    settings = h2.parse_settings(seen["client_settings"].payload)
    assert settings[h2.SETTINGS_ENABLE_PUSH] == 0 and settings[h2.SETTINGS_INITIAL_WINDOW_SIZE] == h2.MAX_WINDOW
    transport.close()


def test_grpc_timeout_values() -> None:
    assert grpc_timeout(0.3) == "300000u"
    assert grpc_timeout(1000.0) == "1000000m"
    assert grpc_timeout(10**6) == "1000000S"
    assert grpc_timeout(10**9) == "99999999S"  # at most 8 digits


def test_settings_and_pings_are_acknowledged_mid_stream(serve: Callable[..., RawServer]) -> None:
    """The server holds the rest of the reply until its PING (sent after the first message) is acknowledged."""
    acks: list[bytes] = []

    def handler(peer: Peer) -> None:
        stream, _, _ = peer.request()
        peer.send(peer.ok_headers(stream), h2.frame(h2.DATA, 0, stream, message(chat_pb2.ChatChunk(text="a"))))
        time.sleep(0.05)
        peer.send(h2.settings({h2.SETTINGS_MAX_FRAME_SIZE: 32768}), h2.frame(h2.PING, 0, 0, b"bdp-ping"))
        while len(acks) < 2:
            got = peer.frame()
            assert got is not None
            if got.type in (h2.PING, h2.SETTINGS) and got.flags & h2.ACK:
                acks.append(got.payload)
        peer.send(h2.frame(h2.DATA, 0, stream, message(chat_pb2.ChatChunk(text="b"))), peer.trailers(stream))
        wait_closed(peer)

    server = serve(handler)
    transport = transport_for(server)
    reply = transport.send(ask(), timeout=5)
    assert reply.text == "ab"
    assert b"bdp-ping" in acks and b"" in acks
    transport.close()


# -- connections between turns ------------------------------------------------------------------------------------


@pytest.mark.parametrize("goodbye", ["goaway-then-close", "close", "goaway-kept-open"])
def test_a_connection_the_server_ended_between_turns_is_replaced(serve: Callable[..., RawServer], goodbye: str) -> None:
    def handler(peer: Peer) -> None:
        stream, _, _ = peer.request()
        peer.reply(stream, "one")
        time.sleep(0.05)
        if goodbye.startswith("goaway"):
            peer.send(h2.frame(h2.GOAWAY, 0, 0, (stream).to_bytes(4, "big") + b"\0\0\0\0"))
        if goodbye.endswith("close") or goodbye == "close":
            peer.sock.close()
            return
        wait_closed(peer)

    server = serve(handler)
    transport = transport_for(server)
    assert transport.send(ask()).text == "one"
    time.sleep(0.2)  # the server's goodbye is in the client's socket by now
    assert transport.send(ask()).text == "one"  # on a new connection: never a failed turn
    assert len(server.peers) == 2
    transport.close()
    assert not server.errors


def test_a_kept_connection_closed_as_the_request_went_is_retried_once(serve: Callable[..., RawServer]) -> None:
    """The server closes its first connection on the second request, unanswered (an idle timeout racing it): the
    turn goes again on a new connection, once; a new connection that fails the same way is the turn's error."""

    def handler(peer: Peer) -> None:
        first = len(peer_list) == 1
        stream, _, _ = peer.request()
        if first:
            peer.reply(stream, "one")
            peer.request()
            peer.sock.close()
            return
        peer.reply(stream, "two")
        wait_closed(peer)

    server = serve(handler)
    peer_list = server.peers
    transport = transport_for(server)
    assert transport.send(ask()).text == "one"
    assert transport.send(ask()).text == "two" and len(server.peers) == 2
    transport.close()

    def rude(peer: Peer) -> None:
        peer.request()
        peer.sock.close()

    with pytest.raises(ConnectError, match=r"^UNAVAILABLE: Socket closed$"):
        transport_for(serve(rude)).send(ask())
    assert not server.errors


def test_two_turns_at_once_use_two_connections(serve: Callable[..., RawServer]) -> None:
    def handler(peer: Peer) -> None:
        while True:
            stream, _, _ = peer.request()
            time.sleep(0.2)
            peer.reply(stream, "x")

    server = serve(handler)
    transport = transport_for(server)
    replies: list[str] = []
    threads = [threading.Thread(target=lambda: replies.append(transport.send(ask()).text)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert replies == ["x", "x"] and len(server.peers) == 2
    assert transport._h2 is not None and len(transport._h2.idle) == 2
    assert transport.send(ask()).text == "x" and len(server.peers) == 2  # an idle one is reused
    transport.close()


# -- errors -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error", "reason"),
    [
        (h2.REFUSED_STREAM, ConnectError, "UNAVAILABLE: Received RST_STREAM with error code 7"),
        (h2.CANCEL, ServerError, "CANCELLED: Received RST_STREAM with error code 8"),
        (h2.ENHANCE_YOUR_CALM, Overloaded, "RESOURCE_EXHAUSTED: Received RST_STREAM with error code 11"),
        (h2.INADEQUATE_SECURITY, ServerError, "PERMISSION_DENIED: Received RST_STREAM with error code 12"),
        (h2.PROTOCOL_ERROR, ServerError, "INTERNAL: Received RST_STREAM with error code 1"),
    ],
)
def test_rst_stream_codes(serve: Callable[..., RawServer], code: int, error: type[Exception], reason: str) -> None:
    def handler(peer: Peer) -> None:
        stream, _, _ = peer.request()
        peer.send(h2.rst_stream(stream, code))
        wait_closed(peer)

    server = serve(handler)
    transport = transport_for(server)
    with pytest.raises(error) as info:
        transport.send(ask())
    assert type(info.value) is error and getattr(info.value, "reason", None) == reason
    transport.close()


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (400, ServerError, "INTERNAL"),
        (401, ServerError, "UNAUTHENTICATED"),
        (403, ServerError, "PERMISSION_DENIED"),
        (404, ServerError, "UNIMPLEMENTED"),
        (429, ConnectError, "UNAVAILABLE"),
        (503, ConnectError, "UNAVAILABLE"),
        (500, ServerError, "UNKNOWN"),
    ],
)
def test_an_http_error_status(serve: Callable[..., RawServer], status: int, error: type[Exception], code: str) -> None:
    def handler(peer: Peer) -> None:
        stream, _, _ = peer.request()
        peer.send(peer.headers(stream, [(":status", str(status)), ("content-type", "text/plain")]))
        peer.send(h2.frame(h2.DATA, h2.END_STREAM, stream, b"nope"))
        wait_closed(peer)

    server = serve(handler)
    with pytest.raises(error) as info:
        transport_for(server).send(ask(stream=False))
    assert type(info.value) is error
    assert info.value.args[0].startswith(f"{code}: ")
    if isinstance(info.value, ServerError):
        assert info.value.code == code


@pytest.mark.parametrize("stream", [True, False])
def test_a_trailers_only_error_with_a_percent_encoded_message(serve: Callable[..., RawServer], stream: bool) -> None:
    def handler(peer: Peer) -> None:
        sid, _, _ = peer.request()
        fields = [(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "7")]
        fields.append(("grpc-message", urllib.parse.quote("model not allowed: ünïcode 100%")))
        peer.send(peer.headers(sid, fields, end=True))
        sid, _, _ = peer.request()  # the connection is still good: the call ended cleanly
        peer.reply(sid, "fine")
        wait_closed(peer)

    server = serve(handler)
    transport = transport_for(server)
    with pytest.raises(ServerError) as info:
        transport.send(ask(stream=stream))
    assert info.value.code == "PERMISSION_DENIED"
    assert info.value.reason == "PERMISSION_DENIED: model not allowed: ünïcode 100%"
    assert transport.send(ask()).text == "fine" and len(server.peers) == 1
    transport.close()


def test_an_error_status_after_some_messages_is_mid_stream(serve: Callable[..., RawServer]) -> None:
    def handler(peer: Peer) -> None:
        stream, _, _ = peer.request()
        peer.send(peer.ok_headers(stream), h2.frame(h2.DATA, 0, stream, message(chat_pb2.ChatChunk(text="p"))))
        time.sleep(0.05)
        peer.send(peer.trailers(stream, 14, "the engine stopped"))
        wait_closed(peer)

    with pytest.raises(ConnectError) as info:
        transport_for(serve(handler)).send(ask())
    assert info.value.reason == "UNAVAILABLE: the engine stopped (while streaming the reply)"


def test_a_connection_closed_mid_stream(serve: Callable[..., RawServer]) -> None:
    def handler(peer: Peer) -> None:
        stream, _, _ = peer.request()
        peer.send(peer.ok_headers(stream), h2.frame(h2.DATA, 0, stream, message(chat_pb2.ChatChunk(text="p"))))
        time.sleep(0.05)
        peer.sock.close()

    with pytest.raises(ConnectError) as info:
        transport_for(serve(handler)).send(ask())
    assert info.value.reason == "UNAVAILABLE: Socket closed (while streaming the reply)"


def test_a_goaway_that_leaves_the_call_out(serve: Callable[..., RawServer]) -> None:
    def handler(peer: Peer) -> None:
        peer.request()
        peer.send(h2.frame(h2.GOAWAY, 0, 0, b"\0\0\0\0\0\0\0\0"))
        wait_closed(peer)

    with pytest.raises(ConnectError, match=r"^UNAVAILABLE: the server is going away"):
        transport_for(serve(handler)).send(ask())


def test_a_compressed_message_nobody_asked_for(serve: Callable[..., RawServer]) -> None:
    def handler(peer: Peer) -> None:
        stream, _, _ = peer.request()
        raw = message(chat_pb2.ChatChunk(text="z"), compressed=True)
        peer.send(peer.ok_headers(stream), h2.frame(h2.DATA, 0, stream, raw), peer.trailers(stream))
        wait_closed(peer)

    with pytest.raises(ServerError) as info:
        transport_for(serve(handler)).send(ask())
    assert info.value.code == "INTERNAL" and "compressed" in info.value.reason


def test_an_unparseable_message(serve: Callable[..., RawServer]) -> None:
    def handler(peer: Peer) -> None:
        stream, _, _ = peer.request()
        raw = b"\0\0\0\0\x04\xff\xff\xff\xff"
        peer.send(peer.ok_headers(stream), h2.frame(h2.DATA, 0, stream, raw), peer.trailers(stream))
        wait_closed(peer)

    with pytest.raises(ProtocolError, match=r"^INTERNAL: could not parse"):
        transport_for(serve(handler)).send(ask())


@pytest.mark.parametrize("stream", [True, False])
def test_a_server_that_stalls_ends_at_the_deadline_and_is_cancelled(
    serve: Callable[..., RawServer], stream: bool
) -> None:
    ended: list[list[h2.Frame]] = []

    def handler(peer: Peer) -> None:
        peer.request()
        ended.append(wait_closed(peer))

    server = serve(handler)
    started = time.perf_counter()
    with pytest.raises(TurnTimeout) as info:
        transport_for(server).send(ask(stream=stream), timeout=0.4)
    assert 0.4 - 0.005 <= time.perf_counter() - started < 1.0
    assert info.value.reason == "DEADLINE_EXCEEDED: turn exceeded its timeout (0.4s) before the reply started"
    deadline = time.monotonic() + 5
    while not ended and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ended, "the client kept the connection open"
    assert any(f.type == h2.RST_STREAM and h2.parse_u32(f.payload, "") == h2.CANCEL for f in ended[0])


# -- flow control for a big request ---------------------------------------------------------------------------------


def test_a_request_larger_than_the_window_waits_for_window_updates(serve: Callable[..., RawServer]) -> None:
    """A long conversation (~200 KiB): frames no larger than the server's 16 KiB, no byte past the window until
    the server's WINDOW_UPDATE frames open it."""
    report: dict[str, Any] = {}

    def handler(peer: Peer) -> None:
        received = 0
        frames: list[int] = []
        stream = 0
        body = b""
        while True:
            got = peer.frame()
            assert got is not None
            if got.type == h2.HEADERS:
                stream = got.stream_id
            if got.type != h2.DATA:
                continue
            body += got.payload
            frames.append(len(got.payload))
            received += len(got.payload)
            if got.flags & h2.END_STREAM:
                break
            if received >= h2.DEFAULT_WINDOW:  # the window is used up: nothing more may come until it opens
                assert received == h2.DEFAULT_WINDOW, received
                peer.sock.settimeout(0.3)
                try:
                    report["early"] = peer.sock.recv(1)
                except TimeoutError:
                    report["early"] = b""
                received = 0
                peer.send(h2.window_update(0, h2.DEFAULT_WINDOW), h2.window_update(stream, h2.DEFAULT_WINDOW))
        report["frames"], report["body"] = frames, body
        peer.reply(stream, "read it all")
        wait_closed(peer)

    server = serve(handler)
    long_text = "word " * 40_000
    reply = transport_for(server).send(ask(long_text), timeout=10)
    assert reply.text == "read it all"
    assert report["early"] == b""
    assert max(report["frames"]) <= h2.DEFAULT_MAX_FRAME_SIZE
    assert chat_pb2.ChatRequest.FromString(report["body"][5:]).messages[0].content == long_text
    assert not server.errors


def test_a_host_name_is_looked_up(serve: Callable[..., RawServer]) -> None:
    def handler(peer: Peer) -> None:
        stream, _, _ = peer.request()
        peer.reply(stream, "by name")
        wait_closed(peer)

    server = serve(handler)
    transport = GrpcTransport(TransportConfig(target=f"grpc://localhost:{server.port}"))
    assert transport.send(ask()).text == "by name"
    transport.close()
