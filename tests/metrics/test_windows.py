"""Per-window figures kept incrementally (loadgen.metrics.windows) and their drift."""

from __future__ import annotations

import itertools

import pytest

from loadgen.errors import ConnectError
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.histograms import Metric
from loadgen.metrics.keys import ALL, SeriesKey
from loadgen.metrics.turns import TurnOutcome, record_turn
from loadgen.metrics.windows import MAX_WINDOWS, WindowSeries, drift_of, window_length
from loadgen.types import Reply

T0 = 1_000_000.0


def _interval(ttft_ms: float, turns: int = 10, failures: int = 0, lag_us: int = 500) -> MetricsBatch:
    """The aggregate series of one interval: ``turns`` turns with TTFT ``ttft_ms`` (e2e twice that), ``failures``
    of them failed, every other one probing a fact (passed), and one generator-lag sample."""
    batch = MetricsBatch()
    for i in range(turns):
        if i < failures:
            record_turn(batch, TurnOutcome("rest", "d", 1, None, error=ConnectError("refused")))
            continue
        reply = Reply("x", t_sent=0.0, t_done=2 * ttft_ms / 1000, chunk_times=[ttft_ms / 1000], chunk_tokens=[1.0])
        record_turn(batch, TurnOutcome("rest", "d", 1, reply, retention_checked=i % 2))
    batch.record(SeriesKey(ALL, ALL, 0, Metric.GENERATOR_LAG), lag_us)
    aggregate = MetricsBatch()
    aggregate.merge(batch, dialogue=ALL)  # what the aggregator hands over: the dialogue "*" series
    return aggregate


@pytest.mark.parametrize(
    ("interval", "given", "run", "expected"),
    [
        (5.0, None, 8 * 3600.0, (3600.0, False)),  # a night: hours
        (5.0, None, 600.0, (75.0, False)),  # a short run: its length / 8
        (5.0, None, 16.0, (5.0, False)),  # never shorter than one interval
        (5.0, 900.0, 600.0, (900.0, False)),  # given: as given
        (5.0, None, None, (5.0, True)),  # length unknown: from one interval, doubling
    ],
)
def test_the_window_length(
    interval: float, given: float | None, run: float | None, expected: tuple[float, bool]
) -> None:
    assert window_length(interval, given, run) == expected


def test_windows_close_on_interval_boundaries_with_their_own_figures() -> None:
    series = WindowSeries(T0, window_s=10.0)
    for k in range(6):  # 5 s intervals: windows of two intervals
        series.add_interval(T0 + 5 * k, T0 + 5 * (k + 1), _interval(ttft_ms=100 + 10 * k, failures=k % 2))
    rows = series.rows(now=T0 + 30)
    assert [(r["start_s"], r["end_s"]) for r in rows] == [(0.0, 10.0), (10.0, 20.0), (20.0, 30.0)]
    first = rows[0]["transports"]["rest"]
    assert (first["turns"], first["failures"], first["error_rate"]) == (20, 1, 0.05)
    assert first["retention_rate"] == 1.0
    assert first["ttft_ms"]["p50"] == pytest.approx(100.0, rel=0.01)  # 10 at 100 ms, 9 at 110 ms
    assert first["ttft_ms"]["p99"] == pytest.approx(110.0, rel=0.01)
    assert first["e2e_ms"]["p99"] == pytest.approx(220.0, rel=0.01)
    assert rows[0]["generator_lag_ms"] == {"p99": pytest.approx(0.5, rel=0.01)}


def test_the_open_window_is_a_row_until_it_closes() -> None:
    series = WindowSeries(T0, window_s=60.0)
    assert series.rows(now=T0 + 1) == []
    series.add_interval(T0, T0 + 5, _interval(ttft_ms=50))
    (row,) = series.rows(now=T0 + 7)
    assert (row["start_s"], row["end_s"], row["transports"]["rest"]["turns"]) == (0.0, 7.0, 10)


def test_a_run_of_unknown_length_merges_pairs_exactly_and_stays_small() -> None:
    series = WindowSeries(T0, window_s=5.0, may_double=True, cap_s=40.0)
    reference = MetricsBatch()
    for k in range(80):  # 400 s of 5 s intervals
        interval = _interval(ttft_ms=100 + k)
        reference.merge(interval)
        series.add_interval(T0 + 5 * k, T0 + 5 * (k + 1), interval)
        assert len(series.closed) <= MAX_WINDOWS
    assert series.window_s == 40.0  # doubled up to the cap
    rows = series.rows(now=T0 + 400)
    assert rows[0]["start_s"] == 0.0 and rows[-1]["end_s"] == 400.0
    assert all(a["end_s"] == b["start_s"] for a, b in itertools.pairwise(rows))
    assert sum(r["transports"]["rest"]["turns"] for r in rows) == 800
    # a merged window's percentiles are its histograms' (merged exactly), not an average of its halves'
    first = rows[0]
    assert first["end_s"] - first["start_s"] >= 20.0
    assert first["transports"]["rest"]["ttft_ms"]["p99"] > first["transports"]["rest"]["ttft_ms"]["p50"]
    assert all(w.wire is None for w in series.closed)  # at the cap: rows only


def test_drift_per_transport_over_the_rows() -> None:
    series = WindowSeries(T0, window_s=3600.0)
    for hour in range(6):  # TTFT p99 +20 ms an hour from 100 ms; errors flat at 10%
        series.add_interval(T0 + 3600 * hour, T0 + 3600 * (hour + 1), _interval(ttft_ms=100 + 20 * hour, failures=1))
    drift = drift_of(series.rows(now=T0 + 6 * 3600))
    assert set(drift) == {"rest"}
    ttft = drift["rest"]["ttft_p99"]
    assert ttft["windows"] == 6
    assert ttft["per_hour"] == pytest.approx(20.0, rel=0.02)
    assert ttft["pct_per_hour"] == pytest.approx(20.0, rel=0.02)  # of the first window's 100 ms
    assert drift["rest"]["error_rate"]["per_hour"] == 0.0
    assert set(drift["rest"]) == {"ttft_p99", "e2e_p99", "error_rate", "retention_rate"}
