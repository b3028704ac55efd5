"""The run over time: per-interval figures read from the interval snapshots in one streaming pass.

Only what the over-time plots draw is decoded (each transport's aggregate e2e and TTFT histograms and the
generator lag; counters are plain numbers), so an 8-hour run's thousands of intervals cost one pass and a few
lists of floats, never thousands of histograms held at once. ``x`` is seconds since the run's start at the end
of each interval; latencies are milliseconds; ``None`` means the interval had no sample (never 0).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from loadgen.metrics.histograms import Metric, TrackedHistogram
from loadgen.metrics.keys import ALL, Count, SeriesKey, Total
from loadgen.report.rundata import RunData

LATENCY_QS: dict[str, float] = {"p50": 0.5, "p99": 0.99}
LAG_QS: dict[str, float] = {"p50": 0.5, "p99": 0.99, "max": 1.0}
FAILURE_KINDS: dict[str, Count] = {"transport": Count.TRANSPORT_FAILURES, "retention": Count.RETENTION_FAILURES}


@dataclass
class Timeline:
    x: list[float] = field(default_factory=list)
    lengths: list[float] = field(default_factory=list)
    #: (transport, metric, stat) -> ms per interval
    latency: dict[tuple[str, str, str], list[float | None]] = field(default_factory=lambda: defaultdict(list))
    turns: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    output_tokens: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    #: (transport, kind) -> failed turns per interval
    failures: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    #: stat -> generator lag ms per interval
    lag: dict[str, list[float | None]] = field(default_factory=lambda: defaultdict(list))

    def __len__(self) -> int:
        return len(self.x)


def _quantiles_ms(entry: list[Any] | None, metric: str, qs: dict[str, float]) -> dict[str, float | None]:
    if not entry:
        return dict.fromkeys(qs)
    hist = TrackedHistogram(metric)
    hist.add_encoded(entry[0])
    if hist.count == 0:
        return dict.fromkeys(qs)
    values = hist.quantiles([q for q in qs.values() if q < 1.0])
    return {name: (hist.max() if q >= 1.0 else values[q]) / 1000.0 for name, q in qs.items()}


def build_timeline(data: RunData) -> Timeline:
    """Per-interval figures of every transport of the run."""
    origin = data.time_origin()
    transports = data.transports()
    hist_keys = {(t, m): SeriesKey(t, ALL, 0, m).encode() for t in transports for m in (Metric.E2E, Metric.TTFT)}
    lag_key = SeriesKey(ALL, ALL, 0, Metric.GENERATOR_LAG).encode()
    out = Timeline()
    for item in data.iter_raw_intervals():
        start, end = float(item["start"]), float(item["end"])
        out.x.append(round(end - origin, 3))
        out.lengths.append(max(0.0, end - start))
        h: dict[str, list[Any]] = item.get("h", {})
        c: dict[str, float] = item.get("c", {})
        for (transport, metric), key in hist_keys.items():
            for stat, value in _quantiles_ms(h.get(key), metric, LATENCY_QS).items():
                out.latency[(transport, metric, stat)].append(value)
        for transport in transports:
            base = SeriesKey.series(transport)
            out.turns[transport].append(float(c.get(base.with_metric(Count.TURNS).encode(), 0)))
            out.output_tokens[transport].append(float(c.get(base.with_metric(Total.OUTPUT_TOKENS).encode(), 0.0)))
            for kind, count in FAILURE_KINDS.items():
                out.failures[(transport, kind)].append(float(c.get(base.with_metric(count).encode(), 0)))
        for stat, value in _quantiles_ms(h.get(lag_key), Metric.GENERATOR_LAG, LAG_QS).items():
            out.lag[stat].append(value)
    return out
