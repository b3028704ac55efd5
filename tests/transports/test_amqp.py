"""AmqpTransport: the wire format, against the real broker and the real reference server, and its faults.

Each test uses a queue of its own. Broker tests skip without a broker on 127.0.0.1:5672 (and fail in CI).
The fault test stops the broker's app (``rabbitmqctl stop_app``) and always starts it again.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import socket
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from loadgen.errors import (
    ConfigError,
    ConnectError,
    Overloaded,
    ProtocolError,
    ServerError,
    TransportError,
    TurnTimeout,
    Unroutable,
)
from loadgen.server.app import RunningServer, run_in_thread
from loadgen.server.config import ServerConfig, SimEngineConfig
from loadgen.transports import make_transport
from loadgen.transports.amqp import AmqpTransport, open_clients, parse_target, reply_error
from loadgen.transports.amqp_client import Turn
from loadgen.transports.base import TransportConfig
from loadgen.types import ChatMessage, ChatRequest, Usage
from loadgen.wire.amqp import (
    AUTH_HEADER,
    CONTENT_TYPE,
    DEFAULT_QUEUE,
    REQUEST_TYPE,
    SENT_AT_HEADER,
    Chunk,
    ErrorBody,
    decode_request,
    encode_chunk,
    error_chunk,
    several,
)
from tests.amqp_broker import (
    BROKER_URL,
    NO_BROKER_PORT,
    RawAmqp,
    TlsProxy,
    broker_app_stopped,
    list_queues,
    make_certificate,
    require_broker,
    unique_queue,
    wait_until,
)
from tests.broker_proxy import CutProxy
from tests.conftest import REPO_ROOT

API_KEY = "sk-amqp-test-0123456789"


def ask(text: str = "Hello, my name is Ada.", *, stream: bool = True, max_tokens: int = 16, **kw: Any) -> ChatRequest:
    return ChatRequest(messages=(ChatMessage("user", text),), stream=stream, max_tokens=max_tokens, **kw)


# ---------------------------------------------------------------------------------------------------------------
# no broker needed: targets, the wire format, reply handling


def test_parse_target_defaults_and_queue() -> None:
    t = parse_target("amqp://guest:guest@127.0.0.1/")
    assert t.queue == DEFAULT_QUEUE
    assert t.where == "127.0.0.1:5672"
    assert not t.tls
    assert "queue=" not in t.broker_url
    t = parse_target("amqps://u:p%40ss@broker.example:5999/vh?queue=my.q&heartbeat=30")
    assert (t.queue, t.where, t.tls, t.user, t.password) == ("my.q", "broker.example:5999", True, "u", "p@ss")
    assert "heartbeat=30" in t.broker_url and "queue=" not in t.broker_url
    assert parse_target("amqps://h/").where == "h:5671"


def test_parse_target_tls_verify_off_and_reconnect_interval() -> None:
    t = parse_target("amqps://guest:guest@h/?queue=q", tls_verify=False)
    assert "no_verify_ssl=1" in t.broker_url
    assert "reconnect_interval=0.5" in t.broker_url
    assert "reconnect_interval=7" in parse_target("amqp://h/?reconnect_interval=7").broker_url


@pytest.mark.parametrize(
    "target",
    [
        "http://guest:s3cret@127.0.0.1:5672/",
        "amqp:///?queue=x",
        "amqp://guest:s3cret@127.0.0.1:5672/?queue=",
        "amqp://guest:s3cret@127.0.0.1:5672/?queue=a&queue=b",
        "amqp://guest:s3cret@127.0.0.1:notaport/",
    ],
)
def test_bad_targets_are_config_errors_without_the_password(target: str) -> None:
    with pytest.raises(ConfigError) as info:
        AmqpTransport(TransportConfig(target=target))
    assert "s3cret" not in str(info.value)


def test_make_transport_picks_amqp() -> None:
    transport = make_transport("amqp", TransportConfig(target="amqp://guest:guest@127.0.0.1:5672/?queue=q"))
    assert isinstance(transport, AmqpTransport)
    assert transport.queue == "q"
    transport.close()
    transport.close()  # twice is fine


def test_error_codes_map() -> None:
    err = reply_error("overloaded", "engine queue full")
    assert isinstance(err, Overloaded) and err.code == "overloaded" and "engine queue full" in err.reason
    err = reply_error("unauthorized", "invalid API key")
    assert type(err) is ServerError and err.code == "unauthorized"
    assert type(reply_error("bad_request", "x")) is ServerError
    err = reply_error("teapot", "")
    assert type(err) is ServerError and err.code == "teapot"


class _FakeFuture:
    def __init__(self) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.is_done = False

    def done(self) -> bool:
        return self.is_done

    def set_result(self, value: Any) -> None:
        self.result, self.is_done = value, True

    def set_exception(self, exc: BaseException) -> None:
        self.error, self.is_done = exc, True


def _turn(stream: bool = True) -> tuple[Turn, _FakeFuture]:
    future = _FakeFuture()
    return Turn(stream, future), future  # type: ignore[arg-type]


def test_turn_assembles_a_stream() -> None:
    turn, done = _turn()
    turn.feed(1.0, encode_chunk(Chunk(seq=0, text="Hel", tokens=2)))
    turn.feed(1.5, encode_chunk(Chunk(seq=1, text="lo", tokens=1)))
    turn.feed(1.6, encode_chunk(Chunk(seq=2, final=True, finish_reason="stop", usage=Usage(3, 3))))
    assert done.is_done and done.error is None
    reply = turn.reply(0.5, 1.7)
    assert reply.text == "Hello"
    assert reply.chunk_times == [1.0, 1.5]
    assert reply.chunk_tokens == [2.0, 1.0]
    assert reply.t_first_byte == 1.0
    assert reply.usage == Usage(3, 3)
    assert reply.ttft_s() == pytest.approx(0.5)


def test_turn_reads_a_message_of_several_chunks_as_chunks_that_arrived_together() -> None:
    """A message carrying the chunks the server had ready at once (loadgen.wire.amqp): each is a chunk of its own,
    stamped with the message's arrival; the token counts add up exactly, and the old one-chunk form mixes in."""
    turn, done = _turn()
    turn.feed(1.0, encode_chunk(Chunk(seq=0, text="Hel", tokens=1)))
    turn.feed(1.5, encode_chunk(several(1, [("lo", 1), (" wor", 2), ("", 0), ("ld", 1)])))
    turn.feed(1.7, encode_chunk(several(2, [("!", 1)])))
    turn.feed(1.8, encode_chunk(Chunk(seq=3, final=True, finish_reason="stop", usage=Usage(3, 6))))
    assert done.is_done and done.error is None
    reply = turn.reply(0.5, 1.9)
    assert reply.text == "Hello world!"
    assert reply.chunk_times == [1.0, 1.5, 1.5, 1.5, 1.7]
    assert reply.chunk_tokens == [1.0, 1.0, 2.0, 1.0, 1.0]
    assert reply.output_tokens == 6.0 == reply.usage.completion_tokens  # type: ignore[union-attr]
    assert [n for _, n in reply.inter_token_samples()] == [1, 2, 1, 1]


@pytest.mark.parametrize(
    ("seqs", "words"),
    [([0, 2], "chunk 1 missing"), ([0, 1, 1], "out of order or repeated"), ([1], "chunk 0 missing")],
)
def test_turn_refuses_gaps_and_reordering(seqs: list[int], words: str) -> None:
    turn, done = _turn()
    for i, seq in enumerate(seqs):
        turn.feed(float(i), encode_chunk(Chunk(seq=seq, text="x", tokens=1)))
    assert isinstance(done.error, ProtocolError)
    assert words in done.error.reason


def test_turn_malformed_and_error_chunks() -> None:
    turn, done = _turn()
    turn.feed(1.0, b"{nope")
    assert isinstance(done.error, ProtocolError) and "malformed" in done.error.reason
    turn, done = _turn()
    turn.feed(1.0, encode_chunk(Chunk(seq=0, text="a", tokens=1)))
    turn.feed(1.1, encode_chunk(error_chunk(1, "overloaded", "busy")))
    assert isinstance(done.error, Overloaded)
    turn.feed(1.2, encode_chunk(Chunk(seq=2, final=True)))  # after the end: ignored
    assert isinstance(done.error, Overloaded)


def test_whole_reply_counts_usage_tokens() -> None:
    turn, _done = _turn(stream=False)
    turn.feed(2.0, encode_chunk(Chunk(seq=0, text="whole reply", final=True, finish_reason="stop", usage=Usage(2, 7))))
    reply = turn.reply(1.0, 2.0)
    assert reply.chunk_tokens == [7.0] and reply.output_tokens == 7.0 and reply.ttft_s() == 1.0


def test_turn_reads_the_session_signal_from_the_first_chunk_only() -> None:
    turn, _done = _turn()
    turn.feed(1.0, encode_chunk(Chunk(seq=0, text="a", tokens=1, session="new")))
    turn.feed(1.1, encode_chunk(Chunk(seq=1, final=True, finish_reason="stop")))
    assert turn.reply(0.5, 1.2).session_new is True
    turn, _done = _turn()
    turn.feed(1.0, encode_chunk(Chunk(seq=0, text="a", tokens=1)))
    turn.feed(1.1, encode_chunk(Chunk(seq=1, final=True, finish_reason="stop", session="new")))  # not the first
    assert turn.reply(0.5, 1.2).session_new is False


def test_turn_counts_the_reply_bytes_against_the_limit() -> None:
    first = encode_chunk(Chunk(seq=0, text="x" * 50, tokens=1))
    future = _FakeFuture()
    turn = Turn(True, future, len(first) + 10)  # type: ignore[arg-type]
    turn.feed(1.0, first)
    assert not future.is_done
    turn.feed(1.1, encode_chunk(Chunk(seq=1, text="x" * 50, tokens=1)))
    assert isinstance(future.error, ProtocolError)
    assert future.error.reason == (
        f"the reply ran past the reply size limit of {len(first) + 10:,} bytes (--max-reply-bytes)"
    )


IMPORT_SCRIPT = textwrap.dedent(
    """
    import json, threading
    from loadgen.transports import make_transport
    from loadgen.transports.base import TransportConfig
    from loadgen.transports.bridge import AsyncBridge
    from loadgen.transports.amqp import open_clients
    t = make_transport("amqp", TransportConfig(target="amqp://guest:guest@127.0.0.1:5672/?queue=q"))
    print(json.dumps({"bridge": AsyncBridge.current() is not None, "threads": threading.active_count(),
                      "clients": open_clients()}))
    t.close()
    """
)


def test_nothing_is_made_at_import_or_construction() -> None:
    """Locust forks its --processes workers after importing the locustfile: no loop, thread or connection may
    exist before the first turn."""
    done = subprocess.run([sys.executable, "-c", IMPORT_SCRIPT], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"bridge": False, "threads": 1, "clients": 0}


# ---------------------------------------------------------------------------------------------------------------
# against the broker


@pytest.fixture
def broker() -> None:
    require_broker()


@pytest.fixture
def transports() -> Iterator[Callable[..., AmqpTransport]]:
    made: list[AmqpTransport] = []

    def make(target: str, **kw: Any) -> AmqpTransport:
        kw.setdefault("timeout_s", 10.0)
        kw.setdefault("connect_timeout_s", 5.0)
        transport = AmqpTransport(TransportConfig(target=target, **kw))
        made.append(transport)
        return transport

    yield make
    for transport in made:
        transport.close()


def start_server(**kw: Any) -> RunningServer:
    kw.setdefault("amqp_queue", unique_queue())
    return run_in_thread(ServerConfig(rest_port=None, amqp_url=BROKER_URL, **kw))


@pytest.fixture
def server(broker: None) -> Iterator[RunningServer]:
    with start_server() as running:
        yield running


@pytest.fixture
def fixed_server(broker: None) -> Iterator[RunningServer]:
    with start_server(sim=SimEngineConfig(fixed=True, fixed_ttft_ms=50, fixed_itl_ms=10)) as running:
        yield running


@pytest.fixture
def raw(broker: None) -> Iterator[RawAmqp]:
    client = RawAmqp()
    yield client
    client.close()


@pytest.mark.amqp
def test_streamed_turn(server: RunningServer, transports: Callable[..., AmqpTransport]) -> None:
    transport = transports(server.urls["amqp"])
    reply = transport.send(ask(max_tokens=12))
    assert reply.status == "ok"
    assert reply.text.startswith("I don't have that information.")
    assert reply.usage is not None and reply.usage.completion_tokens == 12 and reply.usage.prompt_tokens > 0
    assert len(reply.chunk_times) == 12 == sum(reply.chunk_tokens)
    assert reply.chunk_times == sorted(reply.chunk_times)
    assert reply.t_sent < (reply.t_first_byte or 0) <= reply.chunk_times[0] <= reply.t_done
    assert open_clients() == 1


@pytest.mark.amqp
def test_whole_turn(server: RunningServer, transports: Callable[..., AmqpTransport]) -> None:
    transport = transports(server.urls["amqp"])
    streamed = transport.send(ask(max_tokens=10))
    whole = transport.send(ask(max_tokens=10, stream=False))
    assert whole.text == streamed.text
    assert len(whole.chunk_times) == 1 and whole.chunk_tokens == [10.0]
    assert whole.usage == streamed.usage


@pytest.mark.amqp
def test_fixed_timing_truth(
    fixed_server: RunningServer, transports: Callable[..., AmqpTransport], raw: RawAmqp
) -> None:
    """TTFT and ITL through the broker, against a server that sends the first token 50 ms after admission and
    one every 10 ms after it. ITL is the client's stamping alone: within 0.5 ms. TTFT also holds two trips
    through the broker (the request to the server, the first chunk back), each measured here on its own: TTFT
    must be within 2 ms of 50 ms plus those two trips, and never early. The best of three rounds counts: the server
    runs in this process, so a busy machine delays its timers too (a stall shows in one round; a client that adds
    time shows in all three). tests/e2e/test_contract.py holds the same bound against a bare client run beside."""
    transport = transports(fixed_server.urls["amqp"])
    transport.send(ask(max_tokens=4))  # connect and warm up
    rounds: list[tuple[float, float, float, list[float]]] = []
    for _ in range(3):
        ttfts: list[float] = []
        itls: list[float] = []
        for i in range(10):
            reply = transport.send(ask(f"Turn {i}, please answer.", max_tokens=20))
            ttfts.append((reply.ttft_s() or 0.0) * 1000)
            itls.extend(gap * 1000 for gap, _ in reply.inter_token_samples())
        transit = statistics.median(raw.transit_ms())
        ttft_p50, itl_p50 = statistics.median(ttfts), statistics.median(itls)
        print(
            f"\n[amqp fixed timing] TTFT p50 {ttft_p50:.2f} ms (want 50), ITL p50 {itl_p50:.3f} ms (want 10), "
            f"one trip through the broker p50 {transit:.2f} ms"
        )
        assert ttft_p50 >= 50.0 - 0.5, ttfts  # never early, in any round
        rounds.append((ttft_p50 - (50.0 + 2.0 + 2 * transit), ttft_p50, abs(itl_p50 - 10.0), ttfts))
        if rounds[-1][0] <= 0 and rounds[-1][2] <= 0.5:
            break
    over, ttft_p50, itl_off, ttfts = min(rounds, key=lambda r: (max(r[0], 0.0), r[2]))
    assert itl_off <= 0.5, rounds
    assert over <= 0, rounds


@pytest.mark.amqp
def test_server_history_session(server: RunningServer, transports: Callable[..., AmqpTransport]) -> None:
    transport = transports(server.urls["amqp"])
    session = f"s-{uuid.uuid4().hex[:8]}"
    transport.send(ask("My booking code is QX4821.", session_id=session, max_tokens=30))
    probe = transport.send(ask("What was my booking code again?", session_id=session, max_tokens=30))
    assert "QX4821" in probe.text
    fresh = transport.send(ask("What was my booking code again?", session_id=f"{session}-new", max_tokens=30))
    assert "QX4821" not in fresh.text


@pytest.mark.amqp
def test_client_history(server: RunningServer, transports: Callable[..., AmqpTransport]) -> None:
    transport = transports(server.urls["amqp"])
    first = transport.send(ask("My booking code is QX4821.", max_tokens=30))
    history = (
        ChatMessage("user", "My booking code is QX4821."),
        ChatMessage("assistant", first.text),
        ChatMessage("user", "What was my booking code again?"),
    )
    probe = transport.send(ChatRequest(messages=history, max_tokens=30))
    assert "QX4821" in probe.text


@pytest.mark.amqp
def test_api_key(broker: None, transports: Callable[..., AmqpTransport], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with start_server(api_key=API_KEY) as running:
        url = running.urls["amqp"]
        assert transports(url, api_key=API_KEY).send(ask()).text
        for key in ("sk-wrong-key-42", None):
            with pytest.raises(ServerError) as info:
                transports(url, api_key=key).send(ask())
            assert info.value.code == "unauthorized"
            assert "unauthorized" in info.value.reason
            assert API_KEY not in info.value.reason and "sk-wrong-key-42" not in info.value.reason
    assert API_KEY not in caplog.text and "sk-wrong-key-42" not in caplog.text
    assert "guest:guest" not in caplog.text


@pytest.mark.amqp
def test_what_goes_on_the_wire(raw: RawAmqp, transports: Callable[..., AmqpTransport]) -> None:
    """The request's properties and headers, seen by a hand-made server that answers in the wire format."""
    queue = unique_queue()
    seen: list[Any] = []

    async def handler(message: Any, reply: Callable[[bytes], Awaitable[None]]) -> None:
        seen.append(message)
        await reply(encode_chunk(Chunk(seq=0, text="hi", tokens=1)))
        await reply(encode_chunk(Chunk(seq=1, final=True, finish_reason="stop", usage=Usage(1, 1))))
        await reply(encode_chunk(Chunk(seq=2, text="late", tokens=1)))  # after the end: ignored

    raw.serve(queue, handler)
    transport = transports(f"{BROKER_URL}?queue={queue}", api_key=API_KEY, timeout_s=7.5)
    reply = transport.send(ask(model="m-1"))
    assert reply.text == "hi"
    (message,) = seen
    assert message.content_type == CONTENT_TYPE
    assert message.type == REQUEST_TYPE
    assert message.reply_to.startswith("loadgen.reply.")
    assert message.correlation_id
    assert message.expiration == pytest.approx(7.5)
    assert message.headers[AUTH_HEADER] == f"Bearer {API_KEY}"
    assert abs(message.headers[SENT_AT_HEADER] / 1000 - time.time()) < 30
    assert decode_request(message.body) == ask(model="m-1")
    # the next turn is unaffected by the late chunk of the last one
    assert transport.send(ask()).text == "hi"


@pytest.mark.amqp
@pytest.mark.parametrize(
    ("replies", "error", "words"),
    [
        ([Chunk(seq=0, text="a", tokens=1), Chunk(seq=2, final=True)], ProtocolError, "chunk 1 missing"),
        ([b"{not json"], ProtocolError, "malformed reply chunk"),
        ([error_chunk(0, "overloaded", "engine queue full")], Overloaded, "engine queue full"),
        ([error_chunk(0, "bad_request", "max_tokens must be between")], ServerError, "bad request"),
        ([Chunk(seq=0, final=True, error=ErrorBody("internal", "kaput"))], ServerError, "kaput"),
    ],
)
def test_bad_replies(
    raw: RawAmqp,
    transports: Callable[..., AmqpTransport],
    replies: list[Chunk | bytes],
    error: type[TransportError],
    words: str,
) -> None:
    queue = unique_queue()

    async def handler(message: Any, reply: Callable[[bytes], Awaitable[None]]) -> None:
        for item in replies:
            await reply(item if isinstance(item, bytes) else encode_chunk(item))

    raw.serve(queue, handler)
    with pytest.raises(error) as info:
        transports(f"{BROKER_URL}?queue={queue}").send(ask())
    assert type(info.value) is error
    assert words in info.value.reason


@pytest.mark.amqp
def test_unroutable_fails_fast(broker: None, transports: Callable[..., AmqpTransport]) -> None:
    queue = unique_queue("loadgen.nobody")
    transport = transports(f"{BROKER_URL}?queue={queue}", timeout_s=10.0)
    started = time.perf_counter()
    with pytest.raises(Unroutable) as info:
        transport.send(ask())
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, elapsed  # includes connecting; well under the 10 s timeout
    assert f"no queue named {queue!r} is bound" in info.value.reason
    assert "is the server running?" in info.value.reason
    started = time.perf_counter()
    with pytest.raises(Unroutable):
        transport.send(ask())
    assert time.perf_counter() - started < 0.5


@pytest.mark.amqp
def test_turn_timeout_before_the_first_chunk(broker: None, transports: Callable[..., AmqpTransport]) -> None:
    with start_server(sim=SimEngineConfig(fixed=True, fixed_ttft_ms=2000, fixed_itl_ms=10)) as running:
        transport = transports(running.urls["amqp"])
        transport.send(ask("warm up", max_tokens=1), timeout=10)
        started = time.perf_counter()
        with pytest.raises(TurnTimeout, match=r"timeout \(0.5s\) before the reply started"):
            transport.send(ask(), timeout=0.5)
        assert 0.45 <= time.perf_counter() - started < 1.5
        # the server notices that its client has stopped waiting and frees the engine slot
        assert wait_until(lambda: running.stats()["service"]["active"] == 0, 5.0)


@pytest.mark.amqp
def test_turn_timeout_while_streaming(broker: None, transports: Callable[..., AmqpTransport]) -> None:
    with start_server(sim=SimEngineConfig(fixed=True, fixed_ttft_ms=20, fixed_itl_ms=100)) as running:
        transport = transports(running.urls["amqp"])
        with pytest.raises(TurnTimeout, match="while streaming the reply"):
            transport.send(ask(max_tokens=30), timeout=0.5)
        # and the transport goes on working
        usage = transport.send(ask(max_tokens=2), timeout=5).usage
        assert usage is not None and usage.completion_tokens == 2


@pytest.mark.amqp
@pytest.mark.parametrize("script", ["first-chunk-then-silence", "dribble"])
def test_the_turn_ends_at_its_timeout_whatever_the_server_does(
    raw: RawAmqp, transports: Callable[..., AmqpTransport], script: str
) -> None:
    queue = unique_queue()

    async def handler(message: Any, reply: Callable[[bytes], Awaitable[None]]) -> None:
        seq = 0
        while seq < (1 if script == "first-chunk-then-silence" else 50):
            await reply(encode_chunk(Chunk(seq=seq, text="x", tokens=1)))
            seq += 1
            await asyncio.sleep(0.3)

    raw.serve(queue, handler)
    transport = transports(f"{BROKER_URL}?queue={queue}")
    started = time.perf_counter()
    with pytest.raises(TurnTimeout, match=r"timeout \(1s\) while streaming the reply"):
        transport.send(ask(), timeout=1.0)
    assert 1.0 - 0.005 <= time.perf_counter() - started < 1.5


@pytest.mark.amqp
def test_a_silent_broker_ends_the_turn_at_the_turn_timeout(transports: Callable[..., AmqpTransport]) -> None:
    """Connecting is part of the turn: a broker that accepts TCP and says nothing held the turn for the connect
    timeout (10 s here) before."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    try:
        transport = transports(
            f"amqp://guest:guest@127.0.0.1:{listener.getsockname()[1]}/?queue=q", connect_timeout_s=10
        )
        started = time.perf_counter()
        with pytest.raises(TurnTimeout, match=r"timeout \(1s\) while connecting to the broker"):
            transport.send(ask(), timeout=1.0)
        assert 1.0 - 0.005 <= time.perf_counter() - started < 1.5
    finally:
        listener.close()


@pytest.mark.amqp
def test_a_reply_past_the_size_limit_is_a_protocol_error(
    raw: RawAmqp, transports: Callable[..., AmqpTransport]
) -> None:
    queue = unique_queue()

    async def handler(message: Any, reply: Callable[[bytes], Awaitable[None]]) -> None:
        for seq in range(20):
            await reply(encode_chunk(Chunk(seq=seq, text="y" * 100, tokens=1)))
        await reply(encode_chunk(Chunk(seq=20, final=True, finish_reason="stop")))

    raw.serve(queue, handler)
    target = f"{BROKER_URL}?queue={queue}"
    assert len(transports(target, max_reply_bytes=10_000).send(ask()).text) == 2000
    with pytest.raises(ProtocolError, match=r"reply size limit of 1,000 bytes"):
        transports(target, max_reply_bytes=1000).send(ask())


@pytest.mark.amqp
def test_missing_broker_is_one_clear_connect_error(transports: Callable[..., AmqpTransport]) -> None:
    target = f"amqp://guest:Sup3rS3cret@127.0.0.1:{NO_BROKER_PORT}/?queue=q"
    transport = transports(target, connect_timeout_s=3.0)
    started = time.perf_counter()
    with pytest.raises(ConnectError) as info:
        transport.send(ask())
    assert time.perf_counter() - started < 3.5
    reason = info.value.reason
    assert f"127.0.0.1:{NO_BROKER_PORT}" in reason and "rabbitmq-server -detached" in reason
    assert "Sup3rS3cret" not in reason


@pytest.mark.amqp
def test_missing_broker_many_users_at_once(transports: Callable[..., AmqpTransport]) -> None:
    """Users starting together share one connection attempt; each gets a ConnectError of its own, and a later
    turn tries again."""
    target = f"amqp://guest:guest@127.0.0.1:{NO_BROKER_PORT}/?queue=q"
    users = [transports(target, connect_timeout_s=3.0) for _ in range(10)]
    errors: list[BaseException] = []

    def run(transport: AmqpTransport) -> None:
        try:
            transport.send(ask())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in users]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert time.perf_counter() - started < 3.5
    assert len(errors) == 10 and all(isinstance(e, ConnectError) for e in errors)
    assert len({id(e) for e in errors}) == 10
    with pytest.raises(ConnectError, match="connection refused"):
        users[0].send(ask())


@pytest.mark.amqp
def test_silent_broker_times_out_at_the_connect_timeout(transports: Callable[..., AmqpTransport]) -> None:
    """A port that accepts TCP but never speaks AMQP: the first turn fails after the connect timeout, no hang."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    port = listener.getsockname()[1]
    try:
        transport = transports(f"amqp://guest:guest@127.0.0.1:{port}/?queue=q", connect_timeout_s=1.0)
        started = time.perf_counter()
        with pytest.raises(ConnectError, match=r"connect timeout to the broker at 127.0.0.1:\d+ after 1s"):
            transport.send(ask(), timeout=30)
        assert 0.9 <= time.perf_counter() - started < 2.5
    finally:
        listener.close()


@pytest.mark.amqp
def test_wrong_password(
    broker: None, transports: Callable[..., AmqpTransport], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    transport = transports("amqp://guest:Wr0ngPa55@127.0.0.1:5672/?queue=q")
    with pytest.raises(ConnectError, match="refused the login of user 'guest'") as info:
        transport.send(ask())
    assert "Wr0ngPa55" not in info.value.reason
    assert "Wr0ngPa55" not in caplog.text


@pytest.mark.amqp
def test_many_threads_share_one_connection(server: RunningServer, transports: Callable[..., AmqpTransport]) -> None:
    users = [transports(server.urls["amqp"]) for _ in range(20)]
    texts: list[str] = []
    errors: list[BaseException] = []

    def run(transport: AmqpTransport, i: int) -> None:
        try:
            for turn in range(2):
                texts.append(transport.send(ask(f"user {i} turn {turn}", max_tokens=8)).text)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t, i)) for i, t in enumerate(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(texts) == 40
    assert open_clients() == 1
    for transport in users:
        transport.close()
    assert open_clients() == 0


@pytest.mark.amqp
def test_nothing_left_on_the_broker(broker: None, transports: Callable[..., AmqpTransport]) -> None:
    before = set(list_queues())
    queue = unique_queue()
    with start_server(amqp_queue=queue) as running:
        transport = transports(running.urls["amqp"])
        transport.send(ask())
        during = list_queues()
        assert during[queue].consumers == 1
        assert not during[queue].durable and during[queue].auto_delete
        ours = {name for name in set(during) - before if name.startswith("loadgen.reply.")}
        assert len(ours) == 1
        (reply_queue,) = ours
        assert during[reply_queue].consumers == 1 and during[reply_queue].auto_delete
        transport.close()
    after = list_queues()
    assert queue not in after
    assert reply_queue not in after


@pytest.mark.amqp
def test_amqps_through_tls(broker: None, transports: Callable[..., AmqpTransport], tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    proxy = TlsProxy(cert, key)
    try:
        with start_server() as running:
            queue = running.config.amqp_queue
            tls_url = f"amqps://guest:guest@127.0.0.1:{proxy.port}/?queue={queue}"
            with pytest.raises(ConnectError, match=r"TLS certificate of the broker at 127\.0\.0\.1:\d+ not trusted"):
                transports(tls_url).send(ask())
            assert transports(tls_url, tls_verify=False).send(ask(max_tokens=4)).usage is not None
            trusted = f"amqps://guest:guest@127.0.0.1:{proxy.port}/?queue={queue}&cafile={cert}"
            assert transports(trusted).send(ask(max_tokens=4)).usage is not None
    finally:
        proxy.stop()


@pytest.mark.amqp
def test_broker_restart_mid_run(broker: None, transports: Callable[..., AmqpTransport]) -> None:
    """The broker goes down during a turn: that turn fails with a clear reason, turns during the outage fail at
    once, and once the broker is back the connection recovers by itself and later turns succeed."""
    with start_server(sim=SimEngineConfig(fixed=True, fixed_ttft_ms=20, fixed_itl_ms=100)) as running:
        transport = transports(running.urls["amqp"], timeout_s=60.0)
        assert transport.send(ask(max_tokens=2)).text
        outcome: dict[str, Any] = {}

        def long_turn() -> None:
            try:
                outcome["reply"] = transport.send(ask(max_tokens=100))  # ~10 s of streaming
            except TransportError as exc:
                outcome["error"] = exc
                outcome["at"] = time.perf_counter()

        worker = threading.Thread(target=long_turn)
        worker.start()
        assert wait_until(lambda: running.stats()["service"]["active"] == 1, 10, 0.01), "the long turn never started"
        with broker_app_stopped() as start_again:
            stopped_at = time.perf_counter()
            worker.join(30)
            assert not worker.is_alive()
            error = outcome.get("error")
            assert isinstance(error, ConnectError), outcome
            assert "connection to broker lost" in error.reason
            assert outcome["at"] - stopped_at < 10
            started = time.perf_counter()
            with pytest.raises(ConnectError):
                transport.send(ask(max_tokens=2))
            assert time.perf_counter() - started < 2.0
            start_again()
            back_at = time.monotonic()
        recovered_at: float | None = None
        deadline = time.monotonic() + 90
        last: BaseException | None = None
        while time.monotonic() < deadline:
            try:
                transport.send(ask(max_tokens=2), timeout=10)
                recovered_at = time.monotonic()
                break
            except TransportError as exc:  # reconnecting, or the server's queue not back yet
                last = exc
                time.sleep(0.5)
        assert recovered_at is not None, f"no successful turn within 90 s of the broker's return: {last}"
        print(
            f"\n[amqp broker restart] in-flight turn failed {outcome['at'] - stopped_at:.2f} s after stop_app "
            f"returned: {error.reason!r}; first good turn {recovered_at - back_at:.2f} s after the broker was back"
        )
        for _ in range(3):
            assert transport.send(ask(max_tokens=2)).text


LOCUSTFILE = textwrap.dedent(
    """
    import time

    from locust import User, constant, task

    from loadgen.transports.amqp import AmqpTransport
    from loadgen.transports.base import TransportConfig
    from loadgen.types import ChatMessage, ChatRequest


    class AmqpChatUser(User):
        wait_time = constant(0.1)

        def on_start(self):
            self.transport = AmqpTransport(TransportConfig(target=self.host, timeout_s=10, connect_timeout_s=5))

        def on_stop(self):
            self.transport.close()

        @task
        def turn(self):
            request = ChatRequest(messages=(ChatMessage("user", "Hello there."),), max_tokens=8)
            started = time.perf_counter()
            reply, error = None, None
            try:
                reply = self.transport.send(request)
            except Exception as exc:
                error = exc
            self.environment.events.request.fire(
                request_type="amqp", name="turn", response_time=(time.perf_counter() - started) * 1000,
                response_length=len(reply.text) if reply else 0, exception=error, context={},
            )
    """
)


@pytest.mark.amqp
@pytest.mark.e2e
def test_inside_locust_process_workers(server: RunningServer, tmp_path: Path) -> None:
    """AmqpTransport in a Locust user of --processes workers (forked after importing the locustfile)."""
    locustfile = tmp_path / "amqp_locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    with socket.socket() as sock:  # a master port of its own (another run may hold Locust's default 5557)
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u", "4", "-r", "4", "-t", "4s",
         "--processes", "2", "--master-bind-port", port, "--master-port", port, "--host", server.urls["amqp"],
         "--csv", str(tmp_path / "stats"), "--only-summary", "--stop-timeout", "5"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    # --csv, not --json-file: Locust 2.47 lets a forked worker overwrite the master's JSON file at exit
    with (tmp_path / "stats_stats.csv").open(newline="") as fh:
        (turns,) = [row for row in csv.DictReader(fh) if row["Name"] == "turn"]
    assert int(turns["Request Count"]) > 20, turns
    assert int(turns["Failure Count"]) == 0, done.stderr[-3000:]
    assert "guest:guest" not in done.stderr


@pytest.mark.amqp
def test_a_broker_outage_logs_one_line_per_change_and_no_traceback(
    broker: None, transports: Callable[..., AmqpTransport], caplog: pytest.LogCaptureFixture
) -> None:
    """Before: aio-pika and aiormq logged about three lines a second while the broker was away, the first with a
    traceback. Now the transport says it lost the broker, and that it is back (after how long), and nothing else;
    turns meanwhile fail at once as ConnectError."""
    proxy = CutProxy()
    try:
        with start_server(sim=SimEngineConfig(fixed=True, fixed_ttft_ms=2, fixed_itl_ms=1)) as running:
            transport = transports(f"{proxy.url}?queue={running.config.amqp_queue}", timeout_s=2, connect_timeout_s=2)
            assert transport.send(ask(max_tokens=2)).text
            caplog.clear()
            caplog.set_level(logging.INFO)
            proxy.cut()
            failed = []
            for _ in range(10):  # three reconnection attempts
                started = time.perf_counter()
                with pytest.raises(ConnectError):
                    transport.send(ask(max_tokens=2))
                failed.append(time.perf_counter() - started)
                time.sleep(0.3)
            proxy.restore()
            assert wait_until(lambda: _succeeds(transport), 15)
            records = list(caplog.records)
    finally:
        proxy.close()
    assert max(failed) < 0.5  # at once, not at the timeout
    lines = [(r.name, r.getMessage()) for r in records]
    assert [name for name, _ in lines] == ["loadgen.transports.amqp_client"] * 2, lines
    assert lines[0][1].startswith(f"AMQP: connection to the broker at 127.0.0.1:{proxy.port} lost (")
    assert lines[1][1].startswith(f"AMQP: reconnected to the broker at 127.0.0.1:{proxy.port} after ")
    assert not any(r.exc_info for r in records)


def _succeeds(transport: AmqpTransport) -> bool:
    try:
        transport.send(ask(max_tokens=2))
    except TransportError:
        return False
    return True
