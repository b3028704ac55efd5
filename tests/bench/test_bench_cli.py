"""`loadgen bench` end to end, briefly: the machinery runs and prints its tables (no timing is asserted:
the figures themselves are recorded by hand in reports/BENCHMARKS.md)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.e2e


def _bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadgen", "bench", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def test_transport_bench_compares_both_arms_in_a_steady_window() -> None:
    done = _bench("rest", "-u", "2", "-t", "2", "--rounds", "1", "--max-tokens", "8")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("| ")}
    for arm in ("bare Locust user (rest)", "ConversationUser (rest)"):
        turns = int(rows[arm].split("|")[2])
        assert turns > 0, done.stdout
    assert re.search(r"ratio \(ConversationUser / bare.*\*\*\d+\.\d\dx\*\*", done.stdout), done.stdout
    assert re.search(r"per round: \d+\.\d\dx", done.stdout)


def test_capacity_bench_reports_lag_per_step() -> None:
    done = _bench("capacity", "--steps", "4", "-t", "2", "--max-tokens", "8")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("| 4 |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[3]) >= 0 and float(cells[4]) >= float(cells[3])  # lag p50 <= p99, both read
