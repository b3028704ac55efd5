"""`loadgen bench` end to end, briefly: the machinery runs and prints its tables (no timing is asserted:
the figures themselves are recorded by hand in reports/BENCHMARKS.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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


def test_transports_bench_runs_the_arms_together_and_gives_ratios_to_rest() -> None:
    done = _bench("transports", "--transports", "grpc", "-u", "2", "-t", "2", "--rounds", "1", "--max-tokens", "8")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("| ")}
    for transport in ("rest", "grpc"):  # REST added as the baseline
        assert int(rows[transport].split("|")[2]) > 0, done.stdout
    assert "**1.00x**" in rows["rest"]
    assert re.search(r"\*\*\d+\.\d\dx\*\* \| \d+\.\d\dx \|", rows["grpc"]), done.stdout
    assert re.search(r"server CPU µs per turn .*, per round: [\d,]+$", done.stdout.strip()), done.stdout


def test_capacity_bench_reports_lag_per_step() -> None:
    done = _bench("capacity", "--steps", "4", "-t", "2", "--max-tokens", "8")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("| 4 |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[3]) >= 0 and float(cells[4]) >= float(cells[3])  # lag p50 <= p99, both read
    assert re.fullmatch(r"\d+\.\d \(\d+\.\d%\)", cells[8]), row  # the checkpoints were written, and timed


@pytest.mark.parametrize(
    ("checkpoints", "shown"),
    [({"cpu_mean_ms": 12.0, "interval_s": 5.0}, "12.0 (0.2%)"),
     ({"cpu_mean_ms": 50.0, "interval_s": 0.5}, "50.0 (10.0%)"),
     ({"cpu_mean_ms": None, "interval_s": 5.0}, "-"), ({}, "-")],
)  # fmt: skip
def test_checkpoint_cost_is_cpu_per_write_and_its_share_of_a_core(checkpoints: dict[str, object], shown: str) -> None:
    from loadgen.bench.cli import checkpoint_cost

    assert checkpoint_cost(checkpoints) == shown


# --- an arm that recorded nothing never becomes a ratio (unit tests of the retry piece, no processes) ---------
def _arm(**overrides: object) -> dict[str, object]:
    arm: dict[str, object] = {
        "window": True, "turns": 100, "failures": 0, "cpu_s": 1.0, "wall_s": 5.0, "server_cpu_s": 0.5,
        "whole_turns": 120, "whole_cpu_s": 2.0, "rc": 0, "tail": "TAIL",
    }  # fmt: skip
    arm.update(overrides)
    return arm


@pytest.mark.parametrize(
    ("overrides", "says"),
    [({"rc": -9}, "exited with code -9"), ({"window": False, "turns": 0, "cpu_s": 0.0}, "no steady-state window"),
     ({"turns": 0}, "no turn finished"), ({"failures": 100}, "every one of its 100 turns in the window failed"),
     ({"cpu_s": 0.0}, "no CPU time")],
)  # fmt: skip
def test_arm_problem_says_why(overrides: dict[str, object], says: str) -> None:
    from loadgen.bench.cli import arm_problem

    assert arm_problem(_arm()) is None
    problem = arm_problem(_arm(**overrides))
    assert problem is not None and says in problem


def test_a_round_that_measured_nothing_is_run_again(capsys: pytest.CaptureFixture[str]) -> None:
    from loadgen.bench.cli import measure_rounds

    results = iter([(_arm(window=False, turns=0), _arm()), (_arm(turns=80), _arm(turns=90))])
    bare, ours, failure = measure_rounds(1, lambda: next(results))
    assert failure is None and [b["turns"] for b in bare] == [80] and [o["turns"] for o in ours] == [90]
    assert "round 1, try 1 of 3: bare arm: its probe recorded no steady-state window" in capsys.readouterr().err


def test_a_round_that_never_measures_fails_with_the_reason_and_no_ratio(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse

    from loadgen.bench import cli

    calls = []

    def never() -> tuple[dict[str, object], dict[str, object]]:
        calls.append(1)
        return _arm(), _arm(turns=0, tail="last lines of its log")

    bare, ours, failure = cli.measure_rounds(2, never)
    assert len(calls) == 3 and bare == [] and ours == []
    assert failure is not None and failure.startswith("round 1 measured nothing in 3 tries: ours arm: no turn finished")
    assert "last lines of its log" in failure
    # the command prints the reason and no ratio at all
    server = argparse.Namespace(urls={"rest": "http://x"}, proc=argparse.Namespace(pid=1), stop=lambda: None)
    monkeypatch.setattr(cli, "_server", lambda *a: server)
    monkeypatch.setattr(cli, "measure_rounds", lambda rounds, run_round: ([], [], failure))
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    assert cli.bench_transport(parser.parse_args(["rest", "--rounds", "1"])) == 1
    captured = capsys.readouterr()
    assert "bench rest: FAILED, no ratio: round 1 measured nothing" in captured.err
    assert "x**" not in captured.out and "0.00x" not in captured.out + captured.err


def test_the_scenario_is_found_from_anywhere_or_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from loadgen.bench.cli import DEFAULT_SCENARIO, scenario_path
    from loadgen.cli import main

    monkeypatch.chdir(tmp_path)  # no scenarios/ here: the one beside the package
    assert scenario_path(None) == REPO_ROOT / DEFAULT_SCENARIO
    (tmp_path / "mine.py").write_text("")
    assert scenario_path("mine.py") == tmp_path / "mine.py"
    assert main(["bench", "transports", "--scenario", "missing.py"]) == 2  # before any server starts
    assert (
        capsys.readouterr().err == "loadgen bench: --scenario missing.py: no such file; give the path of a locustfile\n"
    )
