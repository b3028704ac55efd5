"""The reference server's AMQP front against the real broker: queue, QoS, replies, errors, expiry, stopping.

Requests are published by hand (tests.amqp_broker.RawAmqp) so that every property can be set or left out; the
client transport's own tests are in tests/transports/test_amqp.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from loadgen.server.amqp_front import AmqpFrontError, bearer_key
from loadgen.server.app import RunningServer, run_in_thread
from loadgen.server.config import ServerConfig, SimEngineConfig
from loadgen.server.engines.base import EngineOverloaded, TokenChunk
from loadgen.types import ChatMessage, ChatRequest
from loadgen.wire.amqp import (
    AUTH_HEADER,
    CHUNK_TYPE,
    CONTENT_TYPE,
    SENT_AT_HEADER,
    decode_chunk,
    encode_request,
    split_target,
)
from tests.amqp_broker import (
    BROKER_URL,
    NO_BROKER_PORT,
    RawAmqp,
    list_queues,
    require_broker,
    unique_queue,
    wait_until,
)
from tests.broker_proxy import CutProxy

pytestmark = pytest.mark.amqp


def request_body(text: str = "Hello, my name is Ada.", **kw: Any) -> bytes:
    kw.setdefault("max_tokens", 8)
    return encode_request(ChatRequest(messages=(ChatMessage("user", text),), **kw))


def start(**kw: Any) -> RunningServer:
    kw.setdefault("amqp_queue", unique_queue())
    kw.setdefault("amqp_url", BROKER_URL)
    return run_in_thread(ServerConfig(rest_port=None, **kw))


@pytest.fixture
def raw() -> Iterator[RawAmqp]:
    require_broker()
    client = RawAmqp()
    yield client
    client.close()


class Asker:
    """Publishes requests to a server's queue and collects the replies on an exclusive queue of its own."""

    def __init__(self, raw: RawAmqp, queue: str) -> None:
        self.raw = raw
        self.queue = queue
        self.reply_to, self._collect = raw.reply_queue()

    def send(self, body: bytes, correlation_id: str | None = None, **properties: Any) -> str:
        correlation_id = correlation_id or uuid.uuid4().hex
        properties.setdefault("reply_to", self.reply_to)
        properties.setdefault("headers", {SENT_AT_HEADER: int(time.time() * 1000)})
        properties.setdefault("expiration", 30)
        self.raw.publish(self.queue, body, correlation_id=correlation_id, content_type=CONTENT_TYPE, **properties)
        return correlation_id

    def replies(self, correlation_id: str, *, wait: float = 5.0) -> list[Any]:
        """The reply messages for one request, once its final one came (or after ``wait``)."""
        deadline = time.monotonic() + wait
        while True:
            got = [m for m in self._collect(0.02) if m.correlation_id == correlation_id]
            if any(decode_chunk(m.body).final for m in got) or time.monotonic() > deadline:
                return got


def chunks(messages: list[Any]) -> list[Any]:
    return [decode_chunk(m.body) for m in messages]


def test_start_returns_the_url_with_credentials_and_logs_none(raw: RawAmqp, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    queue = unique_queue()
    with start(amqp_queue=queue, amqp_url=f"{BROKER_URL}?heartbeat=30") as server:
        url = server.urls["amqp"]
        assert url.startswith("amqp://guest:guest@127.0.0.1:5672/?")
        assert split_target(url) == (f"{BROKER_URL}?heartbeat=30", queue)
        info = list_queues()[queue]
        assert info.consumers == 1 and not info.durable and info.auto_delete
    assert queue not in list_queues()
    assert "guest:guest" not in caplog.text
    assert "guest:***" in caplog.text


def test_streamed_and_whole_replies(raw: RawAmqp) -> None:
    with start(amqp_coalesce="off") as server:
        asker = Asker(raw, server.config.amqp_queue)
        cid = asker.send(request_body(max_tokens=6))
        messages = asker.replies(cid)
        got = chunks(messages)
        assert [c.seq for c in got] == list(range(7))
        assert all(m.type == CHUNK_TYPE and m.content_type == CONTENT_TYPE for m in messages)
        *tokens, final = got
        assert all(c.text and c.tokens == 1 and not c.final for c in tokens)
        assert final.final and final.text == "" and final.finish_reason in ("stop", "length")
        assert final.usage is not None and final.usage.completion_tokens == 6
        cid = asker.send(request_body(max_tokens=6, stream=False))
        (whole,) = chunks(asker.replies(cid))
        assert whole.final and whole.seq == 0 and whole.text == "".join(c.text for c in tokens)
        assert whole.tokens == 6 and whole.usage == final.usage


class Bursts:
    """A reply stream of two bursts: ``first`` chunks ready at once, a pause, then ``second`` chunks ready at once."""

    prompt_tokens, finish_reason = 3, "stop"
    session_new = False

    def __init__(self, first: list[str], second: list[str], pause_s: float = 0.05) -> None:
        self.first, self.second, self.pause_s = first, second, pause_s
        self.completion_tokens = len(first) + len(second)

    def __aiter__(self) -> AsyncIterator[TokenChunk]:
        return self.gen()

    async def gen(self) -> AsyncIterator[TokenChunk]:
        for text in self.first:
            yield TokenChunk(text)
        await asyncio.sleep(self.pause_s)
        for text in self.second:
            yield TokenChunk(text)

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize(("coalesce", "sizes"), [("ready", [3, 2]), ("off", [1, 1, 1, 1, 1])])
def test_chunks_ready_at_once_share_a_message(raw: RawAmqp, coalesce: str, sizes: list[int]) -> None:
    """``--amqp-coalesce ready``: the chunks the engine had ready at the same moment go in one message, and the
    first chunk after the pause (which had to be waited for) is not held back: it goes with the one ready beside it
    only; every chunk and token arrives, in order. ``off``: one message per chunk."""
    with start(amqp_coalesce=coalesce) as server:
        service = server.service
        assert service is not None
        asker = Asker(raw, server.config.amqp_queue)

        async def bursts(request: ChatRequest, **_: Any) -> Any:
            return Bursts(["Hel", "lo", " wor"], ["ld", "!"])

        service.chat = bursts  # type: ignore[method-assign]
        *messages, final = chunks(asker.replies(asker.send(request_body())))
        assert [len(m.parts) or 1 for m in messages] == sizes
        assert [m.seq for m in [*messages, final]] == list(range(len(sizes) + 1))
        assert "".join(m.text for m in messages) == "Hello world!"
        assert sum(m.tokens for m in messages) == 5 == final.usage.completion_tokens  # type: ignore[union-attr]
        assert [p for m in messages for p in (m.parts or ((m.text, m.tokens),))] == [
            ("Hel", 1), ("lo", 1), (" wor", 1), ("ld", 1), ("!", 1)
        ]  # fmt: skip


def test_a_paced_stream_stays_one_message_per_token(raw: RawAmqp) -> None:
    """Tokens 20 ms apart: each had to be waited for, so each goes alone, as soon as it was produced."""
    with start(sim=SimEngineConfig(fixed=True, fixed_ttft_ms=20, fixed_itl_ms=20)) as server:
        assert server.config.amqp_coalesce == "ready"
        asker = Asker(raw, server.config.amqp_queue)
        *tokens, final = chunks(asker.replies(asker.send(request_body(max_tokens=8))))
        assert len(tokens) == 8 and all(not c.parts and c.tokens == 1 for c in tokens)
        assert final.usage is not None and final.usage.completion_tokens == 8


def test_a_burst_from_the_engine_keeps_every_token(raw: RawAmqp) -> None:
    """A zero-cost engine produces faster than the front publishes: fewer messages than tokens, none lost."""
    zero = SimEngineConfig(step_base_us=0, step_per_seq_us=0, prefill_us_per_token=0)
    with start(sim=zero) as server, start(sim=zero, amqp_coalesce="off") as plain:
        replies = []
        for running in (server, plain):
            asker = Asker(raw, running.config.amqp_queue)
            replies.append(chunks(asker.replies(asker.send(request_body("Tell me a story.", max_tokens=64)))))
        coalesced, one_each = replies
        assert len(one_each) == 65
        assert "".join(c.text for c in coalesced) == "".join(c.text for c in one_each)
        assert sum(c.tokens for c in coalesced[:-1]) == 64 == coalesced[-1].usage.completion_tokens  # type: ignore[union-attr]
        assert [c.seq for c in coalesced] == list(range(len(coalesced)))
        assert len(coalesced) < 65


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        (b"{not json", "bad_request", "not JSON"),
        (b'{"messages":[{"role":"robot","content":"x"}]}', "bad_request", "role"),
        (b'{"messages":[{"role":"user","content":"x"}],"max_tokens":99999}', "bad_request", "max_tokens"),
    ],
)
def test_bad_requests_get_an_error_reply_and_are_acked(raw: RawAmqp, body: bytes, code: str, words: str) -> None:
    with start() as server:
        queue = server.config.amqp_queue
        asker = Asker(raw, queue)
        cid = asker.send(body)
        (reply,) = chunks(asker.replies(cid))
        assert reply.final and reply.error is not None
        assert reply.error.code == code and words in reply.error.message
        assert wait_until(lambda: (lambda q: q.ready == 0 and q.unacked == 0)(list_queues()[queue]), 10)
        # and the front goes on serving
        assert chunks(asker.replies(asker.send(request_body())))[-1].usage is not None


def test_api_key(raw: RawAmqp) -> None:
    with start(api_key="sk-front-key") as server:
        asker = Asker(raw, server.config.amqp_queue)
        (missing,) = chunks(asker.replies(asker.send(request_body())))
        assert missing.error is not None and missing.error.code == "unauthorized"
        wrong = {SENT_AT_HEADER: int(time.time() * 1000), AUTH_HEADER: "Bearer nope"}
        (bad,) = chunks(asker.replies(asker.send(request_body(), headers=wrong)))
        assert bad.error is not None and bad.error.code == "unauthorized"
        right = {SENT_AT_HEADER: int(time.time() * 1000), AUTH_HEADER: "Bearer sk-front-key"}
        assert chunks(asker.replies(asker.send(request_body(), headers=right)))[-1].usage is not None


def test_bearer_key() -> None:
    assert bearer_key({AUTH_HEADER: "Bearer k1"}) == "k1"
    assert bearer_key({AUTH_HEADER: b"bearer k2"}) == "k2"
    assert bearer_key({AUTH_HEADER: "raw-key"}) is None  # a bare key is no key: one rule on every front
    assert bearer_key({}) is None and bearer_key(None) is None and bearer_key({AUTH_HEADER: 5}) is None


def test_overloaded_and_mid_stream_failures(raw: RawAmqp) -> None:
    with start() as server:
        service = server.service
        assert service is not None
        asker = Asker(raw, server.config.amqp_queue)
        real_chat = service.chat

        async def overloaded(
            request: ChatRequest, *, api_key: str | None = None, received_at: float = 0, **_: Any
        ) -> Any:
            raise EngineOverloaded("engine queue full: 9 waiting")

        service.chat = overloaded  # type: ignore[method-assign]
        (reply,) = chunks(asker.replies(asker.send(request_body())))
        assert reply.error is not None and reply.error.code == "overloaded" and "queue full" in reply.error.message

        class Breaking:
            prompt_tokens, completion_tokens, finish_reason = 3, 1, "stop"
            closed = session_new = False

            def __aiter__(self) -> AsyncIterator[TokenChunk]:
                return self.gen()

            async def gen(self) -> AsyncIterator[TokenChunk]:
                yield TokenChunk("Hel")
                raise RuntimeError("the engine fell over")

            async def aclose(self) -> None:
                Breaking.closed = True

        async def breaking(
            request: ChatRequest, *, api_key: str | None = None, received_at: float = 0, **_: Any
        ) -> Any:
            return Breaking()

        service.chat = breaking  # type: ignore[method-assign]
        first, failure = chunks(asker.replies(asker.send(request_body())))
        assert first.text == "Hel" and first.seq == 0
        assert failure.seq == 1 and failure.error is not None and failure.error.code == "internal"
        assert "the engine fell over" in failure.error.message
        assert Breaking.closed
        service.chat = real_chat  # type: ignore[method-assign]


def test_expired_requests_are_skipped(raw: RawAmqp) -> None:
    with start() as server:
        asker = Asker(raw, server.config.amqp_queue)
        before = server.stats()["service"]["requests"]
        old = {SENT_AT_HEADER: int((time.time() - 10) * 1000)}
        cid = asker.send(request_body(), headers=old, expiration=5)
        assert asker.replies(cid, wait=0.5) == []
        fresh = asker.send(request_body())  # sent after, answered: so the expired one was seen and dropped
        assert chunks(asker.replies(fresh))[-1].usage is not None
        assert server.stats()["service"]["requests"] == before + 1


def test_a_stream_stops_when_its_client_gave_up(raw: RawAmqp) -> None:
    with start(sim=SimEngineConfig(fixed=True, fixed_ttft_ms=20, fixed_itl_ms=50)) as server:
        asker = Asker(raw, server.config.amqp_queue)
        cid = asker.send(request_body(max_tokens=40), expiration=0.4)  # ~2 s of tokens, client waits 0.4 s
        assert wait_until(lambda: server.stats()["service"]["cancelled"] == 1, 10), server.stats()["service"]
        assert server.stats()["service"]["active"] == 0
        got = chunks(asker.replies(cid, wait=0.1))
        assert 0 < len(got) < 20 and not any(c.final for c in got)


def test_request_without_reply_to_is_dropped(raw: RawAmqp) -> None:
    with start() as server:
        queue = server.config.amqp_queue
        raw.publish(queue, request_body(), correlation_id="x")
        assert wait_until(lambda: (lambda q: q.ready == 0 and q.unacked == 0)(list_queues()[queue]), 10)
        assert server.stats()["service"]["requests"] == 0


def test_prefetch_bounds_the_requests_in_the_server(raw: RawAmqp) -> None:
    """QoS prefetch 2 with a 1 s time to first token: five requests are served two at a time (three rounds),
    the others wait in the queue (counted by a passive declare: rabbitmqctl can take longer than a round)."""
    with start(amqp_prefetch=2, sim=SimEngineConfig(fixed=True, fixed_ttft_ms=1000, fixed_itl_ms=10)) as server:
        queue = server.config.amqp_queue
        asker = Asker(raw, queue)
        started = time.monotonic()
        ids = [asker.send(request_body(max_tokens=2)) for _ in range(5)]
        most = 0
        while time.monotonic() - started < 0.8:
            most = max(most, server.stats()["service"]["active"])
            time.sleep(0.02)
        assert most == 2
        waiting = raw.declare(queue, passive=True).declaration_result.message_count
        assert time.monotonic() - started < 1.0, "counted after the first round: too late to tell"
        assert waiting == 3
        for cid in ids:
            assert chunks(asker.replies(cid, wait=15))[-1].usage is not None
        assert time.monotonic() - started >= 2.9  # three rounds of ~1 s; with room for all, ~1 s in all


def test_an_existing_queue_is_used_and_left_alone(raw: RawAmqp) -> None:
    queue = unique_queue()
    raw.declare(queue, durable=True)  # someone else's, with other arguments
    try:
        with start(amqp_queue=queue):
            asker = Asker(raw, queue)
            assert chunks(asker.replies(asker.send(request_body())))[-1].usage is not None
            assert list_queues()[queue].durable
        info = list_queues().get(queue)
        assert info is not None and info.consumers == 0  # still there: not the front's to delete
    finally:
        raw.delete(queue)


def test_two_servers_share_a_queue(raw: RawAmqp) -> None:
    queue = unique_queue()
    first = start(amqp_queue=queue)
    try:
        with start(amqp_queue=queue) as second:
            assert list_queues()[queue].consumers == 2
            asker = Asker(raw, queue)
            ids = [asker.send(request_body()) for _ in range(10)]
            for cid in ids:
                assert chunks(asker.replies(cid))[-1].usage is not None
            first.stop()
            assert list_queues()[queue].consumers == 1  # the other server's queue stays
            assert chunks(asker.replies(asker.send(request_body())))[-1].usage is not None
            served = second.stats()["service"]["requests"]
            assert 1 <= served <= 10
    finally:
        first.stop()
    assert queue not in list_queues()


def test_stop_with_requests_in_flight(raw: RawAmqp) -> None:
    server = start(sim=SimEngineConfig(fixed=True, fixed_ttft_ms=10_000, fixed_itl_ms=10))
    queue = server.config.amqp_queue
    asker = Asker(raw, queue)
    asker.send(request_body())
    assert wait_until(lambda: server.stats()["service"]["active"] == 1, 5)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 8
    assert not server.running
    assert queue not in list_queues()


def test_broker_down_at_start_is_a_clear_error() -> None:
    config = ServerConfig(
        rest_port=None, amqp_url=f"amqp://guest:Sup3rS3cret@127.0.0.1:{NO_BROKER_PORT}/", amqp_queue="q"
    )
    started = time.monotonic()
    with pytest.raises(AmqpFrontError) as info:
        run_in_thread(config)
    assert time.monotonic() - started < 12
    message = str(info.value)
    assert f"connection refused to the broker at 127.0.0.1:{NO_BROKER_PORT}" in message
    assert "Sup3rS3cret" not in message


def test_wire_request_example_in_the_docs_is_accepted(raw: RawAmqp) -> None:
    body = json.dumps(
        {
            "v": 1,
            "model": "loadgen-sim",
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 4,
            "stream": True,
            "session_id": None,
        }
    ).encode()
    with start() as server:
        asker = Asker(raw, server.config.amqp_queue)
        assert chunks(asker.replies(asker.send(body)))[-1].usage is not None


def test_a_broker_outage_logs_one_line_per_change_and_no_traceback(
    raw: RawAmqp, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: aio-pika and aiormq logged about three lines a second while the broker was away, the first with a
    traceback. Now the front says it lost the broker, and that it is back (after how long), and nothing else."""
    proxy = CutProxy()
    try:
        with start(amqp_url=proxy.url, sim=SimEngineConfig(fixed=True, fixed_ttft_ms=2, fixed_itl_ms=1)) as server:
            asker = Asker(raw, server.config.amqp_queue)
            assert chunks(asker.replies(asker.send(request_body())))[-1].usage is not None
            caplog.clear()
            caplog.set_level(logging.INFO)
            proxy.cut()
            time.sleep(3.0)  # three reconnection attempts
            proxy.restore()

            def answered() -> bool:
                got = chunks(asker.replies(asker.send(request_body()), wait=1.0))
                return bool(got) and got[-1].usage is not None

            assert wait_until(answered, 15)
            records = list(caplog.records)
    finally:
        proxy.close()
    lines = [(r.name, r.levelname, r.getMessage()) for r in records]
    assert [name for name, _, _ in lines] == ["loadgen.server.amqp_front"] * 2, lines
    assert lines[0][2].startswith(f"AMQP front: connection to the broker at 127.0.0.1:{proxy.port} lost (")
    assert lines[0][2].endswith("); reconnecting every 0.5 s")
    assert lines[1][2].startswith(f"AMQP front: reconnected to the broker at 127.0.0.1:{proxy.port} after ")
    assert not any(r.exc_info for r in records)
