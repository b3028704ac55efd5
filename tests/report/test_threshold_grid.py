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
from loadgen.report.thresholds import (
    ALWAYS_CHECKED,
    GRAMMAR,
    ThresholdError,
    collect_thresholds,
    evaluate,
    format_results,
    load_thresholds_file,
    parse_threshold,
    parse_thresholds,
    results_json,
)

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
    with pytest.raises(ThresholdError, match=says.replace("(", r"\(").replace(")", r"\)")) as bare:
        parse_threshold(text)
    assert bare.value.expression == text and says in bare.value.problem
    assert str(bare.value) == f"bad threshold {text!r}: {bare.value.problem}\n{GRAMMAR}"
    with pytest.raises(ThresholdError) as placed:
        parse_threshold(text, where="gates.yaml, item 3")
    assert str(placed.value) == f"gates.yaml, item 3: {bare.value}"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("recovery.max < 2", "recovery needs a time unit (us, µs, ms or s), e.g. 2s"),
        ("recovery.max < -1s", "a recovery time cannot be negative"),
        ("drift.ttft.p50 < 1%/h", "drift of 'ttft.p50' is not recorded; use drift.ttft.p99, drift.e2e.p99, "
         "drift.errors, drift.retention"),
        ("drift.ttft.p99 < 1pp/h", "drift.ttft.p99 is a trend per hour: give it in %/h or ms/h, e.g. 10%/h"),
        ("drift.errors < 1%", "drift.errors is a trend per hour: give it in pp/h, e.g. 10pp/h"),
    ],
)  # fmt: skip
def test_refused_run_figures_say_exactly(text: str, problem: str) -> None:
    with pytest.raises(ThresholdError) as exc:
        parse_threshold(text)
    assert exc.value.problem == problem


def test_run_figures_at_zero_and_their_units() -> None:
    """0 is a valid recovery limit (not negative); the unit as written is kept; any time per hour reads in ms/h."""
    cases = [("recovery.max <= 0s", 0.0, "s"), ("rest.recovery.p50 < 0.5ms", 500.0, "ms"),
             ("drift.e2e.p99 < 3ms/h", 3.0, "ms/h"), ("drift.e2e.p99 < 3s/h", 3000.0, "ms/h")]  # fmt: skip
    for text, value, unit in cases:
        t = parse_threshold(text)
        assert (t.value, t.unit) == (pytest.approx(value), unit), text


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
    assert (implicit.threshold, implicit.scope, implicit.passed) == (ALWAYS_CHECKED, "whole run", False)
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


def test_result_lines_and_details_are_written_out(known: RunData) -> None:
    """The verdict line a CI log shows, written out in full for a pass and a fail of each observed kind."""
    lines = [
        r.line() for t in ("recovery.max < 2s", "drift.errors > 7pp/h") for r in evaluate(known, [parse_threshold(t)])
    ]
    assert lines == [
        "PASS recovery.max < 2s: recovery.max = 1.500 s (limit < 2.000 s) [rest]",
        "FAIL drift.errors > 7pp/h: drift of error_rate = +6.250pp/h (limit > +7.000pp/h) [rest]",
    ]


def test_recovery_and_drift_edge_cases(tmp_path: Path) -> None:
    """No outage reads exactly 0; the figures a folder may lack each give their own "no data" reason."""
    summary = _summary()
    summary["recovery"]["rest"] = {"outages": 0, "max_s": None, "p50_s": None}
    summary["outages"] = []
    summary["drift"]["rest"]["ttft_p99"] = {"windows": 5, "first": 0.0, "per_hour": 3.0, "pct_per_hour": None}
    summary["drift"]["rest"]["e2e_p99"] = {"first": None, "per_hour": None, "pct_per_hour": None}
    data = load_run(write_known_run(tmp_path / "edges", summary, _batch()))

    def one(text: str) -> Any:
        (r,) = evaluate(data, [parse_threshold(text)])
        return r

    r = one("recovery.p50 <= 0us")
    assert r.passed and r.observed == 0.0
    assert r.detail == "recovery.p50 (no outage: nothing to recover from) = 0.000 s (limit <= 0.000 s)"
    r = one("drift.ttft.p99 < 10%/h")
    assert not r.passed and r.detail.endswith(
        "the first window's ttft_p99 is 0, a relative trend is undefined; use ms/h"
    )
    r = one("drift.ttft.p99 < 4ms/h")  # the absolute trend is still there
    assert r.passed and r.observed == 3.0
    r = one("drift.e2e.p99 < 10ms/h")
    assert not r.passed and r.detail == "no data: a trend needs at least 3 windows with data (this run had 0)"
    summary["recovery"]["rest"] = {"outages": 2, "max_s": None, "p50_s": None}
    summary["outages"] = [{"transport": "rest", "start_s": 42.5, "end_s": None}]
    (tmp_path / "edges" / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    data = load_run(tmp_path / "edges")
    assert one("recovery.max < 1s").detail == "an outage from 42.5 s was still going at the end: it never recovered"
    summary["outages"] = []
    (tmp_path / "edges" / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    data = load_run(tmp_path / "edges")
    assert one("recovery.max < 1s").detail == "no data: 2 outage(s) but no recovery time"


def test_collected_thresholds_name_where_they_came_from(tmp_path: Path) -> None:
    """--threshold expressions and every file (one path or several) are collected; an error names its source."""
    gates = tmp_path / "gates.yaml"
    gates.write_text("- 'turns >= 1'\n", encoding="utf-8")
    got = collect_thresholds(["errors < 1%"], str(gates))
    assert [t.text for t in got] == ["errors < 1%", "turns >= 1"]
    assert [t.text for t in collect_thresholds(None, [str(gates), str(gates)])] == ["turns >= 1", "turns >= 1"]
    with pytest.raises(ThresholdError, match=r"^--threshold: bad threshold 'errors < 1'"):
        parse_thresholds(["errors < 1"])
    with pytest.raises(ConfigError, match=r"cannot read it \(No such file or directory\)"):
        load_thresholds_file(tmp_path / "missing.yaml")
    gates.write_text("errors: 1%\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"e\.g\.\n- 'turn5\.ttft\.p99 < 800ms'\n- 'retention >= 99%'$"):
        load_thresholds_file(gates)


#: (transport, dialogue, turn) -> (turns, failures, turns that met the SLO); dialogue "*" / turn 0 = the aggregate
SCOPED: dict[tuple[str, str, int], tuple[int, int, int]] = {
    ("rest", ALL, 0): (100, 10, 84),
    ("rest", "chat", 1): (40, 2, 30),
    ("rest", "chat", 2): (40, 3, 38),
    ("rest", "trip", 1): (20, 5, 16),
    ("grpc", ALL, 0): (50, 0, 25),
    ("grpc", "chat", 1): (50, 0, 25),
}


@pytest.fixture(scope="module")
def scoped(tmp_path_factory: pytest.TempPathFactory) -> RunData:
    """Two transports, two dialogues, two turns, each with its own counts (and an --slo run)."""
    batch = MetricsBatch()
    for (transport, dialogue, turn), (turns, failures, met) in SCOPED.items():
        key = SeriesKey(transport, dialogue, turn, Metric.E2E)
        for count, n in ((Count.TURNS, turns), (Count.FAILURES, failures), (Count.SLO_MET, met)):
            batch.counts[key.with_metric(count)] += n
        if turn == 1:  # e2e: 1,000 us in dialogue chat, 2,000 us in dialogue trip (exact in HDR)
            batch.record(key, 2000 if dialogue == "trip" else 1000)
    summary = {**_summary(), "slo": {"objectives": {"e2e.p99": 2.0}}}
    return load_run(write_known_run(tmp_path_factory.mktemp("scoped") / "run", summary, batch))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("turns >= 0", [("rest", 100.0, "turns = 100"), ("grpc", 50.0, "turns = 50")]),
        ("rest.chat.turns >= 0", [("rest", 80.0, "turns = 80")]),
        ("rest.chat.turn2.failures >= 0", [("rest", 3.0, "failures = 3")]),
        ("turn1.successes >= 0", [("rest", 53.0, "successful turns = 53"), ("grpc", 50.0, None)]),
        ("slo_attainment >= 0%", [("rest", 0.84, "SLO attainment = 84.000%"), ("grpc", 0.5, None)]),
        ("rest.turn1.slo_attainment >= 0%", [("rest", 46 / 60, "SLO attainment = 76.667%")]),
        ("rest.trip.errors >= 0%", [("rest", 0.25, "errors = 25.000%")]),
        ("grpc.goodput_per_s >= 0", [("grpc", 0.25, "goodput (turns/s within SLO) = 0.25")]),
        ("rest.turns_per_s >= 0", [("rest", 1.0, "turns/s = 1")]),
    ],
)
def test_counters_are_read_in_the_threshold_s_own_scope(
    scoped: RunData, text: str, expected: list[tuple[str, float, str | None]]
) -> None:
    results = evaluate(scoped, [parse_threshold(text)])
    assert len(results) == len(expected)
    for r, (scope, observed, detail) in zip(results, sorted(expected, key=lambda e: e[0]), strict=True):
        assert r.scope.split(",")[0] == scope and r.passed
        assert r.observed == pytest.approx(observed)
        if detail is not None:
            assert r.detail.startswith(f"{detail} (limit >= 0"), r.detail


def test_no_data_reasons_of_counters(scoped: RunData, known: RunData) -> None:
    for data, text, detail in [
        (scoped, "grpc.trip.turns >= 0", "no data: no turns in scope"),
        (known, "slo_attainment >= 0%", "no data: the run had no --slo"),
        (known, "goodput_per_s >= 0", "no data: the run had no --slo"),
    ]:
        (r,) = evaluate(data, [parse_threshold(text)])
        assert (r.passed, r.observed, r.detail) == (False, None, detail)


def test_format_results_written_out(scoped: RunData) -> None:
    assert format_results([]) == ""
    ok = evaluate(scoped, [parse_threshold("rest.turns >= 100")])
    assert format_results(ok).splitlines() == [
        "thresholds: all 1 passed",
        "  PASS rest.turns >= 100: turns = 100 (limit >= 100) [rest, all dialogues, all turns]",
    ]
    mixed = evaluate(scoped, [parse_threshold(t) for t in ("rest.turns > 100", "grpc.turns < 51", "turns < 1")])
    assert format_results(mixed).splitlines() == [
        "thresholds: 1 passed, 3 FAILED",
        "  FAIL rest.turns > 100: turns = 100 (limit > 100) [rest, all dialogues, all turns]",
        "  PASS grpc.turns < 51: turns = 50 (limit < 51) [grpc, all dialogues, all turns]",
        "  FAIL turns < 1: turns = 50 (limit < 1) [grpc, all dialogues, all turns]",
        "  FAIL turns < 1: turns = 100 (limit < 1) [rest, all dialogues, all turns]",
    ]


def test_latency_read_in_its_dialogue_and_shown_in_ms(scoped: RunData) -> None:
    (chat,) = evaluate(scoped, [parse_threshold("rest.chat.turn1.e2e.max < 2ms")])
    assert chat.passed and chat.detail == "e2e.max = 1.000 ms (limit < 2.000 ms)"
    (both,) = evaluate(scoped, [parse_threshold("rest.turn1.e2e.max < 2ms")])
    assert not both.passed and both.observed == 2000.0


@pytest.mark.parametrize("stat", ["p05", "p0", "p123", "p100", "p1000"])
def test_percentiles_that_do_not_exist_are_refused(stat: str) -> None:
    with pytest.raises(ThresholdError, match=f"unknown statistic '{stat}'"):
        parse_threshold(f"e2e.{stat} < 1s")


def test_threshold_fields_and_labels() -> None:
    drift = parse_threshold(" drift.errors < 1pp/h ")
    assert (drift.text, drift.quantile(), drift.scope_label()) == ("drift.errors < 1pp/h", None, "all transports")
    assert parse_threshold("turns >= 1").quantile() is None
    assert parse_threshold("e2e.max < 1s").quantile() is None
    assert parse_threshold("e2e.p5 < 1s").quantile() == pytest.approx(0.05)
    latency = parse_threshold("e2e.p99 < 1s")
    assert latency.scope_label() == "all transports, all dialogues, all turns"
    assert latency.scope_label("grpc") == "grpc, all dialogues, all turns"
    assert parse_threshold("rest.chat.turn2.e2e.p99 < 1s").scope_label() == "rest, dialogue chat, turn 2"


def test_scope_of_run_level_and_no_data_results(known: RunData) -> None:
    (lag,) = evaluate(known, [parse_threshold("generator_lag.max <= 1800us")])
    assert (lag.scope, lag.passed) == ("whole run", True)
    (none,) = evaluate(known, [parse_threshold("grpc.turn3.e2e.p99 < 1s")])
    assert (none.scope, none.passed) == ("grpc, all dialogues, turn 3", False)


KNOWN_METRICS = (
    "e2e, ttft, itl, tpot, e2e_from_intended, schedule_lag, generator_lag, errors, transport_errors, retention, "
    "slo_attainment, turns, failures, successes, turns_per_s, output_tokens_per_s, goodput_per_s, recovery, drift"
)


@pytest.mark.parametrize(
    ("text", "name"),
    [("rest.chat.latency.p99 < 1s", "latency"), ("rest.chat.speed < 1", "speed"), ("speed.max < 1s", "speed")],
)
def test_unknown_metric_is_named_with_the_list(text: str, name: str) -> None:
    with pytest.raises(ThresholdError) as exc:
        parse_threshold(text)
    assert exc.value.problem == f"unknown metric {name!r}; expected one of {KNOWN_METRICS}"


@pytest.mark.parametrize(
    ("text", "accepted"),
    [("errors <= 0%", True), ("errors <= 100%", True), ("errors < 100.5%", False), ("e2e.p99 <= 0us", True),
     ("turns >= 0", True), ("turns_per_s > 5/s", True), ("turns > 5/s", False), ("failures > 5/S", False)],
)  # fmt: skip
def test_limits_at_the_edges_of_their_range(text: str, accepted: bool) -> None:
    if accepted:
        assert parse_threshold(text).text == text
        return
    with pytest.raises(ThresholdError):
        parse_threshold(text)


def test_details_results_json_and_run_duration(known: RunData, tmp_path: Path) -> None:
    results = evaluate(known, [parse_threshold(t) for t in ("retention >= 90%", "output_tokens_per_s < 100")])
    assert results_json(results) == [
        {"threshold": "retention >= 90%", "scope": "rest, all dialogues, all turns", "observed": 0.9, "passed": True,
         "detail": "retention = 90.000% (limit >= 90.000%)"},
        {"threshold": "output_tokens_per_s < 100", "scope": "rest, all dialogues, all turns", "observed": 123.45,
         "passed": False, "detail": "output tokens/s = 123.45 (limit < 100)"},
    ]  # fmt: skip
    for seconds, rate in ((0.0, None), (0.5, 2000.0)):
        summary = _summary()
        summary["run"]["duration_s"] = seconds
        data = load_run(write_known_run(tmp_path / f"run{seconds}", summary, _batch()))
        (r,) = evaluate(data, [parse_threshold("turns_per_s > 0")])
        assert r.observed == rate, r.detail
        assert rate is not None or r.detail == "no data: the run has no duration"
    assert str(ThresholdError("a < 1", "why")) == f"bad threshold 'a < 1': why\n{GRAMMAR}"
    with pytest.raises(ThresholdError) as exc:
        parse_threshold("rest.chat.recovery.max < 2s")
    assert exc.value.problem.startswith("recovery is measured per transport: write [TRANSPORT.]recovery..., ")
    assert exc.value.problem.endswith(" or package.module:Class (no dialogue or turn)")


STATS_HINT = "use p50, p90, p95, p99, p999, p9999, max or mean"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("  ", "it is empty"),
        ("e2e.p99 1s", "no comparison operator; use one of < <= > >="),
        ("e2e.p99 > ", "expected LEFT OP NUMBER[UNIT], e.g. 'e2e.p99 < 2s'"),
        ("e2e.p99 = ", "expected LEFT OP NUMBER[UNIT], e.g. 'e2e.p99 < 2s'"),
        ("retention >= 0.99", "retention is a rate: write the number as a percentage, e.g. retention >= 0.99%"),
        ("p99.9 < 800ms", "write a percentile without a dot: p99.9 is p999"),
        ("generator_lag < 5ms", "generator_lag needs a statistic, e.g. generator_lag.p99"),
        ("rest.ttft < 5ms", "ttft needs a statistic, e.g. rest.ttft.p99"),
        ("rest.e2e.p05 < 1s", f"unknown statistic 'p05' for e2e; {STATS_HINT}"),
        ("rest.generator_lag.p99 < 5ms",
         "generator_lag is measured for the whole run: write generator_lag.STAT with nothing before it"),
        ("a.b.c.turn1.e2e.p99 < 1s", "too many parts before e2e: at most TRANSPORT.DIALOGUE.turnN (got 'a.b.c')"),
        ("e2e.p99 < -1ms", "a latency cannot be negative"),
        ("turn0.e2e.p99 < 1s", "turns are numbered from 1 (turn1, turn2, ...)"),
        ("ttft.p99 < 800", "ttft.p99 needs a time unit (us, µs, ms or s), e.g. 800ms"),
    ],
)  # fmt: skip
def test_refused_expressions_say_exactly(text: str, problem: str) -> None:
    with pytest.raises(ThresholdError) as exc:
        parse_threshold(text)
    assert exc.value.problem == problem


def test_a_class_transport_alone_is_not_a_metric_and_fields_are_kept() -> None:
    with pytest.raises(ThresholdError, match=r"unknown metric 'loadgen\.x:Y'"):
        parse_threshold("loadgen.x:Y < 1")
    assert parse_threshold("recovery.p50 < 1s").quantile() is None
    t = parse_threshold("rest.e2e.p99 < 800ms")
    assert (t.unit, t.stat, t.op, t.value) == ("ms", "p99", "<", 800_000.0)
