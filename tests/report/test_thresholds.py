from pathlib import Path

import pytest

from loadgen.report.rundata import load_run
from loadgen.report.thresholds import (
    GRAMMAR,
    ThresholdError,
    evaluate,
    format_results,
    load_thresholds_file,
    parse_threshold,
)


@pytest.mark.parametrize(
    ("text", "scope", "metric", "stat", "op", "value"),
    [
        ("turn5.ttft.p99 < 800ms", (None, None, 5), "ttft", "p99", "<", 800_000.0),
        ("rest.travel_booking.turn3.e2e.p95 <= 2s", ("rest", "travel_booking", 3), "e2e", "p95", "<=", 2_000_000.0),
        ("grpc.itl.p50<4ms", ("grpc", None, None), "itl", "p50", "<", 4_000.0),
        ("travel_booking.e2e.max < 1.5 s", (None, "travel_booking", None), "e2e", "max", "<", 1_500_000.0),
        ("e2e.p99 < 2s", (None, None, None), "e2e", "p99", "<", 2_000_000.0),
        ("e2e.p999 < 2500000us", (None, None, None), "e2e", "p999", "<", 2_500_000.0),
        ("ttft.avg < 300ms", (None, None, None), "ttft", "mean", "<", 300_000.0),
        ("generator_lag.p99 < 5ms", (None, None, None), "generator_lag", "p99", "<", 5_000.0),
        ("retention >= 99%", (None, None, None), "retention", None, ">=", 0.99),
        ("errors < 1%", (None, None, None), "errors", None, "<", 0.01),
        ("rest.turn2.transport_errors <= 0.5%", ("rest", None, 2), "transport_errors", None, "<=", 0.005),
        ("turns >= 100", (None, None, None), "turns", None, ">=", 100.0),
        ("turns_per_s > 2.5/s", (None, None, None), "turns_per_s", None, ">", 2.5),
    ],
)
def test_valid_expressions(
    text: str, scope: tuple[object, ...], metric: str, stat: str | None, op: str, value: float
) -> None:
    t = parse_threshold(text)
    assert (t.transport, t.dialogue, t.turn) == scope
    assert (t.metric, t.stat, t.op) == (metric, stat, op)
    assert t.value == pytest.approx(value)


def test_quantile_names() -> None:
    assert parse_threshold("e2e.p99 < 1s").quantile() == pytest.approx(0.99)
    assert parse_threshold("e2e.p999 < 1s").quantile() == pytest.approx(0.999)
    assert parse_threshold("e2e.p9999 < 1s").quantile() == pytest.approx(0.9999)
    assert parse_threshold("e2e.p50 < 1s").quantile() == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("ttft.p99 800ms", "no comparison operator"),
        ("ttft.p99 == 800ms", "operator '==' is not supported"),
        ("ttft.p99 < 800", "needs a time unit"),
        ("ttft.p99 < 800 minutes", "unknown time unit 'minutes'"),
        ("ttft.p99.9 < 800ms", "write a percentile without a dot: p99.9 is p999"),
        ("ttft.p100 < 800ms", "unknown statistic 'p100'"),
        ("ttft.median < 800ms", "unknown statistic 'median'"),
        ("ttft < 800ms", "ttft needs a statistic, e.g. ttft.p99"),
        ("latency.p99 < 800ms", "unknown metric 'latency'"),
        ("retention >= 0.99", "retention is a rate: write the number as a percentage"),
        ("errors < 120%", "not between 0% and 100%"),
        ("turns > 5ms", "turns is a plain number"),
        ("rest.generator_lag.p99 < 5ms", "generator_lag is measured for the whole run"),
        ("turn0.e2e.p99 < 1s", "numbered from 1"),
        ("turnx.e2e.p99 < 1s", "write a turn as turnN"),
        ("rest.dlg.extra.turn1.e2e.p99 < 1s", "too many parts"),
        ("turn1.rest.e2e.p99 < 1s", "must come right before the metric"),
        ("http.travel.e2e.p99 < 1s", "unknown transport 'http'"),
        ("rest..e2e.p99 < 1s", "empty name between dots"),
        ("e2e.p99 < abc", "expected LEFT OP NUMBER"),
    ],
)
def test_bad_expressions_say_what_is_wrong_and_show_the_grammar(text: str, says: str) -> None:
    with pytest.raises(ThresholdError) as info:
        parse_threshold(text, where="--threshold")
    message = str(info.value)
    assert says in info.value.problem and info.value.expression == text
    assert message == f"--threshold: bad threshold {text!r}: {info.value.problem}\n{GRAMMAR}"


def test_thresholds_file(tmp_path: Path) -> None:
    good = tmp_path / "ok.yaml"
    good.write_text("- 'turn5.ttft.p99 < 800ms'\n- retention >= 99%\n")
    assert [t.metric for t in load_thresholds_file(good)] == ["ttft", "retention"]
    mapping = tmp_path / "map.yaml"
    mapping.write_text("thresholds:\n  - errors < 1%\n")
    assert load_thresholds_file(mapping)[0].metric == "errors"
    bad = tmp_path / "bad.yaml"
    bad.write_text("- errors < 1%\n- ttft.p99 < 800\n")
    with pytest.raises(ThresholdError, match=r"bad.yaml, item 2: bad threshold 'ttft.p99 < 800': .*time unit"):
        load_thresholds_file(bad)
    not_list = tmp_path / "scalar.yaml"
    not_list.write_text("errors: 1%\n")
    with pytest.raises(Exception, match="expected a YAML list"):
        load_thresholds_file(not_list)


def test_evaluation_against_a_run(synthetic_run: Path) -> None:
    data = load_run(synthetic_run)
    summary = data.summary
    rest = summary["transports"]["rest"]
    p99 = rest["ttft_ms"]["p99"]
    exprs = [
        f"rest.ttft.p99 < {p99 + 1}ms",  # passes
        f"rest.ttft.p99 < {p99 - 1}ms",  # fails
        "errors < 50%",  # each transport checked: 2 results
        "retention >= 99.9%",  # the synthetic run misses some probes
        "turn9.e2e.p99 < 1s",  # no turn 9: cannot pass
        "generator_lag.p99 < 1s",
        "turns >= 1",
    ]
    results = evaluate(data, [parse_threshold(e) for e in exprs])
    by_text: dict[str, list[bool]] = {}
    for r in results:
        by_text.setdefault(r.threshold.text, []).append(r.passed)
    assert by_text[exprs[0]] == [True]
    assert by_text[exprs[1]] == [False]
    assert by_text["errors < 50%"] == [True, True]
    assert by_text["retention >= 99.9%"] == [False, False]
    assert by_text["turn9.e2e.p99 < 1s"] == [False, False]
    assert by_text["generator_lag.p99 < 1s"] == [True]
    text = format_results(results)
    assert "FAILED" in text
    assert "no data: no e2e samples" in text


def test_turn_scope_merges_dialogues_exactly(synthetic_run: Path) -> None:
    data = load_run(synthetic_run)
    merged = data.histogram("e2e", transport="rest", turn=2)
    parts = [data.histogram("e2e", transport="rest", dialogue=d, turn=2) for d in ("coding_help", "travel_booking")]
    assert merged.count == sum(p.count for p in parts)
    assert data.counter("count", "rest", None, 2) == sum(
        r["count"] for r in data.summary["turns"] if r["transport"] == "rest" and r["turn"] == 2
    )


@pytest.mark.parametrize("command", ["report", "compare"])
def test_thresholds_files_repeat_and_mean_the_same_in_report_and_compare(
    synthetic_run: Path, tmp_path: Path, command: str
) -> None:
    from report_helpers import run_command

    from loadgen.report import cli, compare_cli

    passing, breaking = tmp_path / "pass.yaml", tmp_path / "break.yaml"
    passing.write_text("- turns >= 1\n")
    breaking.write_text("thresholds:\n  - turns >= 100000000\n")
    module, runs = (cli, [str(synthetic_run), "--no-html", "-q"]) if command == "report" else (
        compare_cli, [str(synthetic_run), str(synthetic_run)]
    )  # fmt: skip
    assert run_command(module, [*runs, "--thresholds-file", str(passing)]) == 0
    both = [*runs, "--thresholds-file", str(passing), "--thresholds-file", str(breaking), "--threshold", "errors < 50%"]
    assert run_command(module, both) == 3


def test_a_plug_in_transport_or_a_class_is_a_transport_in_a_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any registered transport (here a plug-in's entry point) and package.module:Class name a transport."""
    from report_helpers import make_run

    from loadgen.transports import plugins

    monkeypatch.setattr(plugins, "entry_points", lambda: {"websocket": object()})
    spec = "my_pkg.transports:ChatTransport"
    cases = {
        "websocket.e2e.p99 < 10s": ("websocket", None, None),
        "websocket.travel_booking.turn2.errors < 50%": ("websocket", "travel_booking", 2),
        f"{spec}.ttft.p95 < 10s": (spec, None, None),
        f"{spec}.coding_help.turn3.e2e.p50 < 10s": (spec, "coding_help", 3),
        f"{spec}.recovery.max < 2s": (spec, None, None),
        "websocket.recovery.p50 < 2s": ("websocket", None, None),
    }
    for text, scope in cases.items():
        t = parse_threshold(text)
        assert (t.transport, t.dialogue, t.turn) == scope, text
    with pytest.raises(
        ThresholdError, match=r"unknown transport 'smtp'; use a registered one \(amqp, grpc, rest, websocket"
    ):
        parse_threshold("smtp.travel_booking.e2e.p99 < 1s")
    assert "TRANSPORT is a registered transport (`loadgen transports`" in GRAMMAR
    run = make_run(tmp_path / "reports", "plug", transports=("websocket", spec), intervals=2)
    results = evaluate(
        load_run(run), [parse_threshold(t) for t in ("websocket.e2e.p99 < 10s", f"{spec}.ttft.p95 < 10s")]
    )
    assert [(r.passed, r.scope.split(",")[0], r.observed is not None) for r in results] == [
        (True, "websocket", True),
        (True, spec, True),
    ]
