"""One step of a sweep read back from a run folder: the steady window without the warm-up, the figures over it,
the SLOs checked on it, and whether the step holds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))

from report_helpers import make_run, update_summary

from loadgen.load.sweep_plan import parse_slos
from loadgen.load.sweep_step import evaluate_step
from loadgen.metrics.keys import ALL, Count, SeriesKey
from loadgen.report.rundata import load_run


def _slow_warmup(index: int) -> float:
    return 40.0 if index == 0 else 1.0  # the first 5 s interval is 40x slower: the warm-up


def test_the_steady_window_leaves_the_warmup_out(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "step", transports=("rest",), scale_at=_slow_warmup, failure_every=10)
    data = load_run(run_dir)
    intervals = data.intervals
    steady = intervals[1:]
    turns = sum(i.batch.counter(SeriesKey("rest", ALL, 0, Count.TURNS)) for i in steady)
    failures = sum(i.batch.counter(SeriesKey("rest", ALL, 0, Count.FAILURES)) for i in steady)
    window = steady[-1].end - steady[0].start

    whole = evaluate_step(run_dir, "rest", 8, "users", warmup_s=0, slos=None, max_error_rate=0.2)
    step = evaluate_step(run_dir, "rest", 8, "users", warmup_s=5, slos=None, max_error_rate=0.2)
    assert step.window_s == pytest.approx(window) and whole.window_s > step.window_s
    assert step.turns == turns < whole.turns
    assert step.turns_per_s == pytest.approx((turns - failures) / window)  # successful turns per second
    assert step.error_rate == pytest.approx(failures / turns) and 0.05 < step.error_rate < 0.2
    # the warm-up's slow turns are out of the steady figures
    assert step.e2e_ms["p99"] is not None and whole.e2e_ms["p99"] is not None
    assert step.e2e_ms["p99"] * 5 < whole.e2e_ms["p99"]
    assert set(step.ttft_ms) == {"p50", "p95", "p99", "mean"}
    assert step.generator_lag_p99_ms is not None and 0 < step.generator_lag_p99_ms <= 3.0
    assert step.slo_held is None and step.holds  # no SLO given: error rate and lag decide
    strict = evaluate_step(run_dir, "rest", 8, "users", warmup_s=5, slos=None, max_error_rate=0.01)
    assert not strict.holds and strict.why_not == f"error rate {100 * step.error_rate:.2f}% > 1%"


def test_slos_are_checked_on_the_steady_window(tmp_path: Path) -> None:
    run_dir = make_run(
        tmp_path,
        "slo",
        transports=("rest", "grpc"),
        scale_at=_slow_warmup,
        failure_every=1000,
        retention_miss_every=10**6,
    )
    whole = evaluate_step(run_dir, "rest", 8, "users", warmup_s=0, slos=None, max_error_rate=0.01)
    steady = evaluate_step(run_dir, "rest", 8, "users", warmup_s=5, slos=None, max_error_rate=0.01)
    assert steady.e2e_ms["p99"] is not None and whole.e2e_ms["p99"] is not None
    limit = (steady.e2e_ms["p99"] + whole.e2e_ms["p99"]) / 2  # between the steady p99 and the whole run's
    slos = parse_slos([f"e2e.p99 < {limit:.0f}ms", "grpc.ttft.p50 < 1us", "errors < 1%"])

    step = evaluate_step(run_dir, "rest", 8, "users", warmup_s=5, slos=slos, max_error_rate=0.01)
    assert step.slo_checks is not None
    assert [c.objective for c in step.slo_checks] == [slos[0].text, "errors < 1%"]  # grpc's is not rest's
    assert step.slo_held and step.holds
    assert step.slo_checks[0].value_ms == pytest.approx(steady.e2e_ms["p99"], rel=0.01)
    assert step.slo_checks[1].value_ms is None and step.slo_checks[1].held

    grpc = evaluate_step(run_dir, "grpc", 8, "users", warmup_s=5, slos=slos, max_error_rate=0.01)
    assert grpc.slo_checks is not None and not grpc.slo_held and not grpc.holds
    assert not next(c for c in grpc.slo_checks if c.objective.startswith("grpc.")).held

    cold = evaluate_step(run_dir, "rest", 8, "users", warmup_s=0, slos=slos, max_error_rate=0.01)
    assert cold.slo_checks is not None and not cold.slo_checks[0].held and not cold.holds
    assert cold.why_not == f"SLO broken: {slos[0].text}" and step.why_not is None


def test_a_turn_scoped_slo_is_checked_over_the_whole_run(tmp_path: Path) -> None:
    run_dir = make_run(
        tmp_path, "turns", transports=("rest",), scale_at=_slow_warmup, failure_every=1000, retention_miss_every=10**6
    )
    whole = load_run(run_dir).histogram("e2e", "rest", None, 3)
    p99_ms = whole.quantiles([0.99])[0.99] / 1000.0
    slos = parse_slos([f"turn3.e2e.p99 < {p99_ms * 1.05:.1f}ms", f"turn3.e2e.p99 > {p99_ms * 0.95:.1f}ms"])
    step = evaluate_step(run_dir, "rest", 8, "users", warmup_s=5, slos=slos, max_error_rate=0.01)
    assert step.slo_checks is not None and [c.held for c in step.slo_checks] == [True, True]
    assert step.slo_checks[0].value_ms == pytest.approx(p99_ms, rel=0.01)


def test_goodput_comes_from_the_runs_slo_rows(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "good", transports=("rest",))
    assert evaluate_step(run_dir, "rest", 2, "rate", warmup_s=5, slos=None, max_error_rate=0.1).goodput is None
    summary = update_summary(run_dir)
    summary["transports"]["rest"]["slo"] = {"met": 100, "attainment": 0.9, "goodput_per_s": 12.5}
    update_summary(run_dir, transports=summary["transports"])
    step = evaluate_step(run_dir, "rest", 2, "rate", warmup_s=5, slos=None, max_error_rate=0.1)
    assert step.goodput == 12.5 and step.to_json()["goodput"] == 12.5 and step.to_json()["mode"] == "rate"


def test_a_lagging_generator_or_a_missing_folder_does_not_hold(tmp_path: Path) -> None:
    run_dir = make_run(
        tmp_path, "lag", transports=("rest",), lag_us=(6_000, 9_000), failure_every=1000, retention_miss_every=10**6
    )
    step = evaluate_step(run_dir, "rest", 8, "users", warmup_s=5, slos=None, max_error_rate=0.01)
    assert step.generator_lag_p99_ms is not None and step.generator_lag_p99_ms > 5.0
    assert step.error_rate == 0 and not step.holds
    assert step.why_not == f"generator lag p99 {step.generator_lag_p99_ms:.1f} ms > 5 ms"
    assert evaluate_step(run_dir, "rest", 8, "users", warmup_s=5, slos=None, max_error_rate=0.01, lag_limit_ms=10).holds
    gone = evaluate_step(tmp_path / "nothing", "rest", 8, "users", warmup_s=5, slos=None, max_error_rate=0.01)
    assert gone.run_dir is None and gone.note is not None and gone.note.startswith("no results: ")
    assert not gone.holds and gone.turns == 0
    other = evaluate_step(run_dir, "grpc", 8, "users", warmup_s=5, slos=None, max_error_rate=0.01)
    assert other.note == other.why_not == "no turn in the measured window" and not other.holds


def test_the_window_ends_with_the_steps_measured_time(tmp_path: Path) -> None:
    """The users' stop (the run goes on past -t while dialogues finish) is left out: only the snapshots that start
    within the measured time count."""
    run_dir = make_run(tmp_path, "stop", transports=("rest",), intervals=5)
    intervals = load_run(run_dir).intervals
    kept = intervals[1:3]  # 5 s of warm-up, then 10 s measured
    turns = sum(i.batch.counter(SeriesKey("rest", ALL, 0, Count.TURNS)) for i in kept)
    step = evaluate_step(run_dir, "rest", 8, "users", warmup_s=5, slos=None, max_error_rate=0.2, step_s=10)
    assert step.window_s == pytest.approx(kept[-1].end - kept[0].start) == pytest.approx(10.0)
    assert step.turns == turns
    whole = evaluate_step(run_dir, "rest", 8, "users", warmup_s=5, slos=None, max_error_rate=0.2)
    assert whole.window_s == pytest.approx(20.0) and whole.turns > step.turns
