"""The AMQP wire format at its edges (loadgen.wire.amqp): the exact bytes each side writes, the exact words of
every refusal, the defaults of a field left out, and the URL helpers on blank, repeated and multi-byte values."""

from __future__ import annotations

import re

import pytest

from loadgen.errors import WireError
from loadgen.types import ChatMessage, ChatRequest, Usage
from loadgen.wire.amqp import (
    Chunk,
    ErrorBody,
    broker_user,
    broker_where,
    check_queue_name,
    decode_chunk,
    decode_request,
    encode_chunk,
    encode_request,
    error_chunk,
    failure_chunk,
    set_query,
    several,
    split_target,
    with_queue,
    with_reconnect_interval,
)
from loadgen.wire.status import STATUS, Failure

ONE = b'"messages":[{"role":"user","content":"x"}]'


def _request(extra: bytes = b"") -> bytes:
    return b"{" + ONE + extra + b"}"


def _refused(decode: object, body: bytes, message: str) -> None:
    assert callable(decode)
    with pytest.raises(WireError) as caught:
        decode(body)
    assert str(caught.value) == message


# ---------------------------------------------------------------------------------------------------------------
# requests


def test_a_request_is_written_to_the_byte() -> None:
    request = ChatRequest(
        messages=(ChatMessage("system", "Sé brief"), ChatMessage("user", "Hi")),
        max_tokens=12,
        stream=False,
        model="m1",
        session_id="s-1",
    )
    expected = (
        '{"v":1,"model":"m1","messages":[{"role":"system","content":"Sé brief"},'
        '{"role":"user","content":"Hi"}],"max_tokens":12,"stream":false,"session_id":"s-1"}'
    ).encode()
    assert encode_request(request) == expected
    assert encode_request(request, model="m2") == expected.replace(b'"m1"', b'"m2"')
    assert encode_request(request, model="") == expected  # an empty override keeps the request's model
    plain = ChatRequest(messages=(ChatMessage("user", "x"),), max_tokens=-5)
    assert encode_request(plain) == (
        b'{"v":1,"model":"loadgen-sim","messages":[{"role":"user","content":"x"}],'
        b'"max_tokens":0,"stream":true,"session_id":null}'
    )


def test_the_defaults_of_a_request_that_names_little() -> None:
    plain = decode_request(_request())
    assert plain == ChatRequest(messages=(ChatMessage("user", "x"),), max_tokens=64, stream=True)
    assert plain.model == "loadgen-sim" and plain.session_id is None
    assert decode_request(_request(b',"v":1')) == plain
    assert decode_request(_request(b',"max_tokens":null'), default_max_tokens=7).max_tokens == 7
    assert decode_request(_request(b',"max_tokens":0'), default_max_tokens=9).max_tokens == 9
    assert decode_request(_request(b',"max_tokens":1'), default_max_tokens=9).max_tokens == 1
    assert decode_request(_request(b',"stream":false')).stream is False
    assert decode_request(_request(b',"stream":true')).stream is True
    assert decode_request(_request(b',"session_id":""')).session_id is None
    assert decode_request(_request(b',"session_id":null')).session_id is None
    assert decode_request(_request(b',"session_id":"abc"')).session_id == "abc"
    assert decode_request(_request(b',"model":""')).model == "loadgen-sim"
    assert decode_request(_request(b',"model":null')).model == "loadgen-sim"
    assert decode_request(_request(b',"model":"m9"')).model == "m9"
    two = decode_request(b'{"messages":[{"role":"system","content":""},{"role":"user","content":"y"}]}')
    assert two.messages == (ChatMessage("system", ""), ChatMessage("user", "y"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", None),
        (b"[1]", "request body must be a JSON object, got list"),
        (b"3", "request body must be a JSON object, got int"),
        (b'{"v":2,' + ONE + b"}", "unsupported request version 2 (this server speaks 1)"),
        (b'{"v":"1",' + ONE + b"}", "unsupported request version '1' (this server speaks 1)"),
        (b"{}", "'messages' must be a non-empty list of {role, content} objects"),
        (b'{"messages":{"role":"user"}}', "'messages' must be a non-empty list of {role, content} objects"),
        (b'{"messages":[]}', "'messages' must be a non-empty list of {role, content} objects"),
        (
            b'{"messages":[{"role":"user","content":"x"},"hi"]}',
            "messages[1] must be an object with 'role' and 'content'",
        ),
        (b'{"messages":[{"role":"user","content":"x"},{"role":1,"content":"y"}]}', None),
        (b'{"messages":[{"role":"user","content":"x"},{"role":"user","content":2}]}', None),
        (b'{"messages":[{"content":"y"}]}', "messages[0] needs string 'role' and 'content'"),
        (_request(b',"max_tokens":-1'), "'max_tokens' must be a non-negative integer, got -1"),
        (_request(b',"max_tokens":true'), "'max_tokens' must be a non-negative integer, got True"),
        (_request(b',"max_tokens":1.5'), "'max_tokens' must be a non-negative integer, got 1.5"),
        (_request(b',"max_tokens":"3"'), "'max_tokens' must be a non-negative integer, got '3'"),
        (_request(b',"stream":"yes"'), "'stream' must be true or false, got 'yes'"),
        (_request(b',"stream":null'), "'stream' must be true or false, got None"),
        (_request(b',"stream":1'), "'stream' must be true or false, got 1"),
        (_request(b',"session_id":5'), "'session_id' must be a string or null"),
        (_request(b',"model":5'), "'model' must be a string"),
    ],
)
def test_each_bad_request_is_refused_in_its_own_words(body: bytes, message: str | None) -> None:
    if message is None:
        with pytest.raises(WireError) as caught:
            decode_request(body)
        text = str(caught.value)
        assert text.startswith("request body is not JSON: ") or text == "messages[1] needs string 'role' and 'content'"
        return
    _refused(decode_request, body, message)


def test_a_request_body_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(WireError, match=r"^request body is not JSON: "):
        decode_request(b'{"messages":"\xff"}')


# ---------------------------------------------------------------------------------------------------------------
# replies


@pytest.mark.parametrize(
    ("chunk", "body"),
    [
        (Chunk(seq=0), b'{"seq":0,"text":"","final":false}'),
        (Chunk(seq=1, text="Hé", tokens=2), '{"seq":1,"text":"Hé","tokens":2,"final":false}'.encode()),
        (
            Chunk(seq=3, final=True, finish_reason="stop", usage=Usage(4, 3)),
            b'{"seq":3,"final":true,"finish_reason":"stop","usage":{"prompt_tokens":4,"completion_tokens":3}}',
        ),
        (Chunk(seq=2, text="end", final=True), b'{"seq":2,"text":"end","final":true}'),
        (
            error_chunk(5, "overloaded", "queue full"),
            b'{"seq":5,"final":true,"error":{"code":"overloaded","message":"queue full"}}',
        ),
        (
            Chunk(seq=0, text="a", tokens=1, session="new"),
            b'{"seq":0,"text":"a","tokens":1,"final":false,"session":"new"}',
        ),
        (several(6, [("a", 1), ("b", 0)]), b'{"seq":6,"text":["a","b"],"tokens":[1,0],"final":false}'),
        (
            Chunk(seq=7, text="ab", tokens=2, final=True, finish_reason="length", parts=(("a", 1), ("b", 1))),
            b'{"seq":7,"text":["a","b"],"tokens":[1,1],"final":true,"finish_reason":"length"}',
        ),
    ],
)
def test_a_reply_is_written_to_the_byte(chunk: Chunk, body: bytes) -> None:
    assert encode_chunk(chunk) == body
    back = decode_chunk(body)
    assert back == chunk


def test_several_parts_and_one_part() -> None:
    many = several(3, [("x", 2), ("yz", 3)])
    assert many == Chunk(seq=3, text="xyz", tokens=5, parts=(("x", 2), ("yz", 3)))
    assert not many.final and many.finish_reason is None and many.usage is None and many.error is None
    assert many.session is None and not many.session_new
    one = several(8, [("only", 4)])
    assert one == Chunk(seq=8, text="only", tokens=4) and one.parts == ()


def test_failure_and_error_replies() -> None:
    chunk = failure_chunk(4, Failure.OVERLOADED, "busy")
    assert chunk == Chunk(seq=4, final=True, error=ErrorBody(STATUS[Failure.OVERLOADED].amqp, "busy"))
    assert chunk.text == "" and chunk.tokens == 0 and chunk.usage is None and chunk.session is None
    assert error_chunk(0, "internal", "boom") == Chunk(seq=0, final=True, error=ErrorBody("internal", "boom"))


def test_the_defaults_of_a_reply_that_names_little() -> None:
    bare = decode_chunk(b'{"seq":0}')
    assert bare == Chunk(seq=0, text="", tokens=0, final=False)
    assert bare.finish_reason is None and bare.usage is None and bare.error is None and bare.session is None
    assert not bare.session_new and bare.parts == ()
    assert decode_chunk(b'{"seq":1,"text":"a","tokens":0}').tokens == 0
    assert decode_chunk(b'{"seq":1,"final":true}').final is True
    assert decode_chunk(b'{"seq":1,"final":false}').final is False
    assert decode_chunk(b'{"seq":1,"usage":{}}').usage == Usage(0, 0)
    assert decode_chunk(b'{"seq":1,"usage":{"completion_tokens":5}}').usage == Usage(0, 5)
    assert decode_chunk(b'{"seq":1,"usage":{"prompt_tokens":6}}').usage == Usage(6, 0)
    assert decode_chunk(b'{"seq":1,"usage":{"prompt_tokens":0,"completion_tokens":0}}').usage == Usage(0, 0)
    error = decode_chunk(b'{"seq":2,"final":false,"error":{"code":"x"}}')
    assert error.error == ErrorBody("x", "") and error.final is True
    new = decode_chunk(b'{"seq":0,"session":"new"}')
    assert new.session == "new" and new.session_new
    other = decode_chunk(b'{"seq":0,"session":"old"}')
    assert other.session == "old" and not other.session_new
    zeros = decode_chunk(b'{"seq":0,"text":["a","b"],"tokens":[0,0]}')
    assert zeros.parts == (("a", 0), ("b", 0)) and zeros.tokens == 0 and zeros.text == "ab"
    single = decode_chunk(b'{"seq":0,"text":["solo"],"tokens":[3]}')
    assert single.parts == (("solo", 3),) and single.text == "solo" and single.tokens == 3
    failed = decode_chunk(b'{"seq":9,"text":["a"],"tokens":[1],"error":{"code":"c","message":"m"}}')
    assert failed == Chunk(9, "a", 1, True, None, None, ErrorBody("c", "m"), None, (("a", 1),))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "reply body must be a JSON object, got list"),
        (b"null", "reply body must be a JSON object, got NoneType"),
        (b"{}", "reply 'seq' must be a non-negative integer, got None"),
        (b'{"seq":-1}', "reply 'seq' must be a non-negative integer, got -1"),
        (b'{"seq":true}', "reply 'seq' must be a non-negative integer, got True"),
        (b'{"seq":1.0}', "reply 'seq' must be a non-negative integer, got 1.0"),
        (b'{"seq":0,"text":5}', "reply 'text' must be a string (or a list of strings)"),
        (b'{"seq":0,"text":null}', "reply 'text' must be a string (or a list of strings)"),
        (b'{"seq":0,"tokens":-1}', "reply 'tokens' must be a non-negative integer, got -1"),
        (b'{"seq":0,"tokens":true}', "reply 'tokens' must be a non-negative integer, got True"),
        (b'{"seq":0,"tokens":2.5}', "reply 'tokens' must be a non-negative integer, got 2.5"),
        (b'{"seq":0,"final":1}', "reply 'final' must be true or false"),
        (b'{"seq":0,"final":null}', "reply 'final' must be true or false"),
        (b'{"seq":0,"finish_reason":5}', "reply 'finish_reason' must be a string"),
        (b'{"seq":0,"usage":[]}', "reply 'usage' must be an object"),
        (b'{"seq":0,"usage":{"prompt_tokens":-1}}', "reply 'usage' counts must be non-negative integers"),
        (b'{"seq":0,"usage":{"completion_tokens":-1}}', "reply 'usage' counts must be non-negative integers"),
        (b'{"seq":0,"usage":{"prompt_tokens":true}}', "reply 'usage' counts must be non-negative integers"),
        (b'{"seq":0,"usage":{"completion_tokens":1.5}}', "reply 'usage' counts must be non-negative integers"),
        (b'{"seq":0,"error":"x"}', "reply 'error' must be an object with 'code' and 'message'"),
        (b'{"seq":0,"error":{"message":"m"}}', "reply 'error' needs a string 'code' and 'message'"),
        (b'{"seq":0,"error":{"code":"c","message":5}}', "reply 'error' needs a string 'code' and 'message'"),
        (b'{"seq":0,"session":5}', "reply 'session' must be a string"),
        (b'{"seq":0,"text":[],"tokens":[]}', "reply 'text' must be a string or a non-empty list of strings"),
        (b'{"seq":0,"text":["a",null],"tokens":[1,1]}', "reply 'text' must be a string or a non-empty list of strings"),
        (b'{"seq":0,"text":["a","b"]}', "reply 'tokens' must be a list of 2 counts, one per entry of 'text'"),
        (
            b'{"seq":0,"text":["a"],"tokens":[1,1]}',
            "reply 'tokens' must be a list of 1 counts, one per entry of 'text'",
        ),
        (b'{"seq":0,"text":["a"],"tokens":[false]}', "reply 'tokens' counts must be non-negative integers"),
        (b'{"seq":0,"text":["a","b"],"tokens":[1,-1]}', "reply 'tokens' counts must be non-negative integers"),
    ],
)
def test_each_bad_reply_is_refused_in_its_own_words(body: bytes, message: str) -> None:
    _refused(decode_chunk, body, message)


@pytest.mark.parametrize("body", [b"", b"{", b'{"seq":0,"text":"\xff"}'])
def test_a_reply_that_is_not_json_names_the_reply(body: bytes) -> None:
    with pytest.raises(WireError) as caught:
        decode_chunk(body)
    assert re.fullmatch(r"reply body is not JSON: .+", str(caught.value))
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


# ---------------------------------------------------------------------------------------------------------------
# URLs


def test_split_target_keeps_other_parameters_and_checks_the_queue() -> None:
    assert split_target("amqp://u:p@h:1/v?x=&queue=q&y=2") == ("amqp://u:p@h:1/v?x=&y=2", "q")
    assert split_target("amqp://h/?x=1") == ("amqp://h/?x=1", "loadgen.chat.requests")
    with pytest.raises(WireError) as twice:
        split_target("amqp://h/?queue=a&queue=b")
    assert str(twice.value) == "give the 'queue' parameter once"
    with pytest.raises(WireError) as empty:
        split_target("amqp://h/?queue=")
    assert str(empty.value) == "the queue name is empty"
    with pytest.raises(WireError) as long:
        split_target("amqp://h/?queue=" + "q" * 256)
    assert str(long.value) == "the queue name is longer than 255 bytes"


def test_queue_names_are_measured_in_bytes() -> None:
    check_queue_name("q" * 255)
    check_queue_name("é" * 127)  # 254 bytes
    for name in ("q" * 256, "é" * 128, "q" + "é" * 128):
        with pytest.raises(WireError) as caught:
            check_queue_name(name)
        assert str(caught.value) == "the queue name is longer than 255 bytes"
    with pytest.raises(WireError) as empty:
        check_queue_name("")
    assert str(empty.value) == "the queue name is empty"
    assert with_queue("amqp://h/?a=&b=1", "q" * 255) == "amqp://h/?a=&b=1&queue=" + "q" * 255
    with pytest.raises(WireError, match="is empty"):
        with_queue("amqp://h/", "")


def test_set_query_replaces_one_key_and_keeps_blank_values() -> None:
    assert set_query("amqp://h/v?a=&k=1&b=2", "k", "9") == "amqp://h/v?a=&b=2&k=9"
    assert set_query("amqp://h/", "k", "a b") == "amqp://h/?k=a+b"
    assert set_query("amqp://u:p@h:5/v#f", "k", "1") == "amqp://u:p@h:5/v?k=1#f"


def test_the_reconnect_interval_is_added_once() -> None:
    assert with_reconnect_interval("amqp://h/") == "amqp://h/?reconnect_interval=0.5"
    assert with_reconnect_interval("amqp://h/?a=") == "amqp://h/?a=&reconnect_interval=0.5"
    assert with_reconnect_interval("amqp://h/?reconnect_interval=3&a=1") == "amqp://h/?reconnect_interval=3&a=1"
    # a blank interval is no interval: the default replaces it
    assert with_reconnect_interval("amqp://h/?reconnect_interval=") == "amqp://h/?reconnect_interval=0.5"


def test_broker_where_and_user_at_the_edges() -> None:
    assert broker_where("AMQPS://h/") == "h:5671"
    assert broker_where("AMQP://h/") == "h:5672"
    assert broker_where("http://h/") == "h:5672"  # a scheme with no default port reads AMQP's
    assert broker_where("amqps://h:9/") == "h:9"
    assert broker_where("amqp:///v") == ":5672"
    assert broker_where("amqps://[fe80::1]/") == "[fe80::1]:5671"
    assert broker_user("amqp://:p@h/") == "guest"
    assert broker_user("amqp://a%20b@h/") == "a b"
    assert broker_user("amqp://bob:secret@h/") == "bob"
