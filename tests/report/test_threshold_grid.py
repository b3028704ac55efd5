"""Thresholds on a run whose every figure is known: each metric x statistic x operator evaluated with the limit a
hair below, at and a hair above the figure, so that ``<`` acting as ``<=``, ``.max`` read as the mean or
``turns_per_s`` read as the count cannot pass. The expected figures are written out here, worked out by hand from
the values recorded (all below 2,048 us: HDR histograms hold them exactly)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loadgen.errors import ConfigError
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.keys import ALL, Count, Metric, SeriesKey, Total
from loadgen.report.rundata import RunData, load_run
from loadgen.report.thresholds import ThresholdError, evaluate, load_thresholds_file, parse_threshold

#: metric -> the values recorded (microseconds), one per turn
VALUES: dict[str, list[int]] = {
    "e2e": [2 * i for i in range(1, 1001)],
    "ttft": list(range(1, 1001)),
    "itl": list(range(1, 401)),
    "schedule_lag": list(range(1, 251)),
    "generator_lag": [3 * i for i in range(1, 601)],
}
#: metric -> statistic -> the figure in microseconds (nearest rank, as HdrHistogram reads it)
EXPECTED_US: dict[str, dict[str, float]] = {
    "e2e": {"p50": 1000, "p90": 1800, "p95": 1900, "p99": 1980, "p999": 1998, "p9999": 2000, "max": 2000,
            "mean": 1001.0},
    "ttft": {"p50": 500, "p90": 900, "p95": 950, "p99": 990, "p999": 999, "p9999": 1000, "max": 1000,
             "mean": 500.5},
    "itl": {"p50": 200, "p90": 360, "p95": 380, "p99": 396, "p999": 400, "p9999": 400, "max": 400, "mean": 200.5},
    "schedule_lag": {"p50": 125, "p90": 225, "p95": 238, "p99": 248, "p999": 250, "p9999": 250, "max": 250,
                     "mean": 125.5},
    "generator_lag": {"p50": 900, "p90": 1620, "p95": 1710, "p99": 1782, "p999": 1797, "p9999": 1800, "max": 1800,
                      "mean": 901.5},
}  # fmt: skip
#: count and rate metrics: (expression's left side, the figure as written in an expression, its unit)
FIGURES: list[tuple[str, str, str]] = [
    ("turns", "1000", ""),
    ("failures", "50", ""),
    ("successes", "950", ""),
    ("turns_per_s", "10", ""),  # 1000 turns in 100 s
    ("output_tokens_per_s", "123.45", "/s"),  # 12345 tokens in 100 s
    ("errors", "5", "%"),  # 50 of 1000
    ("transport_errors", "3", "%"),  # 30 of 1000
    ("retention", "90", "%"),  # 180 of 200
    ("recovery.max", "1.5", "s"),
    ("recovery.p50", "750", "ms"),
    ("drift.ttft.p99", "12.5", "%/h"),
    ("drift.ttft.p99", "6.25", "ms/h"),
    ("drift.e2e.p99", "-4.5", "%/h"),
    ("drift.errors", "6.25", "pp/h"),  # per_hour 0.0625 (a fraction) = 6.25 percentage points
    ("drift.retention", "-12.5", "pp/h"),
]
OPERATORS = {"<": (False, False, True), "<=": (False, True, True), ">": (True, False, False), ">=": (True, True, False)}


def _batch() -> MetricsBatch:
    batch = MetricsBatch()
    for scope in (SeriesKey.series("rest"), SeriesKey.series("rest", "chat", 1)):
        for metric in ("e2e", "ttft", "itl", "schedule_lag"):
            for value in VALUES[metric]:
                batch.record(scope.with_metric(Metric(metric)), value)
        for count, n in (
            (Count.TURNS, 1000),
            (Count.FAILURES, 50),
            (Count.TRANSPORT_FAILURES, 30),
            (Count.RETENTION_FAILURES, 20),
            (Count.RETENTION_CHECKED, 200),
            (Count.RETENTION_PASSED, 180),
        ):
            batch.counts[scope.with_metric(count)] += n  # fmt: skip
        batch.totals[scope.with_metric(Total.OUTPUT_TOKENS)] += 12345.0
    for value in VALUES["generator_lag"]:
        batch.record(SeriesKey(ALL, ALL, 0, Metric.GENERATOR_LAG), value)
    return batch


def _summary(turns: int = 1000, failures: int = 50) -> dict[str, Any]:
    def drift(per_hour: float, pct: float | None) -> dict[str, Any]:
        return {"windows": 8, "first": 50.0, "per_hour": per_hour, "pct_per_hour": pct}

    return {
        "schema_version": 2,
        "run": {"id": "known", "duration_s": 100.0, "started_at": 1_760_000_000.0, "complete": True},
        "turns": [{"transport": "rest", "dialogue": "chat", "turn": 1, "count": turns, "failures": failures}],
        "transports": {"rest": {"count": turns, "failures": failures}},
        "outages": [
            {"transport": "rest", "start_s": 10.0, "end_s": 20.0, "duration_s": 10.0, "failed_turns": 9, "users": 3,
             "recovery_s": 1.5},
            {"transport": "rest", "start_s": 50.0, "end_s": 52.0, "duration_s": 2.0, "failed_turns": 2, "users": 1,
             "recovery_s": 0.0},
        ],
        "recovery": {"rest": {"outages": 2, "max_s": 1.5, "p50_s": 0.75}},
        "drift": {"rest": {"ttft_p99": drift(6.25, 12.5), "e2e_p99": drift(-2.25, -4.5),
                           "error_rate": drift(0.0625, 125.0), "retention_rate": drift(-0.125, -13.9)}},
        "warnings": [],
    }  # fmt: skip


def write_known_run(run_dir: Path, summary: dict[str, Any], batch: MetricsBatch) -> Path:
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    (run_dir / "histograms.json").write_text(json.dumps({"unit": "us", **batch.to_wire()}), encoding="utf-8")
    return run_dir


@pytest.fixture(scope="module")
def known(tmp_path_factory: pytest.TempPathFactory) -> RunData:
    return load_run(write_known_run(tmp_path_factory.mktemp("grid") / "known", _summary(), _batch()))


def _verdicts(data: RunData, lhs: str, op: str, limits: list[str]) -> tuple[bool, ...]:
    out = []
    for limit in limits:
        (result,) = evaluate(data, [parse_threshold(f"{lhs} {op} {limit}")])
        assert result.observed is not None, result.line()
        out.append(result.passed)
    return tuple(out)


LATENCY_CASES = [(m, s) for m, stats in EXPECTED_US.items() for s in stats]


@pytest.mark.parametrize("op", sorted(OPERATORS))
@pytest.mark.parametrize(("metric", "stat"), LATENCY_CASES)
def test_latency_limit_below_at_and_above(known: RunData, metric: str, stat: str, op: str) -> None:
    x = EXPECTED_US[metric][stat]
    limits = [f"{x - 0.5:g}us", f"{x:g}µs", f"{(x + 0.5) / 1000:g}ms"]
    lhs = f"{metric}.{stat}"
    assert _verdicts(known, lhs, op, limits) == OPERATORS[op], lhs
    if metric != "generator_lag":  # the transport's aggregate, and turn 1 of one dialogue, read the same values
        assert _verdicts(known, f"rest.chat.turn1.{lhs}", op, limits) == OPERATORS[op]


@pytest.mark.parametrize("op", sorted(OPERATORS))
@pytest.mark.parametrize(("lhs", "figure", "unit"), FIGURES)
def test_rate_count_recovery_and_drift_below_at_and_above(
    known: RunData, lhs: str, figure: str, unit: str, op: str
) -> None:
    x = float(figure)
    eps = 0.001
    limits = [f"{x - eps:.6f}{unit}", f"{figure}{unit}", f"{x + eps:.6f}{unit}"]
    assert _verdicts(known, lhs, op, limits) == OPERATORS[op], lhs


def test_statistics_are_told_apart(known: RunData) -> None:
    """The figures differ, so reading one for another changes a verdict: max is not the mean, a throughput is
    not a count, p999 is not p99."""
    assert EXPECTED_US["e2e"]["max"] != EXPECTED_US["e2e"]["mean"]
    (r,) = evaluate(known, [parse_threshold("turns_per_s < 11")])
    assert r.passed and r.observed == 10.0
    (r,) = evaluate(known, [parse_threshold("e2e.max > 1999us")])
    assert r.passed and r.observed == 2000.0


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("e2e.p99 < 2us", 2.0), ("e2e.p99 < 2µs", 2.0), ("e2e.p99 < 2μs", 2.0), ("e2e.p99 < 2ms", 2000.0),
     ("e2e.p99 < 2s", 2_000_000.0), ("e2e.p99 < 2 ms", 2000.0), ("e2e.p99<2ms", 2000.0),
     ("recovery.max < 1500ms", 1_500_000.0), ("rest.recovery.p50 <= 2s", 2_000_000.0),
     ("drift.ttft.p99 < 1s/h", 1000.0), ("drift.ttft.p99 < 500us/h", 0.5)],
)  # fmt: skip
def test_units(text: str, canonical: float) -> None:
    assert parse_threshold(text).value == pytest.approx(canonical)


@pytest.mark.parametrize(("op", "accepted"), [("<", True), ("<=", True), (">", True), (">=", True), ("=<", False),
                                               ("=>", False), ("==", False), ("=", False), ("!=", False)])  # fmt: skip
def test_every_operator_spelling(op: str, accepted: bool) -> None:
    if accepted:
        assert parse_threshold(f"e2e.p99 {op} 1s").op == op
        assert parse_threshold(f"errors{op}1%").op == op
        return
    with pytest.raises(ThresholdError, match=rf"operator '{op}' is not supported; use one of < <= > >="):
        parse_threshold(f"e2e.p99 {op} 1s")


@pytest.mark.parametrize(
    ("text", "says"),
    [("e2e.p99 < -1ms", "a latency cannot be negative"), ("generator_lag.max < -5us", "cannot be negative"),
     ("recovery.max < -1s", "a recovery time cannot be negative"), ("turns > -1", "turns cannot be negative"),
     ("errors < -1%", "not between 0% and 100%"), ("e2e.p99 ≤ 1s", "no comparison operator"),
     ("recovery.p99 < 1s", "recovery takes max or p50"), ("recovery.max < 2", "needs a time unit"),
     ("rest.chat.recovery.max < 2s", "measured per transport"), ("turn2.drift.errors < 1pp/h", "per transport"),
     ("drift.ttft.p50 < 10%/h", "drift of 'ttft.p50' is not recorded"), ("drift.errors < 1%/h", "in pp/h"),
     ("drift.ttft.p99 < 10%", "give it in %/h or ms/h")],
)  # fmt: skip
def test_refused(text: str, says: str) -> None:
    with pytest.raises(ThresholdError, match=says.replace("(", r"\(").replace(")", r"\)")):
        parse_threshold(text)


@pytest.mark.parametrize(
    ("content", "says"),
    [("", "holds no thresholds"), ("thresholds: []\n", "holds no thresholds"), ("- errors < 1%\n- [a, b]\n",
     "item 2: expected a string expression"), ("- 'errors < 1%'\n  bad: [\n", "not valid YAML"),
     ("errors: 1%\n", "expected a YAML list"), ("- 'errors < 1'\n", "item 1: bad threshold 'errors < 1'"),
     ("- 42\n", "item 1: expected a string expression, got 42")],
)  # fmt: skip
def test_malformed_files(tmp_path: Path, content: str, says: str) -> None:
    path = tmp_path / "gates.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=says):
        load_thresholds_file(path)
    with pytest.raises(ConfigError, match="cannot read it"):
        load_thresholds_file(tmp_path / "missing.yaml")


def test_a_run_with_no_successful_turn_fails_whatever_the_expressions(tmp_path: Path) -> None:
    batch = MetricsBatch()
    scope = SeriesKey.series("rest")
    for count, n in ((Count.TURNS, 40), (Count.FAILURES, 40), (Count.TRANSPORT_FAILURES, 40)):
        batch.counts[scope.with_metric(count)] += n
        batch.counts[SeriesKey.series("rest", "chat", 1).with_metric(count)] += n
    summary = {**_summary(turns=40, failures=40), "recovery": {"rest": {"outages": 0, "max_s": None, "p50_s": None}},
               "outages": []}  # fmt: skip
    dead = load_run(write_known_run(tmp_path / "dead", summary, batch))
    results = evaluate(dead, [parse_threshold(t) for t in ("errors <= 100%", "e2e.p99 < 1s", "recovery.max < 2s")])
    by_text = {r.threshold.text: r for r in results}
    assert by_text["errors <= 100%"].passed  # the expression alone holds ...
    assert by_text["recovery.max < 2s"].passed and "no outage" in by_text["recovery.max < 2s"].detail
    assert not by_text["e2e.p99 < 1s"].passed and by_text["e2e.p99 < 1s"].detail == "no data: no e2e samples"
    implicit = results[-1]  # ... but the run has no successful turn: the verdict fails
    assert not implicit.passed and "no successful turn: every one of the 40 turns failed" in implicit.detail
    assert evaluate(dead, []) == []


def test_no_data_scopes_fail(known: RunData, tmp_path: Path) -> None:
    for text, detail in [
        ("nochat.turns >= 0", "no data: no turns in scope"),
        ("turn7.failures < 1", "no data: no turns in scope"),
        ("grpc.e2e.p99 < 1s", "no data: no e2e samples"),
        ("grpc.recovery.max < 1s", "no data: no recovery figures for grpc"),
        ("grpc.drift.errors < 1pp/h", "no data: no drift figures for grpc"),
    ]:
        (r,) = evaluate(known, [parse_threshold(text)])
        assert not r.passed and r.detail.startswith(detail), r.line()
    summary = _summary()
    summary["outages"][1]["end_s"] = None  # still out at the end: never recovered
    summary["drift"]["rest"]["ttft_p99"] = {"windows": 2, "first": None, "per_hour": None, "pct_per_hour": None}
    del summary["recovery"]
    old = load_run(write_known_run(tmp_path / "open", summary, _batch()))
    (r,) = evaluate(old, [parse_threshold("recovery.max < 10s")])
    assert not r.passed and "no recovery figures (written before outages were recorded)" in r.detail
    summary["recovery"] = {"rest": {"outages": 2, "max_s": 1.5, "p50_s": 0.75}}
    (tmp_path / "open" / "summary.json").write_text(json.dumps(summary))
    data = load_run(tmp_path / "open")
    (r,) = evaluate(data, [parse_threshold("rest.recovery.max < 10s")])
    assert not r.passed and "still going at the end: it never recovered" in r.detail
    (r,) = evaluate(data, [parse_threshold("drift.ttft.p99 < 10%/h")])
    assert not r.passed and "a trend needs at least 3 windows with data (this run had 2)" in r.detail
