"""The transport contract: every transport meets the same end-to-end assertions against the reference server.

Each case is a real headless Locust run (scenarios/multiturn.py) against the embedded reference server
started on loopback, over REST, gRPC or AMQP (a real RabbitMQ broker).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from harness import LocustRun, run_locust

from loadgen.server.launcher import start_embedded_server
from tests.amqp_broker import BROKER_URL
from tests.conftest import require_broker

TRANSPORTS = ["rest", "grpc", "amqp"]
pytestmark = pytest.mark.e2e


def _transport_args(transport: str) -> list[str]:
    if transport == "amqp":
        require_broker()
    return ["--transport", transport]


def _assert_counts_agree(run: LocustRun, transport: str) -> dict[str, int]:
    summary = run.summary
    ours = {f"{r['dialogue']}:turn{r['turn']}": r for r in summary["turns"] if r["transport"] == transport}
    theirs = run.locust_requests()
    assert ours, f"no turns recorded; output:\n{run.output[-3000:]}"
    assert set(ours) == set(theirs), (sorted(ours), sorted(theirs))
    for name, row in ours.items():
        requests, failures = theirs[name]
        assert row["count"] == requests, name
        assert row["failures"] == failures, name
        assert row["e2e_ms"]["count"] == requests - row["failures_by_kind"]["transport"], name
    totals = {
        "requests": sum(r for r, _ in theirs.values()),
        "checked": sum(r["retention"]["checked"] for r in ours.values()),
        "passed": sum(r["retention"]["passed"] for r in ours.values()),
        "transport_failures": sum(r["failures_by_kind"]["transport"] for r in ours.values()),
    }
    return totals


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_counts_match_locust_and_retention_is_full(tmp_path: Path, transport: str) -> None:
    run = run_locust(tmp_path, *_transport_args(transport), run_time="12s", users=8)
    totals = _assert_counts_agree(run, transport)
    assert totals["requests"] >= 20, run.output[-3000:]
    assert totals["transport_failures"] == 0, run.summary["transports"][transport]["failure_reasons"]
    assert totals["checked"] > 0
    assert totals["passed"] == totals["checked"]
    assert run.returncode == 0, run.output[-3000:]
    assert "Per-turn latency" in run.output


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tiny_session_store_loses_context(tmp_path: Path, transport: str) -> None:
    run = run_locust(
        tmp_path, *_transport_args(transport), "--history", "server",
        "--embedded-server-args", "--session-capacity 2", run_time="12s", users=8,
    )  # fmt: skip
    totals = _assert_counts_agree(run, transport)
    assert totals["transport_failures"] == 0
    # the server says when it did not know a session (x-loadgen-session: new): evicted sessions are failed turns
    # of their own kind, named in the reasons, never a passed turn nor a transport failure
    row = run.summary["transports"][transport]
    assert row["failures_by_kind"]["session"] > 0, row
    assert any(reason.startswith("SessionLost") for reason in row["failure_reasons"]), row["failure_reasons"]
    assert row["failures"] >= row["failures_by_kind"]["session"] + row["failures_by_kind"]["retention"]


#: What the instrument may add over the timing floor (a bare client timing the same server at the same time).
FLOOR_MARGIN_MS = 2.0
FIXED_SERVER = ["--fixed", "--fixed-ttft-ms", "50", "--fixed-itl-ms", "10"]


def _floor_process(transport: str, url: str, seconds: float) -> subprocess.Popen[str]:
    """The timing floor (loadgen.bench.floor) in a process of its own, timing the same server meanwhile."""
    cmd = [sys.executable, "-m", "loadgen.bench.floor", "--transport", transport, "--url", url,
           "--duration", f"{seconds:g}", "--delay", "3", "--max-tokens", "20"]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _floor_result(proc: subprocess.Popen[str]) -> list[float]:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    samples: list[float] = json.loads(out)["ttft_ms"]
    assert len(samples) >= 10, (samples, err[-2000:])
    return samples


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_fixed_timing_is_measured_truthfully(tmp_path: Path, transport: str) -> None:
    # The server sends the first token 50 ms after it received the request, then one every 10 ms. Never below
    # that truth; above it by at most FLOOR_MARGIN_MS more than a bare client (no framework, one turn at a time,
    # its own process) measures against the same server in the same seconds: the way back and the machine's
    # load are in both, what the tool adds is the difference. A busy machine only ever adds delay, to the
    # tool more than to the floor: of two runs, the better one must be within the bound.
    _transport_args(transport)
    server = start_embedded_server(transport, BROKER_URL, FIXED_SERVER)
    seen = []
    try:
        url = server.urls[transport]
        for attempt in range(2):
            folder = tmp_path / f"run{attempt}"
            folder.mkdir()
            floor = _floor_process(transport, url, seconds=8)
            run = run_locust(
                folder, "--transport", transport, "--host", url, "--max-tokens", "20", run_time="12s", users=4
            )
            floor_ms = statistics.median(_floor_result(floor))
            _assert_counts_agree(run, transport)
            agg = run.summary["transports"][transport]
            assert agg["ttft_ms"]["count"] >= 10
            assert agg["ttft_ms"]["p50"] >= 49.5, agg["ttft_ms"]  # never early, in any run
            assert floor_ms >= 49.5, floor_ms
            seen.append((floor_ms, agg["ttft_ms"]["p50"], agg["itl_ms"]["p50"]))
            if agg["ttft_ms"]["p50"] <= floor_ms + FLOOR_MARGIN_MS and abs(agg["itl_ms"]["p50"] - 10.0) <= 0.5:
                return
    finally:
        server.stop()
    pytest.fail(
        f"TTFT p50 more than {FLOOR_MARGIN_MS} ms above the floor, or ITL p50 off 10 ms by more than 0.5 ms: "
        f"(floor TTFT p50, ours, our ITL p50) = {seen}"
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_two_processes_merge_exactly(tmp_path: Path, transport: str) -> None:
    run = run_locust(tmp_path, *_transport_args(transport), "--processes", "2", run_time="12s", users=8, timeout=120)
    totals = _assert_counts_agree(run, transport)
    assert totals["requests"] >= 20
    assert run.summary["run"]["processes"] >= 2  # workers that reported (a rejoining worker gets a new id)
    assert run.returncode == 0, run.output[-3000:]
