"""Headless Locust runs (scenarios/multiturn.py) over adapters, against services of their APIs on loopback: one
Locust event per turn, the same figures in our report, retention checked on the decoded text, no failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adapters.amqp_example import ExampleAmqpService
from tests.adapters.grpc_example import ExampleGrpcServer
from tests.adapters.rest_servers import ProfileServer
from tests.amqp_broker import BROKER_URL, unique_queue
from tests.conftest import require_broker
from tests.e2e.harness import LocustRun, run_locust

pytestmark = pytest.mark.e2e


def assert_clean_run(run: LocustRun, transport: str) -> None:
    assert run.returncode == 0, run.output[-3000:]
    summary = run.summary
    ours = {f"{r['dialogue']}:turn{r['turn']}": r for r in summary["turns"] if r["transport"] == transport}
    theirs = run.locust_requests()
    assert ours, run.output[-3000:]
    assert set(ours) == set(theirs)
    for name, row in ours.items():
        assert (row["count"], row["failures"]) == theirs[name], name
    agg = summary["transports"][transport]
    assert agg["failures_by_kind"]["transport"] == 0, agg["failure_reasons"]
    checked = sum(r["retention"]["checked"] for r in ours.values())
    passed = sum(r["retention"]["passed"] for r in ours.values())
    assert checked > 0
    assert passed == checked, agg["failure_reasons"]
    assert agg["ttft_ms"]["count"] > 0
    assert sum(requests for requests, _ in theirs.values()) >= 10


@pytest.fixture(scope="module")
def rest_services() -> Iterator[ProfileServer]:
    server = ProfileServer().start()
    yield server
    server.stop()


@pytest.mark.parametrize(("profile", "extra"), [("ollama", []), ("rasa-rest", ["--history", "server"])])
def test_a_rest_profile_under_locust(tmp_path: Path, rest_services: ProfileServer, profile: str,
                                     extra: list[str]) -> None:  # fmt: skip
    run = run_locust(tmp_path, "--adapter", profile, "--host", rest_services.url, *extra, run_time="8s", users=4)
    assert_clean_run(run, "adapter-rest")
    assert run.summary["run"]["transports"] == ["adapter-rest"]


def test_the_grpc_example_under_locust(tmp_path: Path) -> None:
    server = ExampleGrpcServer()
    try:
        run = run_locust(tmp_path, "--adapter", "example-grpc", "--host", server.url, run_time="8s", users=4)
    finally:
        server.stop()
    assert_clean_run(run, "adapter-grpc")


@pytest.mark.amqp
def test_the_amqp_example_under_locust(tmp_path: Path) -> None:
    require_broker()
    service = ExampleAmqpService(unique_queue("loadgen.test.adapter")).start()
    try:
        run = run_locust(tmp_path, "--adapter", "example-amqp", "--host", f"{BROKER_URL}?queue={service.queue}",
                         run_time="8s", users=4)  # fmt: skip
    finally:
        service.stop()
    assert_clean_run(run, "adapter-amqp")
