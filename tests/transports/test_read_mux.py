"""loadgen.transports.read_mux: response bodies read by the gevent loop, against real sockets (TCP on 127.0.0.1).

The REST transport's tests run every plain-http case through it as well (tests/transports/test_rest_http1.py,
``read-mux``); these pin what the loop does on its own: the arrival stamps, the end, every way a body fails,
a greenlet killed while it waits, several bodies at once."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import gevent
import httpx
import pytest

from loadgen.errors import ProtocolError
from loadgen.transports.http1_stream import ChunkedDecoder, PlainDecoder
from loadgen.transports.read_mux import BodyRead, read_mux

Pair = tuple[socket.socket, socket.socket]


@pytest.fixture
def tcp_pair() -> Iterator[Pair]:
    """A connected (client, server) pair of TCP sockets on 127.0.0.1."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    yield client, server
    client.close()
    server.close()


def _write(server: socket.socket, parts: list[bytes | float], sent: list[tuple[float, int]]) -> None:
    """Send the parts (a float: sleep that long), noting (time just before the send, bytes of body so far)."""
    total = 0
    for part in parts:
        if isinstance(part, float):
            gevent.sleep(part)
            continue
        sent.append((time.perf_counter(), total))
        server.sendall(part)
        total += len(part)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def test_pieces_carry_their_arrival_and_the_end_is_stamped(tcp_pair: Pair) -> None:
    client, server = tcp_pair
    parts: list[bytes | float] = [_chunk(b"abc"), 0.02, _chunk(b"de"), 0.02, _chunk(b"fghij"), 0.02, b"0\r\n\r\n"]
    sent: list[tuple[float, int]] = []
    writer = gevent.spawn(_write, server, parts, sent)
    read = read_mux().read(client, ChunkedDecoder(1 << 20), b"", time.perf_counter() + 10)
    writer.join()
    assert read.error is None
    assert b"".join(p for _, p in read.pieces) == b"abcdefghij"
    stamps = [t for t, _ in read.pieces]
    assert stamps == sorted(stamps)
    # never early: a piece is stamped no sooner than the send of the last chunk whose bytes it holds
    sends_at = [t for t, _ in sent]
    body_ends = [3, 5, 10]  # the body's length once each chunk is in
    done = 0
    for t, piece in read.pieces:
        done += len(piece)
        last_chunk = next(i for i, end in enumerate(body_ends) if done <= end)
        assert t >= sends_at[last_chunk], (piece, last_chunk)
    assert read.ended_at is not None and read.ended_at >= sends_at[-1]
    assert not read_mux()._bodies


def test_a_body_complete_in_what_came_with_the_head_needs_no_wait(tcp_pair: Pair) -> None:
    client, _ = tcp_pair
    before = time.perf_counter()
    read = read_mux().read(client, ChunkedDecoder(100), _chunk(b"hi") + b"0\r\n\r\n", before + 10)
    assert [p for _, p in read.pieces] == [b"hi"]
    assert read.error is None and read.ended_at is not None and read.ended_at >= before


def test_an_error_comes_after_the_pieces_before_it(tcp_pair: Pair) -> None:
    client, server = tcp_pair
    writer = gevent.spawn(_write, server, [_chunk(b"abc"), 0.02, b"zz\r\n"], [])
    read = read_mux().read(client, ChunkedDecoder(100), b"", time.perf_counter() + 10)
    writer.join()
    assert [p for _, p in read.pieces] == [b"abc"]
    assert isinstance(read.error, httpx.RemoteProtocolError)
    assert str(read.error) == "illegal chunk header: b'zz\\r'"
    assert not read_mux()._bodies


def test_the_size_limit_ends_the_body(tcp_pair: Pair) -> None:
    client, server = tcp_pair
    writer = gevent.spawn(_write, server, [_chunk(b"abcd"), 0.02, _chunk(b"e")], [])
    read = read_mux().read(client, ChunkedDecoder(4), b"", time.perf_counter() + 10)
    writer.join()
    assert [p for _, p in read.pieces] == [b"abcd"]
    assert isinstance(read.error, ProtocolError) and "4" in str(read.error)


def test_silence_ends_at_the_deadline_and_leaves_nothing_behind(tcp_pair: Pair) -> None:
    client, server = tcp_pair
    server.sendall(_chunk(b"abc"))
    start = time.perf_counter()
    read = read_mux().read(client, ChunkedDecoder(100), b"", start + 0.2)
    elapsed = time.perf_counter() - start
    assert [p for _, p in read.pieces] == [b"abc"]
    assert isinstance(read.error, httpx.ReadTimeout)
    assert elapsed >= 0.2 - 0.002  # never early (the loop's clock is brought up to date first)
    assert not read_mux()._bodies
    # the socket is out of the set: it can be read through it again
    server.sendall(b"0\r\n\r\n")
    again = read_mux().read(client, ChunkedDecoder(100), b"", time.perf_counter() + 5)
    assert again.error is None and again.ended_at is not None


def test_a_deadline_already_past_reads_nothing(tcp_pair: Pair) -> None:
    client, server = tcp_pair
    server.sendall(_chunk(b"abc"))
    read = read_mux().read(client, ChunkedDecoder(100), _chunk(b"x"), time.perf_counter() - 1)
    assert [p for _, p in read.pieces] == [b"x"]  # what came with the head is still handed over
    assert isinstance(read.error, httpx.ReadTimeout) and not read_mux()._bodies


def test_a_greenlet_killed_while_it_waits_takes_its_socket_out(tcp_pair: Pair) -> None:
    client, server = tcp_pair
    mux = read_mux()
    reader = gevent.spawn(mux.read, client, ChunkedDecoder(100), b"", time.perf_counter() + 30)
    gevent.sleep(0.05)
    assert client.fileno() in mux._bodies
    reader.kill()
    assert reader.dead and not mux._bodies
    server.sendall(_chunk(b"late"))  # nobody is woken by it
    gevent.sleep(0.02)
    writer = gevent.spawn(_write, server, [0.02, b"0\r\n\r\n"], [])
    read = mux.read(client, ChunkedDecoder(100), b"", time.perf_counter() + 5)  # registers the fd again
    writer.join()
    assert read.error is None
    assert [p for _, p in read.pieces] == [b"late"]  # the late chunk is read by this body


def test_bodies_read_at_the_same_time_each_get_their_own(tcp_pair: Pair) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    pairs: list[Pair] = []
    for _ in range(8):
        c = socket.create_connection(listener.getsockname())
        s, _ = listener.accept()
        pairs.append((c, s))
    listener.close()
    mux = read_mux()
    readers = [gevent.spawn(mux.read, c, ChunkedDecoder(1000), b"", time.perf_counter() + 10) for c, _ in pairs]
    gevent.sleep(0.01)
    for round_ in range(5):
        for i, (_, s) in enumerate(pairs):
            s.sendall(_chunk(b"%d.%d;" % (i, round_)))
        gevent.sleep(0.005)
    for _, s in pairs:
        s.sendall(b"0\r\n\r\n")
    results: list[BodyRead] = [r.get(timeout=10) for r in readers]
    for i, read in enumerate(results):
        assert read.error is None
        assert b"".join(p for _, p in read.pieces) == b"".join(b"%d.%d;" % (i, r) for r in range(5))
    assert not mux._bodies
    for c, s in pairs:
        c.close()
        s.close()


def test_a_body_until_close_ends_with_the_close(tcp_pair: Pair) -> None:
    client, server = tcp_pair
    writer = gevent.spawn(_write, server, [b"all of ", 0.02, b"it"], [])
    writer.link(lambda _: server.shutdown(socket.SHUT_WR))
    read = read_mux().read(client, PlainDecoder(-1, 100), b"", time.perf_counter() + 10)
    assert b"".join(p for _, p in read.pieces) == b"all of it"
    assert read.error is None and read.ended_at is not None


def test_a_content_length_body_cut_short(tcp_pair: Pair) -> None:
    client, server = tcp_pair
    server.sendall(b"1234")
    server.shutdown(socket.SHUT_WR)
    read = read_mux().read(client, PlainDecoder(10, 100), b"", time.perf_counter() + 10)
    assert [p for _, p in read.pieces] == [b"1234"]
    assert isinstance(read.error, httpx.RemoteProtocolError)
    assert str(read.error) == (
        "peer closed connection without sending complete message body: received 4 bytes, expected 10"
    )


def test_a_reset_is_a_read_error(tcp_pair: Pair) -> None:
    client, server = tcp_pair
    server.sendall(_chunk(b"abc"))
    gevent.sleep(0.01)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    server.close()  # RST
    read = read_mux().read(client, ChunkedDecoder(100), b"", time.perf_counter() + 10)
    assert [p for _, p in read.pieces] == [b"abc"]
    assert isinstance(read.error, httpx.ReadError)


# -- the decoders on their own ----------------------------------------------------------------------------------


def test_a_content_length_decoder_keeps_what_follows_the_body() -> None:
    decoder = PlainDecoder(5, 100)
    assert decoder.feed(b"123") == b"123" and not decoder.finished
    assert decoder.feed(b"45HTTP") == b"45" and decoder.finished
    assert decoder.feed(b"/1.1") == b""
    assert decoder.leftover == b"HTTP/1.1"
    empty = PlainDecoder(0, 100)
    assert empty.finished and empty.feed(b"x") == b"" and empty.leftover == b"x"


def test_a_chunked_decoder_fed_one_byte_at_a_time() -> None:
    raw = _chunk(b"hello") + b"3;ext=1\r\n wo\r\n" + _chunk(b"rld") + b"0\r\nTrailer: x\r\n\r\nNEXT"
    decoder = ChunkedDecoder(100)
    out = b""
    fed = 0
    while not decoder.finished:
        out += decoder.feed(raw[fed : fed + 1])
        fed += 1
    assert out == b"hello world"
    assert raw[fed:] == b"NEXT" and decoder.leftover == b""  # it finished on the blank line's last byte
    whole = ChunkedDecoder(100)
    assert whole.feed(raw) == b"hello world" and whole.leftover == b"NEXT"
    with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
        ChunkedDecoder(100).eof()


def test_a_forked_child_makes_its_own_set_and_drops_the_inherited_one(tcp_pair: Pair) -> None:
    import os

    parent = read_mux()
    client, server = tcp_pair
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a new set; the parent's is no longer watched here
        ok = False
        try:
            gevent.reinit()  # as gevent's own fork does: the child's loop gets its own kernel state
            child = read_mux()
            server.sendall(_chunk(b"child") + b"0\r\n\r\n")
            read = child.read(client, ChunkedDecoder(100), b"", time.perf_counter() + 5)
            ok = child is not parent and parent._epoll.closed and [p for _, p in read.pieces] == [b"child"]
        finally:
            os.write(write_fd, b"1" if ok else b"0")
            os._exit(0)
    os.close(write_fd)
    answer = os.read(read_fd, 1)
    os.waitpid(pid, 0)
    os.close(read_fd)
    assert answer == b"1"
    assert read_mux() is parent and not parent._epoll.closed
