"""One run of a transport comparison (one arm in one round), read back: its measured window and what was
measured beside it.

The measured window leaves the warm-up out: it is the run's interval snapshots (``intervals.jsonl``, or
``intervals.json``) that start at least ``warmup_s`` after the run's test start (``summary.json`` ``run.started_at``),
merged exactly; it ends with the last snapshot. A folder with no snapshots, or a warm-up of 0, is measured whole
(``histograms.json``). The generator's own lag (its p99 over the window) says whether the run measured the
transport or the generator: above :data:`LAG_LIMIT_MS` the run is *lagging*.

Beside the run (:class:`Beside`, from the comparison's ``rounds.json``): CPU samples of the Locust process (and
its children) and of the reference server, with the server's count of requests, taken every half second, read
at the window's edges by linear interpolation; and the timing floor's TTFT samples.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.histograms import Metric, TrackedHistogram
from loadgen.metrics.keys import ALL, Count, SeriesKey
from loadgen.report.rundata import RunData

#: A run whose generator lag p99 over its window passes this is lagging (left out of the verdicts unless kept).
LAG_LIMIT_MS = 5.0


@dataclass(frozen=True)
class Sample:
    """CPU seconds of the client (Locust) and the server, and the server's requests, at unix time ``at``."""

    at: float
    client_cpu_s: float | None
    server_cpu_s: float | None
    server_requests: int | None

    def to_json(self) -> list[Any]:
        return [round(self.at, 3), self.client_cpu_s, self.server_cpu_s, self.server_requests]

    @classmethod
    def from_json(cls, item: Sequence[Any]) -> Sample:
        at, client, server, requests = item
        return cls(float(at), client, server, requests)


@dataclass
class Beside:
    """What the comparison measured beside one run."""

    samples: list[Sample] = field(default_factory=list)
    floor_ms: list[float] | None = None  # the timing floor's TTFT samples, None when not measured
    floor_failures: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "samples": [s.to_json() for s in self.samples],
            "floor_ttft_ms": self.floor_ms,
            "floor_failures": self.floor_failures,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Beside:
        samples = [Sample.from_json(s) for s in data.get("samples") or []]
        return cls(samples, data.get("floor_ttft_ms"), int(data.get("floor_failures") or 0))

    def change(self, name: str, start: float, end: float) -> float | None:
        """How much the sampled figure ``name`` (a :class:`Sample` field) grew from ``start`` to ``end``."""
        points = [(s.at, float(v)) for s in self.samples if (v := getattr(s, name)) is not None]
        if len(points) < 2 or end <= start:
            return None
        a, b = _interpolate(points, start), _interpolate(points, end)
        return None if a is None or b is None else b - a


def _interpolate(points: list[tuple[float, float]], at: float) -> float | None:
    """The value at ``at`` on the line through the samples; None outside them (more than a second away)."""
    times = [t for t, _ in points]
    i = bisect_left(times, at)
    if i == 0:
        return points[0][1] if times[0] - at <= 1.0 else None
    if i == len(points):
        return points[-1][1] if at - times[-1] <= 1.0 else None
    (t0, v0), (t1, v1) = points[i - 1], points[i]
    return v0 + (v1 - v0) * (at - t0) / (t1 - t0) if t1 > t0 else v1


@dataclass
class RoundRun:
    """One arm's run in one round."""

    arm: str  # the comparison's name for the arm (usually the transport's)
    transport: str  # the transport's name in the run folder's series
    round: int  # 1-based
    data: RunData
    window: tuple[float, float]  # unix seconds measured
    batch: MetricsBatch  # the transport's aggregate series over the window
    beside: Beside | None = None
    kept: bool = True
    why_left_out: str | None = None
    figures: dict[str, Any] | None = field(default=None, repr=False)  # its figures, once taken (transports_stats)

    def hist(self, metric: Metric) -> TrackedHistogram | None:
        found = self.batch.histograms.get(SeriesKey(self.transport, ALL, 0, metric))
        return found if found is not None and found.count else None

    def count(self, name: Count) -> int:
        return int(self.batch.counter(SeriesKey(self.transport, ALL, 0, name)))

    @property
    def window_s(self) -> float:
        return max(0.0, self.window[1] - self.window[0])

    @property
    def lag_p99_ms(self) -> float | None:
        lag = self.batch.histograms.get(SeriesKey(ALL, ALL, 0, Metric.GENERATOR_LAG))
        if lag is None or not lag.count:
            return None
        return lag.quantiles([0.99])[0.99] / 1000.0

    def cpu_ms_per_turn(self, side: str) -> float | None:
        """CPU milliseconds per turn over the window: the client's per turn the run measured, the server's per
        request it counted (the floor's included), or its CPU per measured turn when it counted none."""
        if self.beside is None:
            return None
        start, end = self.window
        cpu = self.beside.change(f"{side}_cpu_s", start, end)
        turns: float | None = self.count(Count.TURNS)
        if side == "server":
            turns = self.beside.change("server_requests", start, end) or turns
        if cpu is None or not turns:
            return None
        return 1000.0 * cpu / turns


def measured(data: RunData, transport: str, warmup_s: float) -> tuple[tuple[float, float], MetricsBatch]:
    """The window after the warm-up, and the transport's aggregate series (and the generator lag) in it."""
    run = data.summary.get("run", {})
    started = float(run.get("started_at") or data.time_origin())
    ended = float(run.get("ended_at") or started + data.duration_s)
    keep = {(transport, ALL, 0), (ALL, ALL, 0)}
    if warmup_s <= 0 or not data.has_intervals():
        return (started, ended), _only(data.batch, keep)
    batch = MetricsBatch()
    first: float | None = None
    last = started + warmup_s
    for interval in data.iter_intervals():
        if interval.start < started + warmup_s - 1e-6:
            continue
        first = interval.start if first is None else first
        last = max(last, min(interval.end, ended))
        batch.merge(_only(interval.batch, keep))
    return (first if first is not None else started + warmup_s, last), batch


def _only(batch: MetricsBatch, turn_keys: set[tuple[str, str, int]]) -> MetricsBatch:
    out = MetricsBatch()
    for key, hist in batch.histograms.items():
        if key.turn_key() in turn_keys:
            out.histogram(key).add(hist)
    for key, value in batch.counts.items():
        if key.turn_key() in turn_keys:
            out.counts[key] += value
    for key, total in batch.totals.items():
        if key.turn_key() in turn_keys:
            out.totals[key] += total
    return out


def judge(run: RoundRun, *, lag_limit_ms: float = LAG_LIMIT_MS, keep_lagging: bool = False) -> RoundRun:
    """Mark a run left out of the figures and verdicts: nothing measured, or (unless ``keep_lagging``) lagging."""
    lag = run.lag_p99_ms
    if not run.count(Count.TURNS):
        run.kept, run.why_left_out = False, "no turn in the measured window"
    elif lag is not None and lag > lag_limit_ms and not keep_lagging:
        run.kept, run.why_left_out = False, f"generator lag p99 {lag:.1f} ms > {lag_limit_ms:g} ms"
    return run


__all__ = ["LAG_LIMIT_MS", "Beside", "RoundRun", "Sample", "judge", "measured"]
