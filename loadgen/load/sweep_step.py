"""One step of a load sweep, read back from its run folder: what it measured in its steady state, and whether it
held.

The steady state leaves the warm-up and the users' stop out: the run's interval snapshots that start at least
``warmup_s`` after the run's start and before the step's measured time is over, merged exactly
(:func:`loadgen.report.transports_rounds.measured`, as a transport comparison cuts its runs). Over that window:
turns per second (successful turns), the error rate (failed turns / turns), the e2e and TTFT percentiles and the
generator's own lag p99.

The SLOs (``--slo``, the threshold grammar of :mod:`loadgen.report.threshold_grammar`) are checked by the sweep
itself on the steady window's histograms and counters; an objective scoped to a dialogue or a turn, a recovery or a
drift is checked over the whole run (the interval snapshots keep only each transport's aggregate series). An
objective naming another transport does not apply to the step. Goodput (turns per second that met every per-turn
SLO) is read from the run's ``summary.json`` when the run computed it (its ``slo`` rows), else it is unknown.

A step *holds* (:meth:`loadgen.analysis.knee.Step.holds`) when every SLO held, its error rate stayed within the
limit and the generator lag p99 stayed under its limit (5 ms unless the sweep sets another). A step with no run
folder, or no turn in its window, does not.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen.analysis.knee import GENERATOR_LAG_LIMIT_MS, Step
from loadgen.errors import ConfigError
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.histograms import Metric
from loadgen.metrics.keys import ALL, Count, SeriesKey
from loadgen.report.rundata import RunData, load_run
from loadgen.report.thresholds import ALWAYS_CHECKED, Threshold, evaluate
from loadgen.report.transports_rounds import _only, measured

#: The percentiles of a latency block, as sweep.json writes them.
LATENCY_STATS: tuple[str, ...] = ("p50", "p95", "p99", "mean")


@dataclass(frozen=True)
class SloCheck:
    """One objective checked on one step."""

    objective: str
    held: bool
    value_ms: float | None  # a latency's observed value; None for other figures or no data
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"objective": self.objective, "value_ms": self.value_ms, "held": self.held, "detail": self.detail}


@dataclass
class StepResult:
    """One measured step of one transport."""

    transport: str
    load: float  # users (closed model) or new conversations per second (open model)
    mode: str  # "users" or "rate"
    run_dir: Path | None  # None: the step produced no run folder
    turns: int = 0
    window_s: float = 0.0
    turns_per_s: float = 0.0
    goodput: float | None = None
    e2e_ms: dict[str, float | None] = field(default_factory=dict)
    ttft_ms: dict[str, float | None] = field(default_factory=dict)
    error_rate: float = 1.0
    generator_lag_p99_ms: float | None = None
    slo_checks: list[SloCheck] | None = None  # None: no --slo given
    note: str | None = None  # why the step has nothing to judge
    lag_limit_ms: float = GENERATOR_LAG_LIMIT_MS
    holds: bool = False
    why_not: str | None = None  # why it does not hold (set by :meth:`judge`)

    @property
    def slo_held(self) -> bool | None:
        return None if self.slo_checks is None else all(c.held for c in self.slo_checks)

    def step(self) -> Step:
        """The step as :mod:`loadgen.analysis.knee` judges it (no SLO given: the SLOs held)."""
        held = self.slo_held is not False and self.note is None
        return Step(
            self.load,
            self.turns_per_s,
            self.goodput,
            held,
            self.error_rate,
            self.generator_lag_p99_ms,
            self.lag_limit_ms,
        )

    def judge(self, max_error_rate: float) -> StepResult:
        self.holds = self.step().holds(max_error_rate)
        self.why_not = self._why_not(max_error_rate)
        return self

    def _why_not(self, max_error_rate: float) -> str | None:
        """Why the step does not hold, in a few words; None when it holds."""
        if self.holds:
            return None
        if self.note is not None:
            return self.note
        why = []
        if self.slo_held is False:
            why.append("SLO broken: " + ", ".join(c.objective for c in self.slo_checks or [] if not c.held))
        if self.error_rate > max_error_rate:
            why.append(f"error rate {100 * self.error_rate:.2f}% > {100 * max_error_rate:g}%")
        lag = self.generator_lag_p99_ms
        if lag is None or lag > self.lag_limit_ms:
            why.append(f"generator lag p99 {'unknown' if lag is None else f'{lag:.1f} ms'} > {self.lag_limit_ms:g} ms")
        return "; ".join(why)

    def to_json(self, base: Path | None = None) -> dict[str, Any]:
        run_dir = None
        if self.run_dir is not None:
            run_dir = str(self.run_dir.relative_to(base)) if base is not None else str(self.run_dir)
        return {
            "load": json_load(self.load),
            "mode": self.mode,
            "turns": self.turns,
            "window_s": round(self.window_s, 3),
            "turns_per_s": round(self.turns_per_s, 3),
            "goodput": None if self.goodput is None else round(self.goodput, 3),
            "e2e_ms": self.e2e_ms,
            "ttft_ms": self.ttft_ms,
            "error_rate": round(self.error_rate, 6),
            "generator_lag_p99_ms": self.generator_lag_p99_ms,
            "slo_held": self.slo_held,
            "slo_checks": None if self.slo_checks is None else [c.to_json() for c in self.slo_checks],
            "holds": self.holds,
            "why_not": self.why_not,
            "note": self.note,
            "run_dir": run_dir,
        }


def steady(
    data: RunData, transport: str, warmup_s: float, step_s: float | None
) -> tuple[tuple[float, float], MetricsBatch]:
    """The window measured (unix seconds) and the transport's aggregate series (and the generator lag) in it: the
    interval snapshots that start after the warm-up and within ``step_s`` of its end (None: up to the run's end;
    the users' stop is left out). A folder without snapshots is measured whole."""
    if step_s is None or not data.has_intervals():
        return measured(data, transport, warmup_s)
    run = data.summary.get("run", {})
    started = float(run.get("started_at") or data.time_origin())
    ended = float(run.get("ended_at") or started + data.duration_s)
    low, high = started + warmup_s - 1e-6, started + warmup_s + step_s - 1e-6
    batch = MetricsBatch()
    first: float | None = None
    last = low
    for interval in data.iter_intervals():
        if not low <= interval.start < high:
            continue
        first = interval.start if first is None else first
        last = max(last, min(interval.end, ended))
        batch.merge(_only(interval.batch, {(transport, ALL, 0), (ALL, ALL, 0)}))
    return (first if first is not None else low, last), batch


def json_load(load: float) -> float | int:
    """A load as JSON writes it: 10 users as 10, 2.5 conversations/s as 2.5."""
    return int(load) if float(load).is_integer() else load


def _latency(batch: MetricsBatch, transport: str, metric: Metric) -> dict[str, float | None]:
    hist = batch.histograms.get(SeriesKey(transport, ALL, 0, metric))
    if hist is None or not hist.count:
        return dict.fromkeys(LATENCY_STATS)
    q = hist.quantiles([0.5, 0.95, 0.99])
    return {
        "p50": round(q[0.5] / 1000.0, 3),
        "p95": round(q[0.95] / 1000.0, 3),
        "p99": round(q[0.99] / 1000.0, 3),
        "mean": round(hist.mean() / 1000.0, 3),
    }


def _lag_p99_ms(batch: MetricsBatch) -> float | None:
    lag = batch.histograms.get(SeriesKey(ALL, ALL, 0, Metric.GENERATOR_LAG))
    if lag is None or not lag.count:
        return None
    return round(lag.quantiles([0.99])[0.99] / 1000.0, 3)


def _goodput(summary: dict[str, Any], transport: str) -> float | None:
    row = (summary.get("transports") or {}).get(transport) or {}
    value = (row.get("slo") or {}).get("goodput_per_s")
    return None if value is None else float(value)


def check_slos(data: RunData, steady: RunData, transport: str, slos: list[Threshold]) -> list[SloCheck]:
    """Each objective that applies to ``transport``: aggregate figures on the steady window, the rest on the
    whole run."""
    checks = []
    for slo in slos:
        if slo.transport is not None and slo.transport != transport:
            continue
        scoped = slo.dialogue is not None or slo.turn is not None or slo.kind in ("recovery", "drift")
        own = slo if slo.metric == Metric.GENERATOR_LAG else dataclasses.replace(slo, transport=transport)
        results = [r for r in evaluate(data if scoped else steady, [own]) if r.threshold is not ALWAYS_CHECKED]
        for r in results:
            value = r.observed / 1000.0 if r.observed is not None and slo.kind == "latency" else None
            checks.append(SloCheck(slo.text, r.passed, None if value is None else round(value, 3), r.detail))
    return checks


def evaluate_step(
    run_dir: Path,
    transport: str,
    load: float,
    mode: str,
    *,
    warmup_s: float,
    slos: list[Threshold] | None,
    max_error_rate: float,
    lag_limit_ms: float = GENERATOR_LAG_LIMIT_MS,
    step_s: float | None = None,
) -> StepResult:
    """The step measured in ``run_dir`` (a finished run folder of ``transport``), judged."""
    result = StepResult(transport, load, mode, run_dir, slo_checks=None if slos is None else [])
    result.lag_limit_ms = lag_limit_ms
    try:
        data = load_run(run_dir)
    except ConfigError as exc:
        result.run_dir = run_dir if run_dir.is_dir() else None
        result.note = f"no results: {exc}"
        return result.judge(max_error_rate)
    (start, end), batch = steady(data, transport, warmup_s, step_s)
    result.window_s = max(0.0, end - start)
    result.turns = int(batch.counter(SeriesKey(transport, ALL, 0, Count.TURNS)))
    failures = batch.counter(SeriesKey(transport, ALL, 0, Count.FAILURES))
    result.e2e_ms = _latency(batch, transport, Metric.E2E)
    result.ttft_ms = _latency(batch, transport, Metric.TTFT)
    result.generator_lag_p99_ms = _lag_p99_ms(batch)
    result.goodput = _goodput(data.summary, transport)
    if not result.turns or result.window_s <= 0:
        result.note = "no turn in the measured window"
        return result.judge(max_error_rate)
    result.turns_per_s = (result.turns - failures) / result.window_s
    result.error_rate = failures / result.turns
    if slos is not None:
        run = {**data.summary.get("run", {}), "duration_s": result.window_s}
        window = RunData(run_dir, {**data.summary, "run": run}, batch, started_at=data.started_at)
        result.slo_checks = check_slos(data, window, transport, slos)
    return result.judge(max_error_rate)


def missing_step(transport: str, load: float, mode: str, run_dir: Path | None, why: str) -> StepResult:
    """A step that produced nothing to judge (the run failed to start, or was cut short before it wrote)."""
    result = StepResult(transport, load, mode, run_dir, note=why)
    result.why_not = why
    return result


__all__ = [
    "LATENCY_STATS",
    "SloCheck",
    "StepResult",
    "check_slos",
    "evaluate_step",
    "json_load",
    "missing_step",
    "steady",
]
