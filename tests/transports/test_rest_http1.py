"""The REST transport's own HTTP/1.1 client for plain http targets (loadgen.transports.http1_stream), against real
servers on 127.0.0.1 (conftest.ScriptServer): the raw response cut at every byte, chunked framing good and bad,
Content-Length and close-delimited bodies, keep-alive reuse and its limits, the deadline on every wait."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from loadgen.errors import ProtocolError, ServerError, TransportError, TurnTimeout
from loadgen.transports import http1_stream
from loadgen.transports.base import TransportConfig
from loadgen.transports.http1_stream import Http1Client
from loadgen.transports.rest import RestTransport
from loadgen.types import Usage
from tests.transports.test_rest import DONE, END, ask, delta, head, normal_stream, piece, sse, usage_chunk, whole

GAP_S = 0.004
EARLY_S = 0.001


@pytest.fixture(autouse=True, params=[False, True], ids=["recv", "read-mux"])
def body_reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Every test twice: bodies read one ``recv`` at a time by the turn, and by the loop's ReadMux (what a
    gevent process, i.e. Locust, uses)."""
    monkeypatch.setattr(http1_stream, "MULTIPLEX", request.param)
    return bool(request.param)


@pytest.fixture
def rest() -> Iterator[Callable[..., RestTransport]]:
    made: list[RestTransport] = []

    def make(target: str, **fields: Any) -> RestTransport:
        t = RestTransport(TransportConfig(target=target, **fields))
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


def _events(words: list[str]) -> bytes:
    """An event stream: the words, finish, usage, [DONE] (compact JSON, one event per token)."""
    chunks = [delta(w) for w in words] + [delta(finish="stop"), usage_chunk(len(words))]
    body = b"".join(b"data: " + json.dumps(c, separators=(",", ":")).encode() + b"\n\n" for c in chunks)
    return body + b"data: [DONE]\n\n"


def _chunked(body: bytes, size: int = 40) -> bytes:
    return b"".join(piece(body[i : i + size]) for i in range(0, len(body), size)) + END


def _retarget(transport: RestTransport, target: str) -> None:
    """Send the next turns to another route of the same server (the same connection)."""
    transport._url = target + "/v1/chat/completions"
    if transport._wire_heads is not None:
        transport._wire_heads.clear()  # the request line is in them


def _conn_ids(server: Any, target: str) -> list[int]:
    return [r.conn_id for r in server.requests_to(target)]


# -- which requests take this path ----------------------------------------------------------------------------


def test_plain_http_targets_use_it_and_others_keep_httpx(
    rest: Callable[..., RestTransport], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(rest("http://127.0.0.1:9")._http1, Http1Client)
    assert rest("https://127.0.0.1:9")._http1 is None
    mock = httpx.MockTransport(lambda request: httpx.Response(500))
    with_mock = RestTransport(TransportConfig(target="http://127.0.0.1:9"), transport=mock)
    assert with_mock._http1 is None
    with_mock.close()
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")  # never read (httpx neither: it has a transport)
    assert rest("http://10.1.2.3:9")._client._mounts == {}


# -- the raw response cut anywhere ----------------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["chunked", "length"])
def test_a_response_cut_at_every_byte_reads_the_same(
    http_server: Any, rest: Callable[..., RestTransport], framing: str
) -> None:
    """Head, chunk-size lines, chunk data, CRLFs and the last chunk: the response leaves in two writes, cut at
    every byte (the second a few ms later, so the client reads the first alone); the reply is the same."""
    body = _events(["Héllo", " world"])
    if framing == "chunked":
        raw = head() + _chunked(body, size=23)  # chunks that do not follow the events
    else:
        raw = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
    first_token_end = raw.index(b"\n\n", raw.index(b"data: ")) + 1  # its data line ends with this byte
    transport: RestTransport | None = None  # one transport, one connection, reused by every cut
    for cut in range(1, len(raw)):
        target = http_server.route([raw[:cut], GAP_S, raw[cut:]])
        if transport is None:
            transport = rest(target)
        _retarget(transport, target)
        reply = transport.send(ask(), timeout=10)
        where = f"cut at byte {cut} of {len(raw)}: {raw[:cut][-12:]!r} | {raw[cut:][:12]!r}"
        assert reply.text == "Héllo world", where
        assert len(http_server.requests_to(target)) == 1, where  # this cut's route answered it
        assert reply.usage == Usage(prompt_tokens=5, completion_tokens=2), where
        assert reply.chunk_tokens == [1.0, 1.0], where
        ttft = reply.ttft_s()
        assert ttft is not None, where
        if cut < first_token_end:  # the first token was not all there: it is timed when its line is complete
            assert ttft >= GAP_S - EARLY_S, where
    conn_ids = {r.conn_id for r in http_server.requests[-(len(raw) - 1) :]}
    assert len(conn_ids) == 1, "every response was read to its end: the connection was kept for the next"


def test_chunk_extensions_trailers_and_an_interim_response(
    http_server: Any, rest: Callable[..., RestTransport]
) -> None:
    body = _events(["a", "b"])
    raw = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        + head()
        + f"{len(body):x};name=value\r\n".encode()
        + body
        + b"\r\n0\r\nX-Trailer: yes\r\n\r\n"
    )
    target = http_server.route([raw])
    t = rest(target)
    assert t.send(ask(), timeout=5).text == "ab"
    assert t.send(ask(), timeout=5).text == "ab"
    assert len(set(_conn_ids(http_server, target))) == 1


# -- framing errors ---------------------------------------------------------------------------------------------


def test_a_server_that_closes_mid_chunk(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    ok = http_server.route(normal_stream(["fine"]))
    target = http_server.route([head(), sse(delta("Hel")), b'40\r\ndata: {"choi', "close"])
    t = rest(target)
    with pytest.raises(ProtocolError) as info:
        t.send(ask(), timeout=5)
    assert info.value.reason.startswith("stream ended early: peer closed connection")
    assert isinstance(info.value.__cause__, httpx.RemoteProtocolError)
    _retarget(t, ok)
    assert t.send(ask(), timeout=5).text == "fine"  # a new connection


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (b"zz\r\ndata: x\n\n\r\n", "illegal chunk header"),
        (b"-5\r\ndata: x\r\n", "illegal chunk header"),
        (b"0x5\r\ndata:\r\n", "illegal chunk header"),
        (b"5\r\ndata:XX", "chunk data not followed by CRLF"),
        (b"f" * 5000, "chunk header too long"),
    ],
    ids=["not-hex", "negative", "0x-prefix", "no-crlf-after-data", "endless-size-line"],
)
def test_a_bad_chunk_is_a_protocol_error(
    http_server: Any, rest: Callable[..., RestTransport], bad: bytes, says: str
) -> None:
    target = http_server.route([head(), sse(delta("a")), bad, "hang"])
    with pytest.raises(ProtocolError) as info:
        rest(target).send(ask(), timeout=5)
    assert info.value.reason.startswith(f"stream ended early: {says}"), info.value.reason


@pytest.mark.parametrize(
    ("response", "says"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "unsupported transfer encoding"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "conflicting Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x5\r\n\r\n", "malformed Content-Length"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header line"),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "unexpected switch of protocols"),
        (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n", "peer closed connection without sending"),
    ],
    ids=["transfer-coding", "two-lengths", "bad-length", "bad-status", "bad-header", "101", "cut-head"],
)
def test_a_bad_response_head_is_a_protocol_error(
    http_server: Any, rest: Callable[..., RestTransport], response: bytes, says: str
) -> None:
    target = http_server.route([response, "close"])
    with pytest.raises(ProtocolError) as info:
        rest(target).send(ask(), timeout=5)
    assert info.value.reason.startswith("server broke off before answering: ")
    assert says in info.value.reason, info.value.reason
    assert isinstance(info.value.__cause__, httpx.RemoteProtocolError)


def test_a_content_length_body_cut_short(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    body = _events(["a", "b"])
    response = f"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {len(body) + 10}\r\n\r\n"
    target = http_server.route([response.encode() + body[:-3], "close"])
    with pytest.raises(ProtocolError) as info:
        rest(target).send(ask(), timeout=5)
    assert info.value.reason.startswith("stream ended early: peer closed connection")


# -- other framings, keep-alive --------------------------------------------------------------------------------


def test_a_content_length_stream_is_read_and_its_connection_reused(
    http_server: Any, rest: Callable[..., RestTransport]
) -> None:
    body = _events(["one", " two"])
    response = f"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    target = http_server.route([response.encode() + body])
    t = rest(target)
    for _ in range(3):
        reply = t.send(ask(), timeout=5)
        assert reply.text == "one two" and reply.chunk_tokens == [1.0, 1.0]
    assert len(_conn_ids(http_server, target)) == 3
    assert len(set(_conn_ids(http_server, target))) == 1


def test_keep_alive_across_turns_and_after_an_error_status(
    http_server: Any, rest: Callable[..., RestTransport]
) -> None:
    ok = http_server.route(normal_stream(["hi"]))
    failing = http_server.route([whole(429, json.dumps({"error": {"message": "slow down"}}))])
    t = rest(ok)
    assert t.send(ask(), timeout=5).text == "hi"
    _retarget(t, failing)
    with pytest.raises(ServerError):
        t.send(ask(), timeout=5)
    _retarget(t, ok)
    assert t.send(ask(), timeout=5).text == "hi"
    seen = _conn_ids(http_server, ok) + _conn_ids(http_server, failing)
    assert len(seen) == 3 and len(set(seen)) == 1


def test_connection_close_from_the_server_is_honoured(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    body = _events(["bye"])
    closing = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n"
    target = http_server.route([closing + b"Transfer-Encoding: chunked\r\n\r\n" + _chunked(body), "hang"])
    t = rest(target)
    assert t.send(ask(), timeout=5).text == "bye"
    assert t.send(ask(), timeout=5).text == "bye"  # not sent on the connection the server said it would close
    assert len(set(_conn_ids(http_server, target))) == 2


def test_a_body_that_lasts_until_the_server_closes(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    target = http_server.route([b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n", _events(["x"]), "close"])
    t = rest(target)
    assert t.send(ask(), timeout=5).text == "x"
    assert t.send(ask(), timeout=5).text == "x"
    assert len(set(_conn_ids(http_server, target))) == 2


def test_an_idle_connection_the_server_closed_is_not_reused(
    http_server: Any, rest: Callable[..., RestTransport]
) -> None:
    """Closed between turns without a word (an idle timeout on the server): the next turn connects afresh
    instead of failing on the dead connection."""
    target = http_server.route([*normal_stream(["again"]), 0.01, "close"])
    t = rest(target)
    for _ in range(3):
        assert t.send(ask(), timeout=5).text == "again"
        time.sleep(0.1)  # the server closes 10 ms after its reply
    assert len(set(_conn_ids(http_server, target))) == 3


def test_a_turn_that_fails_mid_body_leaves_nothing_for_the_next(
    http_server: Any, rest: Callable[..., RestTransport]
) -> None:
    """The turn ends at its deadline mid-reply; the rest of that reply, sent later, must not be read as the next
    turn's (the connection is closed, the next turn has a new one)."""
    slow = http_server.route([head(), sse(delta("late")), 0.3, *normal_stream(["wrong"])[1:]])
    ok = http_server.route(normal_stream(["right"]))
    t = rest(slow)
    with pytest.raises(TurnTimeout):
        t.send(ask(), timeout=0.15)
    _retarget(t, ok)
    time.sleep(0.3)
    assert t.send(ask(), timeout=5).text == "right"
    assert _conn_ids(http_server, slow) != _conn_ids(http_server, ok)


def test_a_gzip_coded_stream_over_the_socket(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    coded = gzip.compress(_events(["gz", "ip"]))
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    target = http_server.route([response + _chunked(coded, size=17)])
    reply = rest(target).send(ask(), timeout=5)
    assert reply.text == "gzip" and reply.usage == Usage(5, 2)


def test_cookies_set_by_the_server_go_back(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    sticky = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nSet-Cookie: route=a1; Path=/\r\n"
    target = http_server.route([sticky + b"Transfer-Encoding: chunked\r\n\r\n" + _chunked(_events(["c"]))])
    t = rest(target)
    t.send(ask(), timeout=5)
    t.send(ask(), timeout=5)
    first, second = http_server.requests_to(target)
    assert "cookie" not in first.headers and second.headers["cookie"] == "route=a1"


# -- the deadline on every wait -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "when"),
    [
        (["hang"], "before the reply"),
        ([b"HTTP/1.1 200 OK\r\nContent-Ty", "hang"], "before the reply"),
        ([head(), sse(delta("a")), b"4", "hang"], "while streaming the reply"),
        ([head(), sse(delta("a")), b"40\r\ndata: {", "hang"], "while streaming the reply"),
        ([head(), sse(delta("a")), sse(delta("b"))[:-2], "hang"], "while streaming the reply"),
    ],
    ids=["no-head", "half-a-head", "half-a-size-line", "half-a-chunk", "chunk-without-crlf"],
)
def test_silence_anywhere_ends_at_the_turn_deadline(
    http_server: Any, rest: Callable[..., RestTransport], script: list[Any], when: str
) -> None:
    start = time.perf_counter()
    with pytest.raises(TransportError) as info:
        rest(http_server.route(script)).send(ask(), timeout=0.4)
    elapsed = time.perf_counter() - start
    assert isinstance(info.value, TurnTimeout)
    assert info.value.reason == f"turn exceeded its timeout (0.4s) {when}"
    assert 0.4 - 0.005 <= elapsed <= 0.4 + 0.3


def test_a_stream_complete_at_done_with_a_silent_end(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    """[DONE] came but not the last chunk: the reply is complete, the connection is not kept."""
    target = http_server.route([head(), sse(delta("ok")), sse(delta(finish="stop")), DONE, "hang"])
    t = rest(target)
    assert t.send(ask(), timeout=0.3).text == "ok"
    assert t._http1 is not None and t._http1._idle is None


# -- the request in its wire form -----------------------------------------------------------------------------


class _HttpxOnly(RestTransport):
    direct_http1 = False


def test_the_wire_form_request_is_what_httpx_sends(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    """Built once per transport from httpx's own request, then per turn: same headers, same body, on the wire."""
    target = http_server.route(normal_stream(["same"]))
    direct = rest(target, api_key="sk-abc", model="m1")
    assert direct._wire_heads is not None
    plain = _HttpxOnly(TransportConfig(target=target, api_key="sk-abc", model="m1"))
    try:
        for stream in (True, False, True):
            request = ask("Hi there", stream=stream, session_id="s-1")
            request = dataclasses.replace(request, trace_headers={"traceparent": "00-abc-def-01"})
            for t in (direct, plain):
                with contextlib.suppress(ProtocolError):  # the whole request gets a stream: not the point here
                    t.send(request, timeout=5)
    finally:
        plain.close()
    sent = http_server.requests_to(target)
    assert len(sent) == 6
    for ours, httpx_made in zip(sent[0::2], sent[1::2], strict=True):
        assert ours.method == httpx_made.method == "POST"
        assert ours.path == httpx_made.path
        assert ours.headers == httpx_made.headers
        assert ours.body == httpx_made.body
        assert ours.headers["traceparent"] == "00-abc-def-01"
    assert sent[0].headers["accept"] != sent[2].headers["accept"]  # streamed and whole: a head each


def test_a_subclass_building_its_own_requests_keeps_httpx_requests(http_server: Any) -> None:
    class Custom(RestTransport):
        def _build_request(self, request: Any, turn_timeout: float) -> httpx.Request:
            built = super()._build_request(request, turn_timeout)
            built.headers["x-custom"] = "1"
            return built

    target = http_server.route(normal_stream(["own"]))
    t = Custom(TransportConfig(target=target))
    try:
        assert t._http1 is not None and t._wire_heads is None
        assert t.send(ask(), timeout=5).text == "own"
    finally:
        t.close()
    assert http_server.requests_to(target)[0].headers["x-custom"] == "1"
