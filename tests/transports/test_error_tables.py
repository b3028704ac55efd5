"""Every status code of every transport, with the expected failure written out here, literally: never read from
the table under test (a remapped code must fail a test). Each code goes through the transport itself, against a
real server on 127.0.0.1 that answers with it: a scripted gRPC server, the scripted HTTP server, and the AMQP
reply stream (fed to the turn that reads it, chunk by chunk). Then the AMQP reply chunk's validation, case by case.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from loadgen.errors import ConnectError, Overloaded, ProtocolError, ServerError, TransportError, TurnTimeout, WireError
from loadgen.grpc_gen.chat.v1 import chat_pb2
from loadgen.transports.amqp_client import Turn, reply_error
from loadgen.transports.base import TransportConfig
from loadgen.transports.grpc import GrpcTransport, map_grpc_error
from loadgen.transports.rest import RestTransport
from loadgen.types import ChatMessage, ChatRequest, Usage
from loadgen.wire.amqp import Chunk, ErrorBody, decode_chunk, encode_chunk, error_chunk
from loadgen.wire.grpc import code_kind
from loadgen.wire.status import amqp_kind, amqp_label, grpc_kind, http_kind
from tests.transports.test_grpc import ScriptedServer
from tests.transports.test_rest import DONE, END, delta, head, sse, whole

# -- gRPC: all sixteen codes but OK -------------------------------------------------------------------------------

#: code -> (failure kind, reason for details "went wrong", reason without details)
GRPC_EXPECTED: dict[str, tuple[type[TransportError], str, str]] = {
    "CANCELLED": (ServerError, "CANCELLED: went wrong", "CANCELLED: the call was cancelled"),
    "UNKNOWN": (ServerError, "UNKNOWN: went wrong", "UNKNOWN: the server failed with an unknown error"),
    "INVALID_ARGUMENT": (
        ServerError,
        "INVALID_ARGUMENT: went wrong",
        "INVALID_ARGUMENT: the server rejected the request",
    ),
    "DEADLINE_EXCEEDED": (
        TurnTimeout,
        "DEADLINE_EXCEEDED: turn exceeded its timeout (2s) before the reply started",
        "DEADLINE_EXCEEDED: turn exceeded its timeout (2s) before the reply started",
    ),
    "NOT_FOUND": (ServerError, "NOT_FOUND: went wrong", "NOT_FOUND: not found"),
    "ALREADY_EXISTS": (ServerError, "ALREADY_EXISTS: went wrong", "ALREADY_EXISTS: already exists"),
    "PERMISSION_DENIED": (ServerError, "PERMISSION_DENIED: went wrong", "PERMISSION_DENIED: permission denied"),
    "RESOURCE_EXHAUSTED": (
        Overloaded,
        "RESOURCE_EXHAUSTED: went wrong",
        "RESOURCE_EXHAUSTED: the server has no capacity now",
    ),
    "FAILED_PRECONDITION": (ServerError, "FAILED_PRECONDITION: went wrong", "FAILED_PRECONDITION: failed precondition"),
    "ABORTED": (ServerError, "ABORTED: went wrong", "ABORTED: aborted"),
    "OUT_OF_RANGE": (ServerError, "OUT_OF_RANGE: went wrong", "OUT_OF_RANGE: out of range"),
    "UNIMPLEMENTED": (
        ServerError,
        "UNIMPLEMENTED: went wrong",
        "UNIMPLEMENTED: the target does not implement this method (not the chat service?)",
    ),
    "INTERNAL": (ServerError, "INTERNAL: went wrong", "INTERNAL: internal error"),
    "UNAVAILABLE": (ConnectError, "UNAVAILABLE: went wrong", "UNAVAILABLE: h:1 is unavailable"),
    "DATA_LOSS": (ServerError, "DATA_LOSS: went wrong", "DATA_LOSS: data loss"),
    "UNAUTHENTICATED": (ServerError, "UNAUTHENTICATED: went wrong", "UNAUTHENTICATED: missing or wrong API key"),
}


def test_the_grpc_table_names_every_code_but_ok() -> None:
    assert set(GRPC_EXPECTED) == {code.name for code in grpc.StatusCode} - {"OK"}


@pytest.mark.parametrize("name", list(GRPC_EXPECTED))
def test_each_grpc_code_maps_to_its_literal_kind_and_reason(name: str) -> None:
    kind, reason, bare = GRPC_EXPECTED[name]
    code = grpc.StatusCode[name]
    assert grpc_kind(name) is kind
    assert code_kind(code) is kind
    err = map_grpc_error(code, "went wrong", where="h:1", timeout_s=2.0)
    assert type(err) is kind and err.reason == reason
    err = map_grpc_error(code, None, where="h:1", timeout_s=2.0)
    assert type(err) is kind and err.reason == bare
    if kind is ServerError or kind is Overloaded:
        assert err.code == name


@pytest.fixture(scope="module")
def aborting() -> Iterator[GrpcTransport]:
    """A gRPC server whose Chat and Complete abort with the code named by the request's text."""

    def fail(request: chat_pb2.ChatRequest, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode[request.messages[-1].content], "went wrong")

    server = ScriptedServer(fail, fail)
    transport = GrpcTransport(TransportConfig(target=f"grpc://127.0.0.1:{server.port}", timeout_s=2.0))
    yield transport
    transport.close()
    server.stop()


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("name", list(GRPC_EXPECTED))
def test_each_grpc_code_from_a_real_server(aborting: GrpcTransport, name: str, stream: bool) -> None:
    kind, reason, _ = GRPC_EXPECTED[name]
    request = ChatRequest(messages=(ChatMessage("user", name),), max_tokens=4, stream=stream)
    with pytest.raises(TransportError) as info:
        aborting.send(request, timeout=2.0)
    assert type(info.value) is kind, info.value
    assert info.value.reason == reason


# -- HTTP: the statuses a server may answer with ------------------------------------------------------------------

#: status -> failure kind (503 is other servers' "no capacity now", as 429 is ours)
HTTP_EXPECTED: dict[int, type[ServerError]] = {
    400: ServerError,
    401: ServerError,
    402: ServerError,
    403: ServerError,
    404: ServerError,
    405: ServerError,
    408: ServerError,
    409: ServerError,
    413: ServerError,
    415: ServerError,
    418: ServerError,
    422: ServerError,
    429: Overloaded,
    500: ServerError,
    501: ServerError,
    502: ServerError,
    503: Overloaded,
    504: ServerError,
    505: ServerError,
    599: ServerError,
}


@pytest.mark.parametrize("status", list(HTTP_EXPECTED))
def test_each_http_status_maps_to_its_literal_kind(status: int) -> None:
    kind = HTTP_EXPECTED[status]
    assert http_kind(status) is kind
    assert http_kind(str(status)) is kind


@pytest.fixture
def rest_transports() -> Iterator[list[RestTransport]]:
    made: list[RestTransport] = []
    yield made
    for transport in made:
        transport.close()


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("status", list(HTTP_EXPECTED))
def test_each_http_status_from_a_real_server(
    http_server: Any, rest_transports: list[RestTransport], status: int, stream: bool
) -> None:
    kind = HTTP_EXPECTED[status]
    body = json.dumps({"error": {"message": "went wrong", "type": "x", "code": 200}})  # the status wins
    target = http_server.route([whole(status, body, reason="Whatever")])
    transport = RestTransport(TransportConfig(target=target, timeout_s=5.0))
    rest_transports.append(transport)
    request = ChatRequest(messages=(ChatMessage("user", "hi"),), max_tokens=4, stream=stream)
    with pytest.raises(TransportError) as info:
        transport.send(request, timeout=5.0)
    assert type(info.value) is kind, info.value
    assert info.value.reason == f"HTTP {status}: went wrong"
    assert isinstance(info.value, ServerError) and info.value.code == status


@pytest.mark.parametrize(
    ("code", "kind"),
    [(400, ServerError), (401, ServerError), (429, Overloaded), (500, ServerError), (503, Overloaded),
     ("429", Overloaded), ("overloaded", ServerError), (None, ServerError)],
)  # fmt: skip
def test_an_error_event_mid_stream_is_filed_by_its_code(
    http_server: Any, rest_transports: list[RestTransport], code: Any, kind: type[ServerError]
) -> None:
    """A 200 stream that turns into an error: the error object's own code decides."""
    error = {"error": {"message": "went wrong", "code": code}}
    target = http_server.route([head(), sse(delta("par")), sse(error, event="error"), DONE, END])
    transport = RestTransport(TransportConfig(target=target, timeout_s=5.0))
    rest_transports.append(transport)
    with pytest.raises(TransportError) as info:
        transport.send(ChatRequest(messages=(ChatMessage("user", "hi"),), max_tokens=4), timeout=5.0)
    assert type(info.value) is kind, info.value


# -- AMQP: the error codes of an error reply --------------------------------------------------------------------

#: code -> (failure kind, how the reason names it)
AMQP_EXPECTED: dict[str, tuple[type[ServerError], str]] = {
    "bad_request": (ServerError, "bad request"),
    "unauthorized": (ServerError, "unauthorized"),
    "overloaded": (Overloaded, "overloaded"),
    "engine_stopped": (ServerError, "engine stopped"),
    "internal": (ServerError, "server error"),
    "teapot": (ServerError, "server error (teapot)"),  # a code no table knows
    "": (ServerError, "server error ()"),
}


class _Future:
    """What a :class:`Turn` settles: the result or the exception, once."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.settled = 0

    def done(self) -> bool:
        return self.settled > 0

    def set_result(self, value: Any) -> None:
        self.settled += 1

    def set_exception(self, exc: BaseException) -> None:
        self.error = exc
        self.settled += 1


def _fed(*bodies: bytes, stream: bool = True) -> _Future:
    future = _Future()
    turn = Turn(stream, future)  # type: ignore[arg-type]
    for i, body in enumerate(bodies):
        turn.feed(float(i), body)
    return future


@pytest.mark.parametrize("code", list(AMQP_EXPECTED))
def test_each_amqp_error_code_maps_to_its_literal_kind_and_label(code: str) -> None:
    kind, label = AMQP_EXPECTED[code]
    assert amqp_kind(code) is kind
    assert amqp_label(code) == label
    err = reply_error(code, "went wrong")
    assert type(err) is kind and err.code == code and err.reason == f"{label}: went wrong"
    # through the turn reading the replies: first, and after a chunk of text
    for bodies in (
        [encode_chunk(error_chunk(0, code, "went wrong"))],
        [encode_chunk(Chunk(seq=0, text="a", tokens=1)), encode_chunk(error_chunk(1, code, "went wrong"))],
    ):
        future = _fed(*bodies)
        assert type(future.error) is kind and future.settled == 1
        assert isinstance(future.error, ServerError) and future.error.reason == f"{label}: went wrong"


# -- AMQP reply chunks: what is accepted, and what is refused with which words ---------------------------------

ACCEPTED: list[tuple[str, Chunk]] = [
    ('{"seq":0}', Chunk(seq=0)),
    ('{"seq":0,"text":"","tokens":0,"final":false}', Chunk(seq=0)),
    ('{"seq":7,"text":"hé","tokens":3}', Chunk(seq=7, text="hé", tokens=3)),
    ('{"seq":1,"final":true,"finish_reason":"stop"}', Chunk(seq=1, final=True, finish_reason="stop")),
    ('{"seq":1,"final":true,"usage":{}}', Chunk(seq=1, final=True, usage=Usage(0, 0))),
    (
        '{"seq":1,"final":true,"usage":{"prompt_tokens":0,"completion_tokens":5}}',
        Chunk(seq=1, final=True, usage=Usage(0, 5)),
    ),
    ('{"seq":2,"error":{"code":"x"}}', Chunk(seq=2, final=True, error=ErrorBody("x", ""))),  # an error ends it
    ('{"seq":2,"final":false,"error":{"code":"x","message":"m"}}', Chunk(seq=2, final=True, error=ErrorBody("x", "m"))),
    ('{"seq":0,"text":"a","session":"new"}', Chunk(seq=0, text="a", session="new")),
    ('{"seq":0,"text":"a","unknown":[1,2]}', Chunk(seq=0, text="a")),  # fields of a newer server: ignored
]

REFUSED: list[tuple[str, str]] = [
    ("not json", "not JSON"),
    ('"text"', "JSON object"),
    ("[1]", "JSON object"),
    ('{"text":"a"}', "'seq' must be a non-negative integer"),
    ('{"seq":-1}', "'seq' must be a non-negative integer"),
    ('{"seq":"0"}', "'seq' must be a non-negative integer"),
    ('{"seq":true}', "'seq' must be a non-negative integer"),
    ('{"seq":1.0}', "'seq' must be a non-negative integer"),
    ('{"seq":0,"text":5}', "'text' must be a string"),
    ('{"seq":0,"text":null}', "'text' must be a string"),
    ('{"seq":0,"text":["a"]}', "'tokens' must be a list of 1 counts, one per entry of 'text'"),  # several chunks
    ('{"seq":0,"text":["a",5],"tokens":[1,1]}', "'text' must be a string or a non-empty list of strings"),
    ('{"seq":0,"text":[],"tokens":[]}', "'text' must be a string or a non-empty list of strings"),
    ('{"seq":0,"text":["a","b"],"tokens":[1]}', "'tokens' must be a list of 2 counts, one per entry of 'text'"),
    ('{"seq":0,"text":["a"],"tokens":[-1]}', "'tokens' counts must be non-negative integers"),
    ('{"seq":0,"tokens":-1}', "'tokens' must be a non-negative integer"),
    ('{"seq":0,"tokens":"1"}', "'tokens' must be a non-negative integer"),
    ('{"seq":0,"tokens":true}', "'tokens' must be a non-negative integer"),
    ('{"seq":0,"tokens":1.5}', "'tokens' must be a non-negative integer"),
    ('{"seq":0,"final":"true"}', "'final' must be true or false"),
    ('{"seq":0,"final":1}', "'final' must be true or false"),
    ('{"seq":0,"final":null}', "'final' must be true or false"),
    ('{"seq":0,"final":true,"finish_reason":5}', "'finish_reason' must be a string"),
    ('{"seq":0,"final":true,"usage":[]}', "'usage' must be an object"),
    ('{"seq":0,"final":true,"usage":"5"}', "'usage' must be an object"),
    ('{"seq":0,"final":true,"usage":{"prompt_tokens":-1}}', "'usage' counts must be non-negative integers"),
    ('{"seq":0,"final":true,"usage":{"completion_tokens":-1}}', "'usage' counts must be non-negative integers"),
    ('{"seq":0,"final":true,"usage":{"completion_tokens":"3"}}', "'usage' counts must be non-negative integers"),
    ('{"seq":0,"final":true,"usage":{"completion_tokens":1.5}}', "'usage' counts must be non-negative integers"),
    ('{"seq":0,"final":true,"usage":{"prompt_tokens":true}}', "'usage' counts must be non-negative integers"),
    ('{"seq":0,"error":"boom"}', "'error' must be an object"),
    ('{"seq":0,"error":["x"]}', "'error' must be an object"),
    ('{"seq":0,"error":{"message":"m"}}', "'error' needs a string 'code' and 'message'"),
    ('{"seq":0,"error":{"code":5,"message":"m"}}', "'error' needs a string 'code' and 'message'"),
    ('{"seq":0,"error":{"code":"x","message":5}}', "'error' needs a string 'code' and 'message'"),
    ('{"seq":0,"text":"a","session":5}', "'session' must be a string"),
]


@pytest.mark.parametrize(("body", "chunk"), ACCEPTED, ids=[body for body, _ in ACCEPTED])
def test_a_reply_chunk_accepted(body: str, chunk: Chunk) -> None:
    assert decode_chunk(body.encode()) == chunk


@pytest.mark.parametrize(("body", "words"), REFUSED, ids=[body for body, _ in REFUSED])
def test_a_reply_chunk_refused_with_its_reason(body: str, words: str) -> None:
    with pytest.raises(WireError) as info:
        decode_chunk(body.encode())
    assert words in str(info.value)
    # the turn reading it fails with a protocol error that says why, never with the chunk taken as good
    future = _fed(body.encode())
    assert type(future.error) is ProtocolError and future.settled == 1
    assert future.error.reason.startswith("malformed reply chunk: ") and words in future.error.reason
