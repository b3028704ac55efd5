"""What the REST front's encoders write, the REST transport's decoders read back to the same value.

Requests (encode_request -> parse_chat_body), every chunk of a stream (ChunkEncoder -> parse_chat_chunk, and the
learned ContentChunkShape tied to the encoder's content chunk), whole completions, error bodies, and a whole
encoded stream read by the real RestTransport (its per-token hot path) through httpx's MockTransport.
"""

from __future__ import annotations

import httpx
import pytest

from loadgen.errors import Overloaded, ServerError
from loadgen.transports.base import TransportConfig
from loadgen.transports.rest import RestTransport
from loadgen.types import ChatMessage, ChatRequest, Usage
from loadgen.wire import sse
from loadgen.wire.openai import (
    CHAT_PATH,
    ChatChunk,
    ChunkEncoder,
    ContentChunkShape,
    decode_event,
    encode_completion,
    encode_error,
    encode_request,
    error_from_body,
    parse_chat_body,
    parse_chat_chunk,
    parse_chat_completion,
)
from loadgen.wire.sse import LineSplitter, SSEEvent, SSEParser
from loadgen.wire.status import Failure

TEXTS = ["Hel", "lo", " wörld", 'say "hi"', "back\\slash", "é€😀", "a\nb", "}]}", "\u0001", " ", "日本語 "]
HISTORY = (ChatMessage("system", "Be brief."), ChatMessage("user", "Hi, I'm Ada."), ChatMessage("assistant", "Hi!"))


@pytest.mark.parametrize(
    "request_",
    [
        ChatRequest((*HISTORY, ChatMessage("user", "Where to?"))),
        ChatRequest((ChatMessage("user", "Only the new one: ünï 😀"),), max_tokens=7, stream=False, session_id="s-1"),
        ChatRequest((ChatMessage("user", ""),), max_tokens=1, model="my-model"),
    ],
)
def test_a_request_reads_back_the_same(request_: ChatRequest) -> None:
    parsed, include_usage = parse_chat_body(encode_request(request_), None, default_max_tokens=99)
    assert parsed == request_
    assert include_usage is request_.stream


def test_the_model_override_is_what_the_front_reads() -> None:
    parsed, _ = parse_chat_body(encode_request(ChatRequest(HISTORY), model="other"), None, 64)
    assert parsed.model == "other"


def _encoder() -> ChunkEncoder:
    return ChunkEncoder("chatcmpl-1a", 'model "x" ü', 1_700_000_000)


@pytest.mark.parametrize("text", TEXTS)
def test_a_content_chunk_reads_back_the_same(text: str) -> None:
    assert parse_chat_chunk(_encoder().content(text).decode()) == ChatChunk(text)


@pytest.mark.parametrize("learned_from", ["Hel", "é", "日本"])
def test_the_shape_learned_from_the_encoders_chunk_reads_every_later_one(learned_from: str) -> None:
    """The tie between the front's pre-encoded pieces and the transport's shortcut: if either changes its bytes,
    the shape is no longer learned (or reads wrong) and this fails."""
    encoder = _encoder()
    raw = encoder.content(learned_from)
    shape = ContentChunkShape.learn(raw, parse_chat_chunk(raw.decode()))
    assert shape is not None, "the transport's shortcut no longer learns the front's content chunk"
    for text in TEXTS:
        assert shape.content(encoder.content(text)) == text
    for other in (encoder.role(), encoder.finish("stop"), encoder.usage(3, 4), encoder.done()):
        assert shape.content(other) is None  # anything but a content chunk goes to the full parse


def test_every_other_chunk_reads_back_the_same() -> None:
    encoder = _encoder()
    assert parse_chat_chunk(encoder.role().decode()) == ChatChunk(content="")
    assert parse_chat_chunk(encoder.finish("length").decode()) == ChatChunk(finish_reason="length")
    assert parse_chat_chunk(encoder.usage(12, 5).decode()) == ChatChunk(usage=Usage(12, 5))
    assert parse_chat_chunk(encoder.done().decode()) == ChatChunk(done=True)


def _stream(texts: list[str], usage: Usage | None) -> bytes:
    encoder = ChunkEncoder("chatcmpl-2b", "m", 1, sse.DATA_FRAME)
    pieces = [encoder.role(), *(encoder.content(t) for t in texts), encoder.finish("stop")]
    if usage is not None:
        pieces.append(encoder.usage(usage.prompt_tokens, usage.completion_tokens))
    return b"".join([*pieces, encoder.done()])


def test_a_framed_stream_reads_back_event_by_event() -> None:
    parser = SSEParser()
    chunks = []
    for line in LineSplitter().feed(_stream(TEXTS, Usage(9, len(TEXTS)))):
        event = parser.feed_line(line.decode())
        if event is not None:
            chunk = decode_event(event)
            assert chunk is not None
            chunks.append(chunk)
    assert "".join(c.content or "" for c in chunks) == "".join(TEXTS)
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert chunks[-2].usage == Usage(9, len(TEXTS)) and chunks[-1].done


@pytest.mark.parametrize("usage", [Usage(9, 22), None])
def test_the_rest_transport_reads_an_encoded_stream(usage: Usage | None) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == CHAT_PATH
        return httpx.Response(200, headers={"content-type": sse.CONTENT_TYPE}, content=_stream(TEXTS, usage))

    transport = RestTransport(TransportConfig(target="http://h:1"), transport=httpx.MockTransport(handler))
    reply = transport.send(ChatRequest(HISTORY), timeout=5)
    transport.close()
    assert reply.text == "".join(TEXTS)
    assert len(reply.chunk_times) == len([t for t in TEXTS if t])
    assert reply.usage == usage
    assert reply.output_tokens == (22 if usage else len(TEXTS))


def test_a_whole_completion_reads_back_the_same() -> None:
    body = encode_completion("chatcmpl-3c", "m", 1, "Hello, wörld 😀", "length", Usage(7, 3))
    assert parse_chat_completion(body.decode()) == ChatChunk("Hello, wörld 😀", "length", Usage(7, 3))


@pytest.mark.parametrize("failure", list(Failure), ids=lambda f: f.name)
def test_an_error_body_reads_back_as_its_rows_kind(failure: Failure) -> None:
    body = encode_error(failure, "it went wrong").decode()
    kind = Overloaded if failure is Failure.OVERLOADED else ServerError
    err = error_from_body(body, prefix="HTTP", status=None)
    assert type(err) is kind and err.reason == "HTTP: it went wrong"
    with pytest.raises(kind) as info:
        decode_event(SSEEvent(body, "error"))  # the same object in the middle of a stream
    assert type(info.value) is kind and info.value.reason == "stream error: it went wrong"
    parser = SSEParser()
    events = [parser.feed_line(line.decode()) for line in LineSplitter().feed(sse.encode_event(body, event="error"))]
    assert [e for e in events if e is not None] == [SSEEvent(body, "error")]
