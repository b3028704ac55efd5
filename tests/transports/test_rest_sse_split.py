"""The REST transport reading an event stream cut across HTTP chunks at every byte: a real server on 127.0.0.1
sends the stream's first part in one chunk and the rest, a few milliseconds later, in the next, for every
split point; the reply is the same whole reply every time, and a token is timed when its data line is complete
(never when only part of it came)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from loadgen.transports.base import TransportConfig
from loadgen.transports.rest import RestTransport
from loadgen.types import ChatMessage, ChatRequest, Usage
from tests.transports.test_rest import END, head, piece

#: How long the server waits between the two parts: the first part is on the client's side before the rest.
GAP_S = 0.004
EARLY_S = 0.001


def _event(payload: dict[str, Any] | str, newline: str, *, lines: int = 1) -> str:
    """One event; with ``lines=2`` its JSON is sent as two ``data:`` lines (the reader joins them with a
    newline, which JSON reads as white space): a line end read twice would cut the event in two."""
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    if lines == 2:
        half = data.index(",") + 1
        return f"data: {data[:half]}{newline}data: {data[half:]}{newline}{newline}"
    return f"data: {data}{newline}{newline}"


def _delta(content: str | None = None, finish: str | None = None) -> dict[str, Any]:
    d = {} if content is None else {"content": content}
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}


def _body(newline: str) -> bytes:
    """A whole stream: two tokens (one with a character of two bytes, one in two data lines), finish, usage,
    [DONE]."""
    usage = {"object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2}}
    return "".join(
        [
            _event(_delta("Héllo"), newline),
            _event(_delta(" world"), newline, lines=2),
            _event(_delta(finish="stop"), newline),
            _event(usage, newline),
            _event("[DONE]", newline),
        ]
    ).encode()


@pytest.fixture(scope="module")
def transport() -> Iterator[Callable[[str], RestTransport]]:
    made: list[RestTransport] = []

    def make(target: str) -> RestTransport:
        made.append(RestTransport(TransportConfig(target=target, timeout_s=10)))
        return made[-1]

    yield make
    for t in made:
        t.close()


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_a_stream_split_in_two_at_every_byte_reads_the_same(
    http_server: Any, transport: Callable[[str], RestTransport], newline: str
) -> None:
    body = _body(newline)
    # the first token's data line is complete with the first byte of its end (a lone \r ends a line too)
    first_line_end = body.index(newline.encode()) + 1
    for cut in range(1, len(body)):
        target = http_server.route([head(), piece(body[:cut]), GAP_S, piece(body[cut:]), END])
        request = ChatRequest(messages=(ChatMessage("user", "hi"),), max_tokens=8)
        reply = transport(target).send(request, timeout=10)
        where = f"cut at byte {cut} of {len(body)}: {body[:cut][-12:]!r} | {body[cut:][:12]!r}"
        assert reply.text == "Héllo world", where
        assert reply.status == "ok", where
        assert reply.usage == Usage(prompt_tokens=4, completion_tokens=2), where
        assert reply.chunk_tokens == [1.0, 1.0], where
        ttft = reply.ttft_s()
        assert ttft is not None, where
        if cut < first_line_end:  # the first token's line was cut: it is timed when its line is complete
            assert ttft >= GAP_S - EARLY_S, where


def test_a_stream_sent_a_byte_at_a_time(http_server: Any, transport: Callable[[str], RestTransport]) -> None:
    """Every split point at once: each byte in an HTTP chunk of its own."""
    body = _body("\n")
    steps: list[bytes | float] = [head()]
    for i in range(len(body)):
        steps += [piece(body[i : i + 1]), 0.0005] if i % 16 == 0 else [piece(body[i : i + 1])]
    target = http_server.route([*steps, END])
    reply = transport(target).send(ChatRequest(messages=(ChatMessage("user", "hi"),), max_tokens=8), timeout=10)
    assert reply.text == "Héllo world"
    assert reply.usage == Usage(prompt_tokens=4, completion_tokens=2)
    assert reply.chunk_tokens == [1.0, 1.0]
