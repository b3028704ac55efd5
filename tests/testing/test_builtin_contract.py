"""Every built-in transport (rest, grpc, amqp) and the WebSocket plug-in pass the whole contract kit against the
reference server with fixed timing (a real RabbitMQ broker for AMQP): one test per transport and check."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from loadgen.testing import ContractTarget, reference_target
from tests.conftest import require_broker
from tests.plugins.plugin_path import WEBSOCKET

pytestmark = pytest.mark.e2e

#: transport -> the reference server's front it speaks to
TRANSPORTS = {"rest": "rest", "grpc": "grpc", "amqp": "amqp", WEBSOCKET: "websocket"}


@pytest.fixture(scope="module", params=list(TRANSPORTS), ids=["rest", "grpc", "amqp", "websocket"])
def contract_target(request: pytest.FixtureRequest) -> Iterator[ContractTarget]:
    transport = request.param
    if transport == "amqp":
        require_broker()
    with reference_target(transport, front=TRANSPORTS[transport]) as target:
        yield target


def test_contract(contract_target: ContractTarget, contract_check: Callable[[ContractTarget], None]) -> None:
    contract_check(contract_target)
