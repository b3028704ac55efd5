"""Targets are checked before any user starts: one clear line for a target that cannot work."""

from __future__ import annotations

import pytest

from loadgen.errors import ConfigError
from loadgen.transports import TransportConfig, preflight
from tests.amqp_broker import BROKER_URL, NO_BROKER_PORT
from tests.conftest import require_broker


@pytest.mark.parametrize(
    ("name", "target", "message"),
    [
        ("rest", "htp://127.0.0.1:8000", "does not suit transport 'rest': expected a URL starting with http://"),
        ("grpc", "http://127.0.0.1:50051", "does not suit transport 'grpc': expected a URL starting with grpc://"),
        ("grpc", "grpc://127.0.0.1", "needs a port"),
        ("amqp", "http://127.0.0.1:5672", "does not suit transport 'amqp'"),
        ("amqp", f"amqp://guest:s3cret@127.0.0.1:{NO_BROKER_PORT}/", "connection refused to the broker at 127.0.0.1"),
    ],
)
def test_a_target_that_cannot_work_is_one_line(name: str, target: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        preflight(name, TransportConfig(target=target), timeout_s=2.0)
    assert "\n" not in str(info.value)
    assert "s3cret" not in str(info.value)


def test_a_silent_http_target_is_not_refused_before_the_run() -> None:
    preflight("rest", TransportConfig(target="http://127.0.0.1:9"), timeout_s=1.0)  # counted failures, later


def test_a_running_broker_passes() -> None:
    require_broker()
    preflight("amqp", TransportConfig(target=BROKER_URL), timeout_s=2.0)
