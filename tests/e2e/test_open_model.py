"""The open model end to end: ``--arrival-rate`` in a real headless Locust run against the embedded reference server,
over REST, gRPC and AMQP (a real RabbitMQ broker), and split over two processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import LocustRun, run_locust

from tests.conftest import require_broker

pytestmark = pytest.mark.e2e


def _turn1_count(run: LocustRun) -> int:
    return sum(r["count"] for r in run.summary["turns"] if r["turn"] == 1)


def _check(run: LocustRun, rate: float) -> dict[str, object]:
    assert run.returncode == 0, run.output[-3000:]
    arrivals = run.summary["arrivals"]
    assert arrivals["mode"] == "constant" and arrivals["requested_per_s"] == pytest.approx(rate)
    assert arrivals["achieved_per_s"] == pytest.approx(rate, rel=0.25)  # the whole run's rate, not per process
    assert arrivals["dropped"] == 0 and arrivals["started"] == arrivals["offered"]
    assert 1 <= arrivals["live_max"] <= arrivals["max_in_flight"]
    assert arrivals["live_mean"] > 0
    # every started conversation ran its first turn (one may have been cut off at the end)
    cut = run.summary["run"]["cut_off_turns"]
    assert arrivals["started"] - cut <= _turn1_count(run) <= arrivals["started"]
    assert f"arrivals: requested {rate:.2f}/s, achieved " in run.output
    return dict(arrivals)


@pytest.mark.parametrize("transport", ["rest", "grpc", "amqp"])
def test_conversations_start_at_the_requested_rate(tmp_path: Path, transport: str) -> None:
    if transport == "amqp":
        require_broker()
    run = run_locust(tmp_path, "--transport", transport, "--arrival-rate", "4", "--arrival", "constant",
                     users=30, spawn_rate=30, run_time="8s")  # fmt: skip
    arrivals = _check(run, 4.0)
    assert arrivals["max_in_flight"] == 30


def test_two_processes_share_the_rate(tmp_path: Path) -> None:
    run = run_locust(tmp_path, "--arrival-rate", "6", "--arrival", "constant", "--processes", "2",
                     users=30, spawn_rate=30, run_time="8s", timeout=120)  # fmt: skip
    _check(run, 6.0)
    assert run.summary["run"]["processes"] == 2
