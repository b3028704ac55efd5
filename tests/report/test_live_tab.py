"""The web UI tab's snapshot (loadgen.report.live): the generator's lag and the run's warnings beside the rows,
shown as lines of the one table Locust draws, and a table that follows its source (a reset, a new test)."""

from __future__ import annotations

from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.histograms import Metric
from loadgen.metrics.keys import ALL, SeriesKey
from loadgen.metrics.turns import TurnOutcome, record_turn
from loadgen.report.live import LiveTable, display_rows
from loadgen.types import Reply

LAG = SeriesKey(ALL, ALL, 0, Metric.GENERATOR_LAG)


def _batch(turns: int, lag_us: int) -> MetricsBatch:
    batch = MetricsBatch()
    for _ in range(turns):
        record_turn(batch, TurnOutcome("rest", "d", 1, Reply("x", 0.0, 0.1, chunk_times=[0.05], chunk_tokens=[1])))
    for _ in range(100):
        batch.record(LAG, lag_us)
    return batch


def test_the_tab_shows_the_generators_lag_and_the_warnings() -> None:
    batch = _batch(3, lag_us=9_000)  # the histogram reads 9.01 ms (3 significant digits)
    table = LiveTable(lambda: (batch, 1), warnings=lambda: ["worker w1 is missing (no heartbeat)"])
    snapshot = table.snapshot()
    assert snapshot["generator_lag_ms"]["p99"] == 9.01
    assert snapshot["warnings"] == [
        "load generator lag p99 is 9.01 ms (> 5.0 ms): the generator is overloaded",
        "worker w1 is missing (no heartbeat)",
    ]
    rows = display_rows(snapshot)
    assert [r["name"] for r in rows[:2]] == ["d:turn1", "(all)"]
    assert rows[2] == {"transport": "generator lag", "name": "p50 9.01 ms, p99 9.01 ms, max 9.01 ms"}
    assert [r["transport"] for r in rows[3:]] == ["WARNING", "WARNING"]


def test_the_table_follows_its_source_through_a_reset() -> None:
    source = {"batch": _batch(5, lag_us=100), "version": 1}
    now = [0.0]
    table = LiveTable(lambda: (source["batch"], source["version"]), clock=lambda: now[0])
    assert table.snapshot()["rows"][-1]["count"] == 5
    assert table.snapshot()["warnings"] == []
    source["batch"], source["version"] = MetricsBatch(), 2  # Locust's reset: the aggregator starts again
    now[0] += 1.0
    assert table.snapshot()["rows"] == []
    source["batch"], source["version"] = _batch(2, lag_us=100), 3
    now[0] += 1.0
    assert table.snapshot()["rows"][-1]["count"] == 2
