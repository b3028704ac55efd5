"""The live per-turn table (Locust web UI tab): percentiles from the run's HDR histograms while it runs.

Reading a percentile walks every counter of a histogram (~0.65 ms each, FIELD-NOTES), so the table is
computed at most once per ``min_interval_s`` and reads each histogram in one pass for all its percentiles.

A snapshot is ``{"rows", "generator_lag_ms", "warnings", "updated_at"}``; :func:`display_rows` adds the lag and
the warnings to the rows as lines of their own (Locust's web UI draws an extended tab as one table). The source
is the run's aggregator, so the table follows Locust's own statistics: reset when they are reset, empty at the
start of a new test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.histograms import Metric, TrackedHistogram
from loadgen.metrics.keys import ALL, Count, SeriesKey
from loadgen.metrics.summary import GENERATOR_LAG_WARN_MS

_QS = (0.5, 0.95, 0.99)

#: Columns of the table: (key, title). Keys are what the JSON rows carry.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("transport", "Transport"),
    ("name", "Dialogue:turn"),
    ("count", "# turns"),
    ("failures", "# fails"),
    ("e2e_p50", "e2e p50 (ms)"),
    ("e2e_p95", "e2e p95 (ms)"),
    ("e2e_p99", "e2e p99 (ms)"),
    ("ttft_p50", "TTFT p50 (ms)"),
    ("ttft_p95", "TTFT p95 (ms)"),
    ("ttft_p99", "TTFT p99 (ms)"),
    ("itl_p50", "ITL p50 (ms)"),
    ("itl_p99", "ITL p99 (ms)"),
    ("tpot_p50", "TPOT p50 (ms)"),
    ("tpot_p99", "TPOT p99 (ms)"),
    ("retention", "Retention %"),
    ("slo", "SLO met %"),
)


def _ms(value_us: int) -> float:
    return round(value_us / 1000.0, 2)


def _percentiles(hist: TrackedHistogram | None, prefix: str, row: dict[str, Any], qs: tuple[float, ...]) -> None:
    names = {0.5: "p50", 0.95: "p95", 0.99: "p99"}
    if hist is None or hist.count == 0:
        for q in qs:
            row[f"{prefix}_{names[q]}"] = None
        return
    values = hist.quantiles(qs)  # one pass over the histogram
    for q in qs:
        row[f"{prefix}_{names[q]}"] = _ms(values[q])


def build_rows(batch: MetricsBatch, *, slo: bool = False) -> list[dict[str, Any]]:
    """Rows per (transport, dialogue, turn), each transport's '(all)' row after its turns. ``slo``: the run checks
    ``--slo`` objectives, so each row has the share of its turns that met them all (None without)."""
    counts = batch.counts
    turn_keys = sorted(
        {k.turn_key() for k in batch.series_keys() if k.transport != ALL},
        key=lambda tk: (tk[0], tk[1] == ALL, tk[1], tk[2]),
    )
    rows = []
    for transport, dialogue, turn in turn_keys:
        base = SeriesKey.series(transport, dialogue, turn)
        count = counts.get(base.with_metric(Count.TURNS), 0)
        if not count:
            continue
        checked = counts.get(base.with_metric(Count.RETENTION_CHECKED), 0)
        passed = counts.get(base.with_metric(Count.RETENTION_PASSED), 0)
        row: dict[str, Any] = {
            "transport": transport,
            "name": "(all)" if dialogue == ALL else f"{dialogue}:turn{turn}",
            "count": count,
            "failures": counts.get(base.with_metric(Count.FAILURES), 0),
        }
        _percentiles(batch.histograms.get(base.with_metric(Metric.E2E)), "e2e", row, _QS)
        _percentiles(batch.histograms.get(base.with_metric(Metric.TTFT)), "ttft", row, _QS)
        _percentiles(batch.histograms.get(base.with_metric(Metric.ITL)), "itl", row, (0.5, 0.99))
        _percentiles(batch.histograms.get(base.with_metric(Metric.TPOT)), "tpot", row, (0.5, 0.99))
        row["retention"] = round(100.0 * passed / checked, 1) if checked else None
        row["slo"] = round(100.0 * counts.get(base.with_metric(Count.SLO_MET), 0) / count, 1) if slo else None
        rows.append(row)
    return rows


def generator_lag(batch: MetricsBatch) -> dict[str, float | int]:
    hist = batch.histograms.get(SeriesKey(ALL, ALL, 0, Metric.GENERATOR_LAG))
    if hist is None or hist.count == 0:
        return {"count": 0}
    values = hist.quantiles((0.5, 0.99))
    return {"count": hist.count, "p50": _ms(values[0.5]), "p99": _ms(values[0.99]), "max": _ms(hist.max())}


def lag_warnings(lag: dict[str, float | int]) -> list[str]:
    p99 = lag.get("p99")
    if p99 is None or float(p99) <= GENERATOR_LAG_WARN_MS:
        return []
    return [f"load generator lag p99 is {p99} ms (> {GENERATOR_LAG_WARN_MS} ms): the generator is overloaded"]


def display_rows(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    """The table's rows, then a line with the generator's lag and one per warning (for the web UI tab)."""
    rows = list(snapshot["rows"])
    lag = snapshot.get("generator_lag_ms") or {}
    if lag.get("count"):
        rows.append({"transport": "generator lag", "name": f"p50 {lag['p50']} ms, p99 {lag['p99']} ms, "
                     f"max {lag['max']} ms"})  # fmt: skip
    rows.extend({"transport": "WARNING", "name": text} for text in snapshot.get("warnings", []))
    return rows


class LiveTable:
    """Caches the table; recomputes at most once per ``min_interval_s`` and only when the data changed.

    In a single-process run the web UI shares the process (and its one core) with the users: when one
    computation takes long (many dialogues x turns), the next waits ``cost_factor`` times as long, so the
    table never takes more than about 1/cost_factor of the generator's time.
    """

    def __init__(
        self,
        source: Callable[[], tuple[MetricsBatch, int] | None],
        min_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        cost_factor: float = 10.0,
        warnings: Callable[[], list[str]] | None = None,
        slo: Callable[[], bool] | None = None,
    ) -> None:
        self._source = source  # () -> (batch, version) or None when no run is set up
        self._warnings = warnings
        self._slo = slo  # () -> whether the test checks --slo objectives
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._computed_at: float | None = None
        self._wait_s = min_interval_s
        self._cost_factor = cost_factor
        self._version: int | None = None
        self._snapshot: dict[str, Any] = {
            "rows": [],
            "generator_lag_ms": {"count": 0},
            "warnings": [],
            "updated_at": None,
        }
        self.computations = 0

    def snapshot(self) -> dict[str, Any]:
        now = self._clock()
        if self._computed_at is not None and now - self._computed_at < self._wait_s:
            return self._snapshot
        found = self._source()
        if found is None:
            return self._snapshot
        batch, version = found
        self._computed_at = now
        if version == self._version:
            return self._snapshot
        self._version = version
        self.computations += 1
        started = time.perf_counter()
        lag = generator_lag(batch)
        self._snapshot = {
            "rows": build_rows(batch, slo=self._slo is not None and self._slo()),
            "generator_lag_ms": lag,
            "warnings": lag_warnings(lag) + (self._warnings() if self._warnings is not None else []),
            "updated_at": round(time.time(), 3),
        }
        self._wait_s = max(self._min_interval_s, self._cost_factor * (time.perf_counter() - started))
        return self._snapshot
