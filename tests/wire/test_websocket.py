"""The WebSocket wire format (loadgen.wire.websocket): what the front writes, the transport reads back; every row
of the status table is the same failure kind as on REST, gRPC and AMQP; URLs. Expected values written out."""

from __future__ import annotations

import json

import pytest

from loadgen.errors import Overloaded, ServerError, WireError
from loadgen.types import ChatMessage, ChatRequest, Usage
from loadgen.wire import websocket as ws
from loadgen.wire.status import Failure


def test_a_request_is_an_openai_body_and_reads_back() -> None:
    request = ChatRequest(messages=(ChatMessage("user", "Hi é"),), max_tokens=7, stream=True, session_id="s-1")
    data = ws.encode_request(request, model="m")
    assert json.loads(data) == {
        "model": "m", "messages": [{"role": "user", "content": "Hi é"}], "max_tokens": 7, "stream": True,
        "stream_options": {"include_usage": True}, "session_id": "s-1",
    }  # fmt: skip
    back = ws.decode_request(data.decode())
    assert back == ChatRequest(messages=request.messages, max_tokens=7, stream=True, model="m", session_id="s-1")


def test_a_request_that_breaks_the_format_is_a_wire_error() -> None:
    with pytest.raises(WireError, match="'messages' must be a non-empty list"):
        ws.decode_request('{"messages": []}')


def test_token_and_done_messages_round_trip() -> None:
    token = ws.encode_token('say "hi"\n', 2)
    assert json.loads(token) == {"type": "token", "text": 'say "hi"\n', "tokens": 2}
    assert ws.decode_message(token) == ws.Message("token", text='say "hi"\n', tokens=2)
    done = ws.encode_done("length", Usage(12, 7))
    assert json.loads(done) == {
        "type": "done", "finish_reason": "length", "usage": {"prompt_tokens": 12, "completion_tokens": 7}
    }  # fmt: skip
    assert ws.decode_message(done) == ws.Message("done", finish_reason="length", usage=Usage(12, 7))
    whole = ws.decode_message(ws.encode_done("stop", None, text="all of it"))
    assert (whole.type, whole.text, whole.usage) == ("done", "all of it", None)


#: failure -> (its wire code, its HTTP status, the client's kind, the reason the client gives)
ROWS = {
    Failure.BAD_REQUEST: ("bad_request", 400, ServerError, "bad request: nope"),
    Failure.UNAUTHORIZED: ("unauthorized", 401, ServerError, "unauthorized: nope"),
    Failure.OVERLOADED: ("overloaded", 429, Overloaded, "overloaded: nope"),
    Failure.ENGINE_STOPPED: ("engine_stopped", 500, ServerError, "engine stopped: nope"),
    Failure.INTERNAL: ("internal", 500, ServerError, "server error: nope"),
}


@pytest.mark.parametrize("failure", list(ROWS), ids=lambda f: f.name)
def test_every_row_of_the_status_table_is_one_failure_kind(failure: Failure) -> None:
    code, status, kind, reason = ROWS[failure]
    data = ws.encode_error(failure, "nope")
    assert json.loads(data) == {"type": "error", "code": code, "status": status, "message": "nope"}
    error = ws.error_of(ws.decode_message(data))
    assert type(error) is kind
    assert (error.reason, error.code) == (reason, code)


def test_an_unknown_error_code_is_a_server_error() -> None:
    error = ws.error_of(ws.decode_message('{"type": "error", "code": "teapot", "message": "short and stout"}'))
    assert type(error) is ServerError
    assert error.reason == "server error (teapot): short and stout"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ("not json", "reply message is not JSON"),
        ("[1]", "reply message must be a JSON object, got list"),
        ('{"type": "chunk"}', "reply message 'type' must be one of done, error, token, got 'chunk'"),
        ('{"type": "token", "text": 5}', "reply 'text' must be a string"),
        ('{"type": "token", "text": "a", "tokens": -1}', "reply 'tokens' must be a non-negative integer"),
        ('{"type": "error", "message": "x"}', "an error message needs a string 'code' and 'message'"),
        ('{"type": "done", "usage": [1]}', "reply 'usage' must be an object"),
        ('{"type": "done", "usage": {"prompt_tokens": -1}}', "reply 'usage' counts must be non-negative integers"),
        ('{"type": "done", "finish_reason": 3}', "reply 'finish_reason' must be a string"),
    ],
)
def test_a_message_that_breaks_the_format_says_what(data: str, problem: str) -> None:
    with pytest.raises(WireError) as info:
        ws.decode_message(data)
    assert str(info.value).startswith(problem)


@pytest.mark.parametrize(
    ("target", "path", "url"),
    [
        ("ws://127.0.0.1:8765", None, "ws://127.0.0.1:8765/v1/chat/ws"),
        ("ws://127.0.0.1:8765/", None, "ws://127.0.0.1:8765/v1/chat/ws"),
        ("wss://chat.example:443/api/stream", None, "wss://chat.example:443/api/stream"),
        ("ws://h:1/x", "chat", "ws://h:1/chat"),
    ],
)
def test_chat_url(target: str, path: str | None, url: str) -> None:
    assert ws.chat_url(target, path) == url


@pytest.mark.parametrize("target", ["http://h:1", "ws://", "ws://h:port"])
def test_a_target_that_is_not_a_websocket_url(target: str) -> None:
    with pytest.raises(WireError):
        ws.chat_url(target)


def test_where_names_host_and_port_only() -> None:
    assert ws.where("wss://user:secret@chat.example/x") == "chat.example:443"
    assert ws.where("ws://[::1]:81") == "[::1]:81"
