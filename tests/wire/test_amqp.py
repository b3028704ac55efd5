"""The AMQP wire format (loadgen.wire.amqp): what one side encodes, the other decodes to the same value; the URL
helpers both sides use."""

from __future__ import annotations

import json

import pytest

from loadgen.errors import WireError
from loadgen.transports.amqp import reply_error
from loadgen.types import ChatMessage, ChatRequest, Usage
from loadgen.wire.amqp import (
    AUTH_HEADER,
    DEFAULT_QUEUE,
    ERROR_CODES,
    Chunk,
    ErrorBody,
    broker_user,
    broker_where,
    decode_chunk,
    decode_request,
    encode_chunk,
    encode_request,
    error_chunk,
    failure_chunk,
    several,
    split_target,
    with_queue,
    with_reconnect_interval,
)
from loadgen.wire.status import STATUS, Failure


def test_request_round_trip() -> None:
    request = ChatRequest(
        messages=(ChatMessage("system", "Be brief."), ChatMessage("user", "Grüße 👋")),
        max_tokens=12,
        stream=False,
        model="m1",
        session_id="s-1",
    )
    body = encode_request(request)
    assert json.loads(body)["v"] == 1
    assert decode_request(body) == request
    assert decode_request(encode_request(request, model="other")).model == "other"
    zero = decode_request(b'{"messages":[{"role":"user","content":"x"}],"max_tokens":0}', default_max_tokens=33)
    assert zero.max_tokens == 33 and zero.stream is True and zero.session_id is None


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"not json", "not JSON"),
        (b"[]", "JSON object"),
        (b'{"messages":[]}', "non-empty list"),
        (b'{"messages":[{"role":"user"}]}', "content"),
        (b'{"messages":[{"role":"user","content":"x"}],"max_tokens":-1}', "max_tokens"),
        (b'{"messages":[{"role":"user","content":"x"}],"stream":"yes"}', "stream"),
        (b'{"messages":[{"role":"user","content":"x"}],"session_id":5}', "session_id"),
        (b'{"v":2,"messages":[{"role":"user","content":"x"}]}', "version"),
    ],
)
def test_bad_requests_say_what_is_wrong(body: bytes, words: str) -> None:
    with pytest.raises(WireError, match=words):
        decode_request(body)


def test_chunk_round_trip() -> None:
    chunks = [
        Chunk(seq=0, text="Hel", tokens=1),
        Chunk(seq=3, final=True, finish_reason="stop", usage=Usage(4, 3)),
        Chunk(seq=0, text="whole", tokens=5, final=True, finish_reason="length", usage=Usage(1, 5)),
        error_chunk(2, "overloaded", "queue full"),
    ]
    for chunk in chunks:
        assert decode_chunk(encode_chunk(chunk)) == chunk
    assert decode_chunk(b'{"seq":1,"error":{"code":"x","message":"y"}}').final  # an error always ends it
    with pytest.raises(WireError, match="seq"):
        decode_chunk(b'{"text":"x"}')


def test_a_message_of_several_chunks() -> None:
    """Chunks ready at the same moment travel in one message: ``text`` and ``tokens`` as lists, read back as the
    same chunks (exact counts); one chunk keeps the old form, which still reads as before."""
    parts = [("Grüße", 1), (" wor", 2), ("", 0), ("ld", 1)]
    message = several(4, parts)
    body = encode_chunk(message)
    assert json.loads(body) == {"seq": 4, "text": ["Grüße", " wor", "", "ld"], "tokens": [1, 2, 0, 1], "final": False}
    back = decode_chunk(body)
    assert back == message
    assert back.parts == tuple(parts) and back.text == "Grüße world" and back.tokens == 4 and not back.final
    one = several(0, [("Hel", 1)])
    assert one == Chunk(seq=0, text="Hel", tokens=1) and not one.parts
    assert json.loads(encode_chunk(one)) == {"seq": 0, "text": "Hel", "tokens": 1, "final": False}
    assert decode_chunk(b'{"seq":0,"text":"Hel","tokens":1,"final":false}') == one  # the old form


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"seq":0,"text":[],"tokens":[]}', "non-empty list of strings"),
        (b'{"seq":0,"text":["a",1],"tokens":[1,1]}', "non-empty list of strings"),
        (b'{"seq":0,"text":["a","b"],"tokens":2}', "list of 2 counts"),
        (b'{"seq":0,"text":["a","b"],"tokens":[1]}', "list of 2 counts"),
        (b'{"seq":0,"text":["a"],"tokens":[-1]}', "non-negative integers"),
        (b'{"seq":0,"text":["a"],"tokens":[true]}', "non-negative integers"),
        (b'{"seq":0,"text":["a"],"tokens":[1.5]}', "non-negative integers"),
        (b'{"seq":0,"text":{"a":1}}', "must be a string"),
        (b'{"seq":0,"text":"a","tokens":[1]}', "non-negative integer"),
    ],
)
def test_bad_messages_of_several_chunks(body: bytes, words: str) -> None:
    with pytest.raises(WireError, match=words):
        decode_chunk(body)


def test_url_helpers() -> None:
    assert split_target("amqp://h/?queue=q&x=1") == ("amqp://h/?x=1", "q")
    assert split_target("amqp://h/") == ("amqp://h/", DEFAULT_QUEUE)
    assert with_queue("amqp://u:p@h:1/v?queue=old&x=1", "new") == "amqp://u:p@h:1/v?x=1&queue=new"
    with pytest.raises(WireError):
        with_queue("amqp://h/", "q" * 256)


@pytest.mark.parametrize("failure", list(Failure), ids=lambda f: f.name)
def test_a_failure_reply_reads_back_as_its_code_and_kind(failure: Failure) -> None:
    chunk = decode_chunk(encode_chunk(failure_chunk(3, failure, "it went wrong")))
    assert chunk == Chunk(seq=3, final=True, error=ErrorBody(STATUS[failure].amqp, "it went wrong"))
    assert chunk.error is not None and chunk.error.code in ERROR_CODES
    assert type(reply_error(chunk.error.code, chunk.error.message)) is STATUS[failure].kind


def test_broker_address_helpers() -> None:
    assert broker_where("amqp://u:p@h/") == "h:5672"
    assert broker_where("amqps://u:p@h/") == "h:5671"
    assert broker_where("amqp://[::1]:1234/v") == "[::1]:1234"
    assert broker_user("amqp://ad%40a:p@h/") == "ad@a" and broker_user("amqp://h/") == "guest"
    assert with_reconnect_interval("amqp://h/?x=1") == "amqp://h/?x=1&reconnect_interval=0.5"
    assert with_reconnect_interval("amqp://h/?reconnect_interval=7") == "amqp://h/?reconnect_interval=7"


def test_the_key_travels_in_the_one_auth_header() -> None:
    assert AUTH_HEADER == "authorization"
