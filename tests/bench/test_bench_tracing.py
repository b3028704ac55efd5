"""``tests/bench/bench_tracing.py`` runs briefly and prints every arm (no timing is asserted: the figures are
recorded by hand in reports/BENCHMARKS.md, "Tracing off: cost per turn")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

BENCH = Path(__file__).with_name("bench_tracing.py")


def test_the_tracing_bench_measures_every_arm() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--conversations", "40", "--rounds", "2"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("| ")}
    for arm in ("request()", "rt.request() off", "rt.request() on", "whole turn off"):
        assert float(rows[arm].split("|")[2]) > 0, done.stdout
    assert "median: tracing off costs" in done.stdout and "fastest round: tracing off costs" in done.stdout
