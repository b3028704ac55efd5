"""The REST front against a real server on loopback: OpenAI shapes, SSE, errors, history modes, TCP_NODELAY."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from loadgen.server.app import RunningServer
from loadgen.server.config import SimEngineConfig
from loadgen.transports.base import TransportConfig
from loadgen.transports.rest import RestTransport
from loadgen.types import ChatMessage, ChatRequest
from tests.server.conftest import chat_body, fast_sim, parse_sse, read_sse

Start = Callable[..., RunningServer]
CHAT = "/v1/chat/completions"
PLANT = "My booking code is QX4821."
PROBE = "What was my booking code again?"


def post(server: RunningServer, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(server.urls["rest"] + CHAT, json=body, timeout=10, **kwargs)


def stream_events(server: RunningServer, body: dict[str, Any], **kwargs: Any) -> tuple[httpx.Response, list[Any]]:
    with httpx.stream("POST", server.urls["rest"] + CHAT, json={**body, "stream": True}, timeout=10, **kwargs) as r:
        return r, read_sse(r)


def test_streamed_reply_has_the_openai_shape(start_server: Start) -> None:
    server = start_server()
    body = chat_body(PLANT, "Noted.", PROBE, max_tokens=20, stream_options={"include_usage": True})
    response, events = stream_events(server, body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert [e.event for e in events] == ["message"] * len(events)
    assert events[-1].data == "[DONE]"
    chunks = [e.json() for e in events[:-1]]
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "test" for c in chunks)
    first, *tokens, final, usage = chunks
    assert first["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
    assert len(tokens) == 20
    assert all(c["choices"][0]["finish_reason"] is None for c in tokens)
    text = "".join(c["choices"][0]["delta"]["content"] for c in tokens)
    assert text.startswith(f'You told me: "{PLANT}". ')
    assert final["choices"] == [{"index": 0, "delta": {}, "finish_reason": "length"}]
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == 20
    assert usage["usage"]["total_tokens"] == usage["usage"]["prompt_tokens"] + 20
    # the same request, not streamed: the same (deterministic) text and usage
    whole = post(server, {**body, "stream": False}).json()
    assert whole["object"] == "chat.completion"
    assert whole["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
    ]
    assert whole["usage"] == usage["usage"]


def test_no_usage_chunk_unless_asked_and_max_completion_tokens(start_server: Start) -> None:
    server = start_server()
    _, events = stream_events(server, chat_body("hello", max_completion_tokens=3))
    chunks = [e.json() for e in events[:-1]]
    assert len(chunks) == 1 + 3 + 1
    assert all("usage" not in c for c in chunks)


def test_default_max_tokens(start_server: Start) -> None:
    server = start_server(default_max_tokens=7)
    assert post(server, chat_body("hello")).json()["usage"]["completion_tokens"] == 7


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (json.dumps({"messages": []}).encode(), "'messages' must be a non-empty list"),
        (json.dumps(chat_body("hi", max_tokens="many")).encode(), "max_tokens must be an integer"),
        (json.dumps(chat_body("hi", max_tokens=0)).encode(), "max_tokens must be between 1 and 4096"),
        (json.dumps(chat_body("hi", "there")).encode(), "last message must be a user message"),
        (json.dumps({"messages": [{"role": "user", "content": 3}]}).encode(), "messages[0].content"),
        (json.dumps(chat_body("hi", stream="yes")).encode(), "'stream' must be true or false"),
    ],
)
def test_bad_requests_get_400(start_server: Start, body: bytes, message: str) -> None:
    server = start_server()
    r = httpx.post(server.urls["rest"] + CHAT, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert message in error["message"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == 400


def test_content_parts_are_accepted(start_server: Start) -> None:
    server = start_server()
    parts = [{"type": "text", "text": "My booking code "}, {"type": "text", "text": "is QX4821."}]
    body = {"messages": [{"role": "user", "content": parts}, {"role": "user", "content": PROBE}], "max_tokens": 20}
    assert "QX4821" in post(server, body).json()["choices"][0]["message"]["content"]


def test_api_key_required(start_server: Start) -> None:
    server = start_server(api_key="sekrit-key")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic sekrit-key"}):
        r = post(server, chat_body("hi"), headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == 401
        assert "sekrit" not in r.text
    # the key is checked before the body is looked at
    assert post(server, {"messages": "nope"}).status_code == 401
    assert post(server, chat_body("hi"), headers={"Authorization": "Bearer sekrit-key"}).status_code == 200


def test_overload_gives_429_then_recovers(start_server: Start) -> None:
    server = start_server(sim=SimEngineConfig(step_base_us=20_000, max_batch=1, queue_limit=0))
    url = server.urls["rest"] + CHAT
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", url, json=chat_body("hi", max_tokens=10, stream=True)) as busy:
            assert busy.status_code == 200
            r = client.post(url, json=chat_body("hi", max_tokens=5))
            assert r.status_code == 429
            assert r.headers["retry-after"] == "1"
            assert r.json()["error"]["code"] == 429
            r = client.post(url, json=chat_body("hi", max_tokens=5, stream=True))
            assert r.status_code == 429
            busy.read()
        assert client.post(url, json=chat_body("hi", max_tokens=5)).status_code == 200
    assert server.stats()["service"]["overloaded"] == 2


def test_client_going_away_frees_the_engine_slot(start_server: Start) -> None:
    server = start_server(sim=SimEngineConfig(step_base_us=5_000, max_batch=1, queue_limit=0))
    url = server.urls["rest"] + CHAT
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", url, json=chat_body("hi", max_tokens=2000, stream=True)) as r:
            lines = r.iter_lines()
            assert next(lines).startswith("data: ")
        # the client closed the connection mid-stream: the server notices and the slot frees at once
        deadline = time.monotonic() + 5
        while server.stats()["engine"]["running"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client.post(url, json=chat_body("hi", max_tokens=3)).status_code == 200
    stats = server.stats()
    assert stats["service"]["cancelled"] == 1
    assert stats["engine"]["tokens_out"] < 500


def test_engine_failure_mid_stream_is_an_error_event(start_server: Start) -> None:
    server = start_server(sim=SimEngineConfig(step_base_us=20_000))
    assert server.service is not None
    engine = server.service.engine
    with httpx.stream("POST", server.urls["rest"] + CHAT, json=chat_body("hi", max_tokens=50, stream=True)) as r:
        lines = r.iter_lines()
        next(lines)
        server.call(engine.stop())
        events = parse_sse(lines)
    assert events[-1].event == "error"
    error = events[-1].json()["error"]
    assert error["code"] == 500
    assert "stopped" in error["message"]


def test_server_history_mode_and_eviction(start_server: Start) -> None:
    server = start_server(session_capacity=2)

    def turn(session: str, text: str, *, header: bool = False) -> str:
        body = chat_body(text, max_tokens=40)
        headers = {}
        if header:
            headers["X-Session-Id"] = session
        else:
            body["session_id"] = session
        r = post(server, body, headers=headers)
        assert r.status_code == 200, r.text
        content: str = r.json()["choices"][0]["message"]["content"]
        return content

    turn("alice", PLANT)
    turn("alice", "Anything to see near the airport?", header=True)
    assert "QX4821" in turn("alice", PROBE, header=True)
    turn("bob", "Hello.")
    turn("carol", "Hello.")  # alice is the least recently used of three: evicted
    assert "QX4821" not in turn("alice", PROBE)
    stats = httpx.get(server.urls["rest"] + "/stats").json()
    assert stats["sessions"]["evictions"] >= 1
    assert stats["sessions"]["capacity"] == 2


def test_context_window_truncation_makes_a_probe_fail(start_server: Start) -> None:
    chatter = [c for i in range(12) for c in (f"Tell me about museum number {i} please.", "It is nice.")]
    body = chat_body(PLANT, "Noted.", *chatter, PROBE, max_tokens=32)
    wide = start_server(context_window=4096)
    assert "QX4821" in post(wide, body).json()["choices"][0]["message"]["content"]
    narrow = start_server(context_window=150)
    r = post(narrow, body)
    assert "QX4821" not in r.json()["choices"][0]["message"]["content"]
    assert r.json()["usage"]["prompt_tokens"] + 32 <= 150


def test_every_accepted_socket_has_tcp_nodelay(start_server: Start) -> None:
    server = start_server()
    with httpx.Client() as a, httpx.Client() as b:
        for client in (a, b, a, b):
            assert client.post(server.urls["rest"] + CHAT, json=chat_body("hi", max_tokens=2)).status_code == 200
    # a raw connection too (not only httpx's)
    host, port = server.urls["rest"].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b"200 OK" in sock.recv(4096)
    rest = httpx.get(server.urls["rest"] + "/stats").json()["rest"]
    assert rest["connections"] == 4  # two clients, the raw socket, this one
    # the server read TCP_NODELAY back on each accepted socket (set by asyncio already, or by the front)
    assert rest["nodelay_already"] + rest["nodelay_set"] == rest["connections"]


def test_health_models_stats(start_server: Start) -> None:
    server = start_server()
    base = server.urls["rest"]
    assert httpx.get(base + "/health").json() == {"status": "ok", "engine": "sim"}
    models = httpx.get(base + "/v1/models").json()
    assert models["object"] == "list"
    assert models["data"][0]["id"] == "loadgen-sim"
    post(server, chat_body("hi", max_tokens=4))
    stats = httpx.get(base + "/stats").json()
    assert set(stats) >= {"service", "sessions", "engine", "rest"}
    assert stats["service"]["completed"] == 1
    assert stats["engine"]["tokens_out"] == 4
    assert httpx.get(base + "/nope").status_code == 404


def test_batching_shows_under_concurrent_load(start_server: Start) -> None:
    import asyncio

    server = start_server(sim=fast_sim(step_base_us=2000, step_per_seq_us=100))

    async def load() -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            bodies = [chat_body(f"hello {i}", max_tokens=20, stream=True) for i in range(24)]
            rs = await asyncio.gather(*(client.post(server.urls["rest"] + CHAT, json=b) for b in bodies))
            assert all(r.status_code == 200 and r.text.endswith("data: [DONE]\n\n") for r in rs)

    asyncio.run(load())
    engine = server.stats()["engine"]
    assert engine["max_batch_seen"] > 1
    assert engine["steps"] < 24 * 20


def test_our_own_rest_transport_reads_it(start_server: Start) -> None:
    server = start_server(sim=SimEngineConfig(fixed=True, fixed_ttft_ms=30, fixed_itl_ms=5))
    transport = RestTransport(TransportConfig(server.urls["rest"]))
    try:
        messages = (ChatMessage("user", PLANT), ChatMessage("assistant", "ok"), ChatMessage("user", PROBE))
        reply = transport.send(ChatRequest(messages, max_tokens=20, stream=True))
        assert "QX4821" in reply.text
        assert reply.usage is not None and reply.usage.completion_tokens == 20
        assert len(reply.chunk_times) == 20
        ttft = reply.ttft_s()
        assert ttft is not None and 0.029 <= ttft < 0.2
        whole = transport.send(ChatRequest(messages, max_tokens=20, stream=False))
        assert whole.text == reply.text
    finally:
        transport.close()
