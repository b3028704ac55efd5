"""Per-window figures of a long run, kept incrementally, and their drift.

A run is cut into windows of whole intervals (a window closes at the first interval roll at least ``window_s``
after it opened, so a window is never shorter than one interval). Each window keeps only what its row needs:
per transport the turns, failures and retention counts and the e2e and TTFT histograms of the transport's
aggregate series, plus the generator's lag. A closed window is kept as its row (a few numbers) and, while windows
may still be merged (below), its histograms encoded (a few KB); so a checkpoint's cost does not grow with the
run's length.

Window length: given (``--drift-window``), or chosen for the run: ``min(1 h, run length / 8)`` when the run's
length is known, else windows start one interval long and, whenever more than :data:`MAX_WINDOWS` have closed,
adjacent pairs are merged (exactly: HDR histograms add) and the length doubles, up to one hour. Rows
(:meth:`WindowSeries.rows`): ``{"start_s", "end_s", "transports": {name: {"turns", "failures", "error_rate",
"ttft_ms": {"p50", "p99"}, "e2e_ms": {"p50", "p99"}, "retention_rate"}}, "generator_lag_ms": {"p99"}}`` with
times in seconds from the run's start, the window still open last. :func:`drift_of` gives per transport the
Theil-Sen drift (:mod:`loadgen.analysis.drift`) of TTFT p99, e2e p99, error rate and retention rate over them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loadgen.analysis.drift import drift
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.histograms import Metric, TrackedHistogram
from loadgen.metrics.keys import ALL, Count, SeriesKey

#: The longest automatic window, and the default of ``--drift-window``'s "auto".
HOUR_S = 3600.0
#: Windows an automatic length aims at over a run of known length.
WINDOWS_PER_RUN = 8
#: Closed windows kept before adjacent pairs are merged (automatic length, run length unknown).
MAX_WINDOWS = 16
_HISTOGRAMS = (Metric.E2E, Metric.TTFT)
_COUNTS = (Count.TURNS, Count.FAILURES, Count.RETENTION_CHECKED, Count.RETENTION_PASSED)
_LAG_KEY = SeriesKey(ALL, ALL, 0, Metric.GENERATOR_LAG)


def window_length(interval_s: float, given_s: float | None, run_s: float | None) -> tuple[float, bool]:
    """(first window length, whether it may double): ``given_s`` as is; else ``min(1 h, run_s / 8)``; else one
    interval, doubling as the run goes."""
    if given_s is not None:
        return max(given_s, interval_s), False
    if run_s:
        return max(min(HOUR_S, run_s / WINDOWS_PER_RUN), interval_s), False
    return interval_s, True


def _wanted(key: SeriesKey) -> bool:
    """The series a window keeps: a transport's aggregate e2e/TTFT and counts, and the generator's lag."""
    if key == _LAG_KEY:
        return True
    return key.transport != ALL and key.dialogue == ALL and key.metric in _WANTED_METRICS


_WANTED_METRICS = frozenset(str(m) for m in (*_HISTOGRAMS, *_COUNTS))


def _ms(value_us: int) -> float:
    return round(value_us / 1000.0, 3)


def _quantiles(hist: TrackedHistogram | None, names: tuple[str, ...]) -> dict[str, float | None]:
    qs = {"p50": 0.5, "p99": 0.99}
    if hist is None or hist.count == 0:
        return dict.fromkeys(names, None)
    values = hist.quantiles(qs[n] for n in names)
    return {n: _ms(values[qs[n]]) for n in names}


def window_row(batch: MetricsBatch, start_s: float, end_s: float) -> dict[str, Any]:
    """One window's row from its batch (times already relative to the run's start)."""
    transports: dict[str, Any] = {}
    for name in sorted({k.transport for k in batch.counts if k.transport != ALL}):
        base = SeriesKey.series(name)
        turns = int(batch.counter(base.with_metric(Count.TURNS)))
        failures = int(batch.counter(base.with_metric(Count.FAILURES)))
        checked = int(batch.counter(base.with_metric(Count.RETENTION_CHECKED)))
        passed = int(batch.counter(base.with_metric(Count.RETENTION_PASSED)))
        transports[name] = {
            "turns": turns,
            "failures": failures,
            "error_rate": round(failures / turns, 6) if turns else None,
            "ttft_ms": _quantiles(batch.histograms.get(base.with_metric(Metric.TTFT)), ("p50", "p99")),
            "e2e_ms": _quantiles(batch.histograms.get(base.with_metric(Metric.E2E)), ("p50", "p99")),
            "retention_rate": round(passed / checked, 6) if checked else None,
        }
    return {
        "start_s": round(start_s, 3),
        "end_s": round(end_s, 3),
        "transports": transports,
        "generator_lag_ms": _quantiles(batch.histograms.get(_LAG_KEY), ("p99",)),
    }


@dataclass
class _Closed:
    start: float  # unix seconds
    end: float
    row: dict[str, Any]
    wire: dict[str, Any] | None  # its batch, encoded, while it may still be merged with a neighbour


@dataclass
class WindowSeries:
    """The run's windows (see the module doc). ``started_at`` is the run's start (unix seconds)."""

    started_at: float
    window_s: float
    may_double: bool = False
    cap_s: float = HOUR_S
    closed: list[_Closed] = field(default_factory=list)
    _open: MetricsBatch = field(default_factory=MetricsBatch)
    _open_start: float | None = None

    def add_interval(self, start: float, end: float, interval: MetricsBatch) -> None:
        """One closed interval (the aggregate series of ``[start, end)``): into the open window, which closes
        once it is ``window_s`` long."""
        if self._open_start is None:
            self._open_start = start
        _merge_wanted(self._open, interval)
        if end - self._open_start >= self.window_s:
            self._close(end)

    def _close(self, end: float) -> None:
        assert self._open_start is not None
        start = self._open_start
        keep = self.may_double and self.window_s < self.cap_s
        self.closed.append(
            _Closed(start, end, self._row(self._open, start, end), self._open.to_wire() if keep else None)
        )
        self._open.empty_in_place()
        self._open_start = None
        if keep and len(self.closed) > MAX_WINDOWS:
            self._double()

    def _double(self) -> None:
        """Merge adjacent pairs of closed windows; the window length doubles (up to ``cap_s``)."""
        self.window_s = min(self.window_s * 2.0, self.cap_s)
        still = self.window_s < self.cap_s
        merged: list[_Closed] = []
        for i in range(0, len(self.closed), 2):
            pair = self.closed[i : i + 2]
            batch = MetricsBatch()
            for w in pair:
                assert w.wire is not None
                batch.merge_wire(w.wire)
            start, end = pair[0].start, pair[-1].end
            merged.append(_Closed(start, end, self._row(batch, start, end), batch.to_wire() if still else None))
        self.closed = merged

    def _row(self, batch: MetricsBatch, start: float, end: float) -> dict[str, Any]:
        return window_row(batch, start - self.started_at, end - self.started_at)

    def rows(self, now: float) -> list[dict[str, Any]]:
        """Every closed window's row, then the open window's (up to ``now``) when it has data."""
        out = [w.row for w in self.closed]
        if self._open_start is not None and not self._open.is_empty():
            out.append(self._row(self._open, self._open_start, max(now, self._open_start)))
        return out

    def to_json(self, now: float) -> dict[str, Any]:
        return {"window_s": round(self.window_s, 3), "rows": self.rows(now)}


def _merge_wanted(into: MetricsBatch, batch: MetricsBatch) -> None:
    for key, hist in batch.histograms.items():
        if hist.count and _wanted(key):
            into.histogram(key).add(hist)
    for key, count in batch.counts.items():
        if _wanted(key):
            into.counts[key] += count


#: The figures whose drift summary.json gives: name -> how a row's transport entry holds it.
DRIFT_FIGURES: dict[str, tuple[str, ...]] = {
    "ttft_p99": ("ttft_ms", "p99"),
    "e2e_p99": ("e2e_ms", "p99"),
    "error_rate": ("error_rate",),
    "retention_rate": ("retention_rate",),
}


def _figure(entry: dict[str, Any] | None, path: tuple[str, ...]) -> float | None:
    value: Any = entry
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return None if value is None else float(value)


def drift_of(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per transport, the drift of each of :data:`DRIFT_FIGURES` over the rows (window middles as times; the
    first window with data is the reference): ``loadgen.analysis.drift.Drift.to_json()`` each."""
    names = sorted({name for row in rows for name in row["transports"]})
    middles = [(row["start_s"] + row["end_s"]) / 2.0 for row in rows]
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        entries = [row["transports"].get(name) for row in rows]
        out[name] = {
            figure: drift(middles, [_figure(e, path) for e in entries]).to_json()
            for figure, path in DRIFT_FIGURES.items()
        }
    return out
