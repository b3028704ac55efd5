"""The contract kit fails a transport that breaks the contract, with a message that says how (each broken
transport of ``broken.py`` against the one check that must catch it), and passes the same check for the REST
transport it was derived from: the checks can fail, and fail for the right reason."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from loadgen.testing import ContractFailure, ContractTarget, reference_target
from loadgen.testing.checks import (
    check_client_history,
    check_fixed_ttft,
    check_server_history,
    check_streamed_reply,
)
from loadgen.testing.failures import (
    check_cut_short,
    check_refused_connection,
    check_secrets_scrubbed,
    check_turn_timeout,
)
from loadgen.testing.gevent_check import check_under_gevent
from loadgen.testing.runner import Check
from tests.testing import broken

pytestmark = pytest.mark.e2e

#: broken transport -> (the check that catches it, words its message must hold)
CASES: dict[type, tuple[Check, str]] = {
    broken.HoldsChunksBack: (check_fixed_ttft, "held back"),
    broken.LateSent: (check_fixed_ttft, "earlier than the service sends its first token"),
    broken.FirstByteAfterDone: (check_streamed_reply, "chunk_times.0. .* is before t_first_byte"),
    broken.RefusedIsProtocol: (check_refused_connection, "expected ConnectError, got ProtocolError"),
    broken.TimesOutAfterTheFact: (check_turn_timeout, "long past its"),
    broken.DropsSession: (check_server_history, "does not recall 'QX7781'"),
    broken.LastMessageOnly: (check_client_history, "does not recall 'QX7781'"),
    broken.LeaksKey: (check_secrets_scrubbed, "the key is in the reason"),
}


@pytest.fixture(scope="module")
def rest_target() -> Iterator[ContractTarget]:
    with reference_target("rest") as target:
        yield target


@pytest.mark.parametrize("cls", list(CASES), ids=lambda cls: cls.__name__)
def test_the_check_catches_it(rest_target: ContractTarget, cls: type) -> None:
    check, words = CASES[cls]
    check(rest_target)  # the REST transport itself passes
    with pytest.raises(ContractFailure, match=words):
        check(dataclasses.replace(rest_target, transport=cls))


def test_a_timeout_after_the_fact_lets_the_server_stream_to_the_end(rest_target: ContractTarget) -> None:
    with pytest.raises(ContractFailure, match="streamed the reply of a turn cut short to its end"):
        check_cut_short(dataclasses.replace(rest_target, transport=broken.TimesOutAfterTheFact))


def test_blocking_the_hub_is_caught_under_gevent(rest_target: ContractTarget) -> None:
    with pytest.raises(ContractFailure, match="the hub was blocked"):
        check_under_gevent(dataclasses.replace(rest_target, transport="tests.testing.broken:BlocksTheHub"))
