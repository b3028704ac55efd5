"""The status table (loadgen.wire.status): written out here, literally, and held to every transport's mapping.

The end-to-end half (each row through the real fronts and transports) is tests/e2e/test_status_contract.py.
"""

from __future__ import annotations

import grpc
import pytest

from loadgen.errors import ConnectError, Overloaded, ServerError, TransportError, TurnTimeout
from loadgen.transports.amqp import reply_error
from loadgen.transports.grpc import GRPC_ERRORS, map_grpc_error
from loadgen.wire.grpc import code_kind, status_code
from loadgen.wire.openai import encode_error, error_from_body, server_message
from loadgen.wire.status import (
    AMQP_CODES,
    GRPC_MEANINGS,
    STATUS,
    Failure,
    amqp_kind,
    amqp_label,
    grpc_kind,
    http_kind,
)

#: failure -> (HTTP status, gRPC code, AMQP code, client kind): the contract, as the module documents it
EXPECTED: dict[str, tuple[int, str, str, type[TransportError]]] = {
    "BAD_REQUEST": (400, "INVALID_ARGUMENT", "bad_request", ServerError),
    "UNAUTHORIZED": (401, "UNAUTHENTICATED", "unauthorized", ServerError),
    "OVERLOADED": (429, "RESOURCE_EXHAUSTED", "overloaded", Overloaded),
    "ENGINE_STOPPED": (500, "ABORTED", "engine_stopped", ServerError),
    "INTERNAL": (500, "INTERNAL", "internal", ServerError),
}


def test_the_table_is_the_documented_one() -> None:
    got = {f.name: (row.http, row.grpc, row.amqp, row.kind) for f, row in STATUS.items()}
    assert got == EXPECTED
    assert set(STATUS) == set(Failure)
    assert {"bad_request", "unauthorized", "overloaded", "engine_stopped", "internal"} == AMQP_CODES


@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_wire_maps_a_row_back_to_the_same_kind(name: str) -> None:
    http, grpc_name, amqp, kind = EXPECTED[name]
    assert http_kind(http) is kind
    assert http_kind(str(http)) is kind  # an error object's code may be text
    assert grpc_kind(grpc_name) is kind
    assert code_kind(grpc.StatusCode[grpc_name]) is kind
    assert status_code(Failure[name]) is grpc.StatusCode[grpc_name]
    assert amqp_kind(amqp) is kind


@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_transport_files_a_row_under_its_kind(name: str) -> None:
    """What each transport makes of the code it receives: the REST error body (status and in-stream), the gRPC
    status, the AMQP error reply."""
    http, grpc_name, amqp, kind = EXPECTED[name]
    body = encode_error(Failure[name], "what happened").decode()
    assert server_message(body) == ("what happened", http)
    assert type(error_from_body(body, prefix=f"HTTP {http}", status=http)) is kind
    assert type(error_from_body(body, prefix="stream error")) is kind  # the code in the body alone
    assert type(map_grpc_error(grpc.StatusCode[grpc_name], "what happened")) is kind
    assert type(reply_error(amqp, "what happened")) is kind


def test_codes_outside_the_table() -> None:
    assert http_kind(503) is Overloaded  # other servers' "no capacity"
    assert http_kind(404) is ServerError and http_kind(None) is ServerError and http_kind("teapot") is ServerError
    assert grpc_kind("DEADLINE_EXCEEDED") is TurnTimeout
    assert grpc_kind("UNAVAILABLE") is ConnectError  # grpcio's own word for a connection that failed
    assert grpc_kind("CANCELLED") is ServerError
    assert amqp_kind("teapot") is ServerError
    assert amqp_label("teapot") == "server error (teapot)" and amqp_label("engine_stopped") == "engine stopped"


def test_every_grpc_code_but_ok_has_a_meaning_and_a_kind() -> None:
    names = {code.name for code in grpc.StatusCode if code != grpc.StatusCode.OK}
    assert set(GRPC_MEANINGS) == names
    assert {code.name for code in GRPC_ERRORS} == names
