"""The exact bytes the REST front writes (chunks, whole completions, error bodies) and how the transport reads
every error body shape (loadgen.wire.openai): which key gives the message and which the code, and the limits."""

from __future__ import annotations

import json

import pytest

from loadgen.errors import Overloaded, ServerError
from loadgen.types import Usage
from loadgen.wire.openai import (
    ChunkEncoder,
    encode_completion,
    encode_error,
    encode_error_object,
    error_from_body,
    error_object,
    server_message,
)
from loadgen.wire.sse import DATA_FRAME
from loadgen.wire.status import Failure

HEAD = b'{"id":"id-\\u00fc","object":"chat.completion.chunk","created":5,"model":"m\\"1",'


# -- ChunkEncoder ----------------------------------------------------------------------------------------------------


def test_the_exact_bytes_of_each_chunk_in_an_event_frame() -> None:
    encoder = ChunkEncoder("id-ü", 'm"1', 5, DATA_FRAME)
    content = HEAD + b'"choices":[{"index":0,"delta":{"content":"a\\u00e9"},"finish_reason":null}]}'
    assert encoder.content("aé") == b"data: " + content + b"\n\n"
    role = HEAD + b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}'
    assert encoder.role() == b"data: " + role + b"\n\n"
    finish = HEAD + b'"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}'
    assert encoder.finish("length") == b"data: " + finish + b"\n\n"
    usage = HEAD + b'"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}'
    assert encoder.usage(3, 4) == b"data: " + usage + b"\n\n"
    assert encoder.done() == b"data: [DONE]\n\n"


def test_without_a_frame_a_chunk_is_its_json_alone() -> None:
    encoder = ChunkEncoder("id-ü", 'm"1', 5)
    assert encoder.content("x") == HEAD + b'"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}'
    assert encoder.done() == b"[DONE]"
    assert json.loads(encoder.usage(0, 0))["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


# -- encode_completion -------------------------------------------------------------------------------------------------


def test_the_exact_bytes_of_a_whole_completion() -> None:
    body = encode_completion("r-1", "m", 9, "é 😀", "stop", Usage(2, 3))
    assert (
        body
        == (
            '{"id":"r-1","object":"chat.completion","created":9,"model":"m",'
            '"choices":[{"index":0,"message":{"role":"assistant","content":"é 😀"},"finish_reason":"stop"}],'
            '"usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5}}'
        ).encode()
    )


# -- error bodies the front writes ---------------------------------------------------------------------------------


def test_an_error_object_and_its_bytes() -> None:
    assert error_object("no", "t", 405) == {"error": {"message": "no", "type": "t", "code": 405}}
    assert encode_error_object("trop gros é", "too_large", 413) == (
        '{"error":{"message":"trop gros é","type":"too_large","code":413}}'.encode()
    )


@pytest.mark.parametrize(
    ("failure", "type_", "code"),
    [
        (Failure.BAD_REQUEST, "invalid_request_error", 400),
        (Failure.OVERLOADED, "overloaded", 429),
        (Failure.INTERNAL, "server_error", 500),
    ],
)
def test_an_error_body_carries_its_rows_type_and_status(failure: Failure, type_: str, code: int) -> None:
    assert json.loads(encode_error(failure, "why")) == {"error": {"message": "why", "type": type_, "code": code}}


# -- server_message: every shape of error body -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"error": {"message": "m", "type": "t", "code": 429}}', ("m", 429)),  # the code wins over the type
        ('{"error": {"message": "m", "code": "busy"}}', ("m", "busy")),
        ('{"error": {"message": "m", "code": true}}', ("m", None)),  # a boolean is no code
        ('{"error": {"message": "m", "code": 1.5}}', ("m", None)),
        ('{"error": {"message": "m", "code": null, "type": "t"}}', ("m", None)),
        ('{"error": {"message": "first", "detail": "second", "error": "third"}}', ("first", None)),
        ('{"error": {"message": null, "detail": "second", "error": "third"}}', ("second", None)),
        ('{"error": {"error": "third"}}', ("third", None)),
        ('{"error": {"message": {"why": 1}}}', ('{"why": 1}', None)),
        ('{"error": {"message": ""}}', ("(no message)", None)),
        ('{"error": 5}', ("5", None)),
        ('{"error": ["a", "b"]}', ('["a", "b"]', None)),
        ('{"error": null}', ('{"error": null}', None)),
        ('{"code": 503}', ('{"code": 503}', 503)),
        ('["not", "an", "object"]', ('["not", "an", "object"]', None)),
        ("  \n ", ("(no message)", None)),
    ],
)
def test_the_message_and_code_of_each_body_shape(body: str, expected: tuple[str, str | int | None]) -> None:
    assert server_message(body) == expected


def test_a_message_is_cut_at_200_characters_by_default() -> None:
    assert server_message("x" * 200) == ("x" * 200, None)
    assert server_message("x" * 201) == ("x" * 199 + "…", None)
    assert server_message("abcdef", limit=4) == ("abc…", None)


def test_the_code_in_the_body_gives_the_kind_when_no_status_is_given() -> None:
    err = error_from_body('{"error": {"message": "later", "code": 503}}', prefix="stream error")
    assert type(err) is Overloaded and err.code == 503 and err.reason == "stream error: later"
    err = error_from_body('{"error": {"message": "later", "code": "429"}}', prefix="p")
    assert type(err) is Overloaded and err.code == "429"
    err = error_from_body('{"error": {"message": "oops", "code": 429}}', prefix="HTTP 500", status=500)
    assert type(err) is ServerError and err.code == 500 and err.reason == "HTTP 500: oops"
    err = error_from_body("plain", prefix="p")
    assert type(err) is ServerError and err.code is None and err.reason == "p: plain"
