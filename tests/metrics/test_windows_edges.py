"""Per-window figures (loadgen.metrics.windows) held to exact values: the series a window keeps, each row field
and its rounding, empty and single-value histograms, windows that close or double at the limits, to_json, and
drift over a window with no TTFT."""

from __future__ import annotations

import pytest

from loadgen.errors import ConnectError
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.histograms import Metric
from loadgen.metrics.keys import ALL, Count, SeriesKey
from loadgen.metrics.turns import TurnOutcome, record_turn
from loadgen.metrics.windows import MAX_WINDOWS, WindowSeries, drift_of, window_row
from loadgen.types import Reply

T0 = 1_000_000.0
REST = SeriesKey.series("rest")
LAG = SeriesKey(ALL, ALL, 0, Metric.GENERATOR_LAG)


def _turns(ok: int = 1, failed: int = 0, ttft_s: float = 0.1) -> MetricsBatch:
    """A worker's batch as recorded (every series, per dialogue and turn too, not only the aggregate)."""
    batch = MetricsBatch()
    reply = Reply("x", t_sent=0.0, t_done=2 * ttft_s, chunk_times=[ttft_s], chunk_tokens=[1.0])
    for _ in range(ok):
        record_turn(batch, TurnOutcome("rest", "d", 1, reply, retention_checked=1))
    for _ in range(failed):
        record_turn(batch, TurnOutcome("rest", "d", 1, None, error=ConnectError("refused")))
    batch.record(LAG, 500)
    return batch


def _counts(batch: MetricsBatch, key: SeriesKey, turns: int, failures: int, checked: int, passed: int) -> None:
    for metric, n in (
        (Count.TURNS, turns),
        (Count.FAILURES, failures),
        (Count.RETENTION_CHECKED, checked),
        (Count.RETENTION_PASSED, passed),
    ):
        batch.counts[key.with_metric(metric)] += n


def test_a_window_keeps_only_the_transports_aggregate_figures_and_the_lag() -> None:
    batch = _turns(ok=2, failed=1)
    batch.record(SeriesKey(ALL, ALL, 0, str(Metric.E2E)), 1234)  # a run-wide series of a kept metric
    batch.counts[SeriesKey(ALL, ALL, 0, str(Count.TURNS))] += 3
    series = WindowSeries(T0, window_s=5.0, may_double=True)
    series.add_interval(T0, T0 + 5, batch)
    (window,) = series.closed
    assert window.wire is not None
    kept = {SeriesKey.decode(k) for k in (*window.wire["h"], *window.wire["c"])}
    assert kept == {
        REST.with_metric(Metric.E2E),
        REST.with_metric(Metric.TTFT),
        REST.with_metric(Count.TURNS),
        REST.with_metric(Count.FAILURES),
        REST.with_metric(Count.RETENTION_CHECKED),
        REST.with_metric(Count.RETENTION_PASSED),
        LAG,
    }
    assert window.wire["c"] == {
        REST.with_metric(Count.TURNS).encode(): 3,
        REST.with_metric(Count.FAILURES).encode(): 1,
        REST.with_metric(Count.RETENTION_CHECKED).encode(): 2,
        REST.with_metric(Count.RETENTION_PASSED).encode(): 2,
    }
    row = window.row["transports"]["rest"]
    assert (row["turns"], row["failures"], row["error_rate"], row["retention_rate"]) == (3, 1, 0.333333, 1.0)


def test_a_row_to_the_last_field() -> None:
    batch = MetricsBatch()
    _counts(batch, REST, turns=3, failures=1, checked=3, passed=1)
    ttft = batch.histogram(REST.with_metric(Metric.TTFT))
    for _ in range(200):
        ttft.record(123_456)
    ttft.record(987_654)  # one slow turn: the max, not the p99 of 201
    batch.histogram(REST.with_metric(Metric.E2E))  # a histogram with nothing in it
    batch.record(LAG, 4321)
    _counts(batch, SeriesKey.series("grpc"), turns=0, failures=0, checked=1, passed=0)  # no turns counted
    assert window_row(batch, 0.12345, 7.65432) == {
        "start_s": 0.123,
        "end_s": 7.654,
        "transports": {
            "grpc": {
                "turns": 0,
                "failures": 0,
                "error_rate": None,
                "ttft_ms": {"p50": None, "p99": None},
                "e2e_ms": {"p50": None, "p99": None},
                "retention_rate": 0.0,
            },
            "rest": {
                "turns": 3,
                "failures": 1,
                "error_rate": 0.333333,
                "ttft_ms": {"p50": 123.519, "p99": 123.519},
                "e2e_ms": {"p50": None, "p99": None},
                "retention_rate": 0.333333,
            },
        },
        "generator_lag_ms": {"p99": 4.323},
    }


def test_a_histogram_of_one_value_has_percentiles() -> None:
    batch = MetricsBatch()
    _counts(batch, REST, turns=1, failures=0, checked=0, passed=0)
    batch.record(REST.with_metric(Metric.E2E), 55_555)
    row = window_row(batch, 0.0, 1.0)
    assert row["transports"]["rest"]["e2e_ms"] == {"p50": 55.583, "p99": 55.583}
    assert row["transports"]["rest"]["retention_rate"] is None
    assert row["generator_lag_ms"] == {"p99": None}


def test_fixed_windows_never_merge() -> None:
    series = WindowSeries(T0, window_s=5.0)
    for k in range(MAX_WINDOWS + 4):
        series.add_interval(T0 + 5 * k, T0 + 5 * (k + 1), _turns())
    assert series.window_s == 5.0
    assert len(series.closed) == MAX_WINDOWS + 4
    assert all(w.wire is None for w in series.closed)
    assert [r["start_s"] for r in series.rows(T0 + 100)] == [5.0 * k for k in range(MAX_WINDOWS + 4)]


def test_windows_merge_once_more_than_max_windows_have_closed() -> None:
    series = WindowSeries(T0, window_s=5.0, may_double=True, cap_s=3600.0)
    for k in range(MAX_WINDOWS):
        series.add_interval(T0 + 5 * k, T0 + 5 * (k + 1), _turns())
    assert (len(series.closed), series.window_s) == (MAX_WINDOWS, 5.0)
    series.add_interval(T0 + 5 * MAX_WINDOWS, T0 + 5 * (MAX_WINDOWS + 1), _turns())
    assert series.window_s == 10.0  # doubled, not more
    assert [(w.start - T0, w.end - T0) for w in series.closed] == [(10.0 * k, 10.0 * k + 10) for k in range(8)] + [
        (80.0, 85.0)
    ]
    assert [w.row["transports"]["rest"]["turns"] for w in series.closed] == [2] * 8 + [1]
    assert all(w.wire is not None for w in series.closed)  # below the cap: may merge again


def test_an_open_window_with_nothing_kept_is_no_row() -> None:
    series = WindowSeries(T0, window_s=60.0)
    series.add_interval(T0, T0 + 5, MetricsBatch())
    assert series.rows(T0 + 7) == []
    assert series.to_json(T0 + 7) == {"window_s": 60.0, "rows": []}


def test_to_json_rounds_the_window_length_and_holds_the_open_row() -> None:
    series = WindowSeries(T0, window_s=7.12345)
    series.add_interval(T0, T0 + 5, _turns(ttft_s=0.1))
    out = series.to_json(T0 + 6.5)
    assert out["window_s"] == 7.123
    assert [(r["start_s"], r["end_s"], r["transports"]["rest"]["turns"]) for r in out["rows"]] == [(0.0, 6.5, 1)]


def test_drift_reads_a_window_with_no_ttft_as_no_value() -> None:
    series = WindowSeries(T0, window_s=10.0)
    series.add_interval(T0, T0 + 10, _turns(ok=0, failed=2))  # no TTFT at all in the first window
    for k in range(1, 5):
        series.add_interval(T0 + 10 * k, T0 + 10 * (k + 1), _turns(ok=2, ttft_s=0.1))
    rows = series.rows(T0 + 50)
    assert rows[0]["transports"]["rest"]["ttft_ms"] == {"p50": None, "p99": None}
    drift = drift_of(rows)["rest"]
    assert drift["ttft_p99"]["windows"] == 4
    assert drift["error_rate"]["windows"] == 5
    assert drift["ttft_p99"]["per_hour"] == 0.0


@pytest.mark.parametrize("now", [T0 + 3.0, T0 + 9.0])
def test_the_open_row_ends_at_now_or_at_its_start(now: float) -> None:
    series = WindowSeries(T0, window_s=20.0)
    series.add_interval(T0 + 5, T0 + 10, _turns())
    (row,) = series.rows(now)
    assert (row["start_s"], row["end_s"]) == (5.0, max(now, T0 + 5) - T0)
