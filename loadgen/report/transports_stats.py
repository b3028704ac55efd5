"""The figures of a transport comparison: per arm, the median over its kept rounds with a 95% interval, and every
pairwise difference with its interval and a plain verdict.

Each figure (:data:`FIGURES`) is taken per round over the round's measured window (:mod:`.transports_rounds`),
then combined over the arm's kept rounds by :mod:`loadgen.analysis.nested` (rounds drawn, then turns within each
drawn round). Lagging runs and runs with no measured turn are left out of the figures and the verdicts (they stay
in the rounds table, marked). A figure with no data is ``None``, never 0.

A difference is ``other - base`` for every pair of arms in the order given (the first arm is the base of the
first pairs). Its verdict is :func:`loadgen.analysis.bootstrap.verdict`'s sentence ("grpc TTFT p50 1.8 ms lower
than rest, 95% CI 1.2-2.4", or "... no difference shown ..."), rates in percentage points; a figure with no
interval on one side (a per-round figure from one round) is "not judged", with the reason.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from loadgen.analysis.bootstrap import CONFIDENCE, RESAMPLES, Interval, verdict
from loadgen.analysis.nested import (
    Distribution,
    Fixed,
    Mean,
    Offset,
    Proportion,
    Quantile,
    RoundFigure,
    Rounds,
    difference_interval,
    percentile_interval,
    replicates,
)
from loadgen.metrics.histograms import Metric, TrackedHistogram
from loadgen.metrics.keys import Count
from loadgen.report.transports_rounds import RoundRun


@dataclass(frozen=True)
class Figure:
    key: str  # the CSV column and JSON name
    label: str  # how a verdict names it
    unit: str  # of the verdict's numbers
    scale: float = 1.0  # value x scale in a verdict (a rate in percentage points)


FIGURES: tuple[Figure, ...] = (
    Figure("e2e_avg_ms", "e2e avg", "ms"),
    Figure("e2e_p50_ms", "e2e p50", "ms"),
    Figure("e2e_p95_ms", "e2e p95", "ms"),
    Figure("e2e_p99_ms", "e2e p99", "ms"),
    Figure("ttft_p50_ms", "TTFT p50", "ms"),
    Figure("ttft_p99_ms", "TTFT p99", "ms"),
    Figure("itl_p50_ms", "ITL p50", "ms"),
    Figure("turns_per_s", "turns/s", "/s"),
    Figure("error_rate", "error rate", "pp", 100.0),
    Figure("retention", "retention", "pp", 100.0),
    Figure("floor_ttft_p50_ms", "floor TTFT p50", "ms"),
    Figure("ttft_above_floor_ms", "TTFT p50 above the floor", "ms"),
    Figure("client_cpu_ms_per_turn", "client CPU per turn", "ms"),
    Figure("server_cpu_ms_per_turn", "server CPU per request", "ms"),
)
FIGURE_BY_KEY = {f.key: f for f in FIGURES}
#: (figure, metric, quantile) of the percentiles taken from the run's histograms.
_QUANTILES: tuple[tuple[str, Metric, float], ...] = (
    ("e2e_p50_ms", Metric.E2E, 0.50),
    ("e2e_p95_ms", Metric.E2E, 0.95),
    ("e2e_p99_ms", Metric.E2E, 0.99),
    ("ttft_p50_ms", Metric.TTFT, 0.50),
    ("ttft_p99_ms", Metric.TTFT, 0.99),
    ("itl_p50_ms", Metric.ITL, 0.50),
)


def in_ms(hist: TrackedHistogram) -> Distribution:
    """A microsecond histogram's recorded values (each bucket's highest equivalent value, as its quantiles are
    read), in milliseconds. The counters are read as one list, not through hdrhistogram's iterator (~50x slower)."""
    hdr = hist.hist
    return Distribution.of(
        (hdr.get_highest_equivalent_value(hdr.get_value_from_index(i)) / 1000.0, n)
        for i, n in enumerate(list(hdr.counts))
        if n
    )


def round_figures(run: RoundRun) -> dict[str, RoundFigure]:
    """Every figure the run has, over its measured window (taken once per run, then kept on it)."""
    if run.figures is None:
        run.figures = _figures(run)
    return run.figures


def _figures(run: RoundRun) -> dict[str, RoundFigure]:
    out: dict[str, RoundFigure] = {}
    dists = {m: in_ms(h) for m in (Metric.E2E, Metric.TTFT, Metric.ITL) if (h := run.hist(m)) is not None}
    for key, metric, q in _QUANTILES:
        if metric in dists:
            out[key] = Quantile(dists[metric], q)
    e2e = run.hist(Metric.E2E)
    if e2e is not None:
        out["e2e_avg_ms"] = Mean(e2e.mean() / 1000.0, dists[Metric.E2E].mean_sd()[1], e2e.count)
    turns = run.count(Count.TURNS)
    if turns:
        out["error_rate"] = Proportion(run.count(Count.FAILURES), turns)
        if run.window_s > 0:
            out["turns_per_s"] = Fixed(turns / run.window_s)
    checked = run.count(Count.RETENTION_CHECKED)
    if checked:
        out["retention"] = Proportion(min(run.count(Count.RETENTION_PASSED), checked), checked)
    floor = run.beside.floor_ms if run.beside is not None else None
    if floor:
        out["floor_ttft_p50_ms"] = Quantile(Distribution.of_samples(floor), 0.5)
        if "ttft_p50_ms" in out:
            out["ttft_above_floor_ms"] = Offset(out["ttft_p50_ms"], out["floor_ttft_p50_ms"])
    for side in ("client", "server"):
        cpu = run.cpu_ms_per_turn(side)
        if cpu is not None:
            out[f"{side}_cpu_ms_per_turn"] = Fixed(cpu)
    return out


@dataclass
class Estimate:
    """A figure's median over rounds and its interval (None: no interval, e.g. a per-round figure of one round)."""

    value: float
    interval: Interval | None

    def to_json(self, digits: int = 4) -> dict[str, float | None]:
        iv = self.interval
        return {
            "value": round(self.value, digits),
            "ci_low": round(iv.low, digits) if iv is not None else None,
            "ci_high": round(iv.high, digits) if iv is not None else None,
        }


@dataclass
class ArmResult:
    arm: str
    transport: str
    runs: list[RoundRun]
    estimates: dict[str, Estimate] = field(default_factory=dict)
    rounds: dict[str, Rounds] = field(default_factory=dict)
    reps: dict[str, list[float]] = field(default_factory=dict)

    @property
    def kept(self) -> list[RoundRun]:
        return [r for r in self.runs if r.kept]


def arm_result(
    arm: str, transport: str, runs: Sequence[RoundRun], *, resamples: int = RESAMPLES, seed: int = 0
) -> ArmResult:
    """Every figure of one arm over its kept runs."""
    result = ArmResult(arm, transport, list(runs))
    per_round = [(r.round, round_figures(r)) for r in result.kept]
    for figure in FIGURES:
        found = [(rid, figs[figure.key]) for rid, figs in per_round if figure.key in figs]
        if not found:
            continue
        rounds = Rounds(tuple(rid for rid, _ in found), tuple(f for _, f in found))
        result.rounds[figure.key] = rounds
        interval = None
        if rounds.has_interval():
            reps = replicates(rounds, resamples=resamples, seed=seed, label=f"{arm}:{figure.key}")
            result.reps[figure.key] = reps
            interval = percentile_interval(rounds.value, reps)
        result.estimates[figure.key] = Estimate(rounds.value, interval)
    return result


@dataclass(frozen=True)
class Difference:
    base: str
    other: str
    figure: Figure
    interval: Interval | None
    verdict: str

    @property
    def shown(self) -> bool:
        return self.interval is not None and not self.interval.contains(0.0)

    def to_json(self, digits: int = 4) -> dict[str, Any]:
        iv = self.interval
        return {
            "base": self.base,
            "other": self.other,
            "figure": self.figure.key,
            "value": round(iv.value, digits) if iv is not None else None,
            "ci_low": round(iv.low, digits) if iv is not None else None,
            "ci_high": round(iv.high, digits) if iv is not None else None,
            "shown": self.shown,
            "verdict": self.verdict,
        }


def differences(results: Sequence[ArmResult], confidence: float = CONFIDENCE) -> list[Difference]:
    """Every pair of arms (in the order given), every figure both have."""
    out = []
    for base, other in itertools.combinations(results, 2):
        for figure in FIGURES:
            a, b = base.rounds.get(figure.key), other.rounds.get(figure.key)
            if a is None or b is None:
                continue
            iv = difference_interval(a, b, base.reps.get(figure.key, []), other.reps.get(figure.key, []), confidence)
            if iv is None:
                text = (
                    f"{other.arm} vs {base.arm} {figure.label}: not judged (a figure of the round as a whole, "
                    "measured once per round: it needs 2 or more kept rounds on each side)"
                )
            else:
                s = figure.scale
                shown = Interval(iv.value * s, iv.low * s, iv.high * s)
                text = verdict(figure.label, figure.unit, base.arm, other.arm, shown, confidence)
            out.append(Difference(base.arm, other.arm, figure, iv, text))
    return out


def recovery(runs: Sequence[RoundRun], transport: str) -> dict[str, Any]:
    """Outages (summed), the longest recovery and the median of the rounds' median recovery, from the kept
    runs' ``summary.json`` ``recovery`` (all None when no run has one)."""
    blocks = [b for r in runs if (b := (r.data.summary.get("recovery") or {}).get(transport)) is not None]
    if not blocks:
        return {"outages": None, "recovery_max_s": None, "recovery_p50_s": None}
    maxes = [float(b["max_s"]) for b in blocks if b.get("max_s") is not None]
    p50s = [float(b["p50_s"]) for b in blocks if b.get("p50_s") is not None]
    return {
        "outages": sum(int(b.get("outages") or 0) for b in blocks),
        "recovery_max_s": max(maxes) if maxes else None,
        "recovery_p50_s": statistics.median(p50s) if p50s else None,
    }


__all__ = [
    "FIGURES",
    "FIGURE_BY_KEY",
    "ArmResult",
    "Difference",
    "Estimate",
    "Figure",
    "arm_result",
    "differences",
    "in_ms",
    "recovery",
    "round_figures",
]
