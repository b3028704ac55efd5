"""CI gates: threshold expressions (:mod:`loadgen.report.threshold_grammar`) checked against a finished run.

A scope part left out means "all of it": no transport = each transport of the run (every one must pass); no
dialogue with ``turnN`` = turn N of every dialogue merged; neither dialogue nor turn = all turns. Latency
statistics are read from the HDR histograms (exact merges), rates and counts from the counters, recovery and
drift from ``summary.json`` (``recovery``, ``outages``, ``drift``). Rates per second are over the steady state
(``--warmup``/``--cooldown`` left out); ``slo_attainment`` and ``goodput_per_s`` read the ``slo.met`` counter of a
run with ``--slo`` (without it: no data, so the gate fails).

Fail safe: a threshold whose scope has no data fails with "no data" (a gate that cannot be checked must not pass
silently), and whenever thresholds are given, a run with no successful turn fails one more, implicit, check
(``successes >= 1``, listed only when it fails): a dead service is never a green light, whatever the expressions
say. A transport with no
outage has nothing to recover from: its recovery is 0; an outage still open at the end never recovered (fail).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loadgen.metrics.keys import Count, Metric, Total
from loadgen.report.rundata import RunData
from loadgen.report.status import no_success_problem
from loadgen.report.threshold_grammar import (
    COUNT_METRICS,
    DRIFT,
    GRAMMAR,
    RATE_METRICS,
    RECOVERY,
    RECOVERY_STATS,
    THRESHOLD_OPTIONS,
    TIME_UNITS_US,
    Threshold,
    ThresholdError,
    collect_thresholds,
    load_thresholds_file,
    parse_threshold,
    parse_thresholds,
)

__all__ = [
    "ALWAYS_CHECKED",
    "COUNT_METRICS",
    "GRAMMAR",
    "RATE_METRICS",
    "THRESHOLD_OPTIONS",
    "TIME_UNITS_US",
    "Result",
    "Threshold",
    "ThresholdError",
    "collect_thresholds",
    "evaluate",
    "format_results",
    "load_thresholds_file",
    "parse_threshold",
    "parse_thresholds",
    "results_json",
]

#: Checked whenever thresholds are: the run has at least one successful turn.
ALWAYS_CHECKED = Threshold("successes >= 1 (always checked)", None, None, None, "successes", None, ">=", 1.0, "")
NO_DATA = "no data"


@dataclass(frozen=True)
class Result:
    threshold: Threshold
    scope: str
    observed: float | None  # in the threshold's canonical unit (us, fraction, number); None = no data
    passed: bool
    detail: str

    def line(self) -> str:
        status = "PASS" if self.passed else "FAIL"
        return f"{status} {self.threshold.text}: {self.detail} [{self.scope}]"


def _compare(observed: float, op: str, limit: float) -> bool:
    if op == "<":
        return observed < limit
    if op == "<=":
        return observed <= limit
    if op == ">":
        return observed > limit
    return observed >= limit


def _show(threshold: Threshold, value: float) -> str:
    if threshold.kind == "rate":
        return f"{100.0 * value:.3f}%"
    if threshold.kind == "count":
        return f"{value:g}"
    if threshold.kind == RECOVERY:
        return f"{value / 1e6:.3f} s"
    if threshold.kind == DRIFT:
        return f"{value:+.3f}{threshold.unit}"
    return f"{value / 1000.0:.3f} ms"


def _observe_latency(data: RunData, t: Threshold, transport: str | None) -> tuple[float | None, str]:
    name = f"{t.metric}.{t.stat}"
    hist = data.histogram(t.metric, transport=transport, dialogue=t.dialogue, turn=t.turn)
    if hist.count == 0:
        return None, f"{NO_DATA}: no {t.metric} samples"
    if t.stat == "max":
        return float(hist.max()), name
    if t.stat == "mean":
        return hist.mean(), name
    q = t.quantile()
    assert q is not None
    return float(hist.quantiles([q])[q]), name


def _observe_counter(data: RunData, t: Threshold, transport: str | None) -> tuple[float | None, str]:
    def counter(name: Count | Total) -> float:
        return data.counter(name, transport, t.dialogue, t.turn)

    if not data.has_scope(transport, t.dialogue, t.turn):
        return None, f"{NO_DATA}: no turns in scope"
    count = counter(Count.TURNS)
    if t.metric == "slo_attainment":
        if not _has_slo(data):
            return None, f"{NO_DATA}: the run had no --slo"
        if not count:
            return None, f"{NO_DATA}: no turns"
        return counter(Count.SLO_MET) / count, "SLO attainment"
    if t.metric == "retention":
        checked = counter(Count.RETENTION_CHECKED)
        if not checked:
            return None, f"{NO_DATA}: no turn in scope probed a planted fact"
        return counter(Count.RETENTION_PASSED) / checked, "retention"
    if t.metric in ("errors", "transport_errors"):
        if not count:
            return None, f"{NO_DATA}: no turns"
        failures = counter(Count.FAILURES if t.metric == "errors" else Count.TRANSPORT_FAILURES)
        return failures / count, t.metric
    if t.metric == "turns":
        return count, "turns"
    if t.metric == "failures":
        return counter(Count.FAILURES), "failures"
    if t.metric == "successes":
        return count - counter(Count.FAILURES), "successful turns"
    duration = data.duration_s
    if duration <= 0:
        return None, f"{NO_DATA}: the run has no duration"
    if t.metric == "turns_per_s":
        return count / duration, "turns/s"
    if t.metric == "goodput_per_s":
        if not _has_slo(data):
            return None, f"{NO_DATA}: the run had no --slo"
        return counter(Count.SLO_MET) / duration, "goodput (turns/s within SLO)"
    return counter(Total.OUTPUT_TOKENS) / duration, "output tokens/s"


def _has_slo(data: RunData) -> bool:
    return bool((data.summary.get("slo") or {}).get("objectives"))


def _observe_recovery(summary: dict[str, Any], t: Threshold, transport: str | None) -> tuple[float | None, str]:
    name = f"recovery.{t.stat}"
    recovery = summary.get("recovery")
    if recovery is None:
        return None, f"{NO_DATA}: this run folder has no recovery figures (written before outages were recorded)"
    r = recovery.get(transport) if transport is not None else None
    if r is None:
        return None, f"{NO_DATA}: no recovery figures for {transport}"
    still = [o for o in summary.get("outages") or [] if o.get("transport") == transport and o.get("end_s") is None]
    if still:
        return None, f"an outage from {still[0].get('start_s')} s was still going at the end: it never recovered"
    if not r.get("outages"):
        return 0.0, f"{name} (no outage: nothing to recover from)"
    value = r.get(RECOVERY_STATS[t.stat or "max"])
    if value is None:
        return None, f"{NO_DATA}: {r.get('outages')} outage(s) but no recovery time"
    return float(value) * 1e6, name


def _observe_drift(summary: dict[str, Any], t: Threshold, transport: str | None) -> tuple[float | None, str]:
    drift = (summary.get("drift") or {}).get(transport or "", {})
    d = drift.get(t.stat or "")
    name = f"drift of {t.stat}"
    if d is None:
        return None, f"{NO_DATA}: no drift figures for {transport} (a run folder from before drift was recorded?)"
    if t.unit == "%/h":
        value = d.get("pct_per_hour")
        if value is None and d.get("per_hour") is not None:
            return None, f"{NO_DATA}: the first window's {t.stat} is 0, a relative trend is undefined; use ms/h"
    else:
        per_hour = d.get("per_hour")
        value = None if per_hour is None else float(per_hour) * (100.0 if t.unit == "pp/h" else 1.0)
    if value is None:
        return None, f"{NO_DATA}: a trend needs at least 3 windows with data (this run had {d.get('windows', 0)})"
    return float(value), name


def _observe(data: RunData, t: Threshold, transport: str | None) -> tuple[float | None, str]:
    """(observed value, what it is); None when the scope has no data to judge."""
    if t.kind == RECOVERY:
        return _observe_recovery(data.summary, t, transport)
    if t.kind == DRIFT:
        return _observe_drift(data.summary, t, transport)
    if t.kind == "latency":
        return _observe_latency(data, t, transport)
    return _observe_counter(data, t, transport)


def _scopes(data: RunData, t: Threshold) -> list[str | None]:
    if t.metric == Metric.GENERATOR_LAG:
        return [None]
    if t.transport is not None:
        return [t.transport]
    return list(data.transports()) or [None]


def evaluate(data: RunData, thresholds: Sequence[Threshold]) -> list[Result]:
    """Every threshold over each of its scopes; when any is given and the run has no successful turn, one more
    failed result for :data:`ALWAYS_CHECKED` (a healthy run does not list it)."""
    results = []
    for t in thresholds:
        for transport in _scopes(data, t):
            label = "whole run" if t.metric == Metric.GENERATOR_LAG else t.scope_label(transport)
            observed, what = _observe(data, t, transport)
            if observed is None:
                results.append(Result(t, label, None, False, what))
                continue
            ok = _compare(observed, t.op, t.value)
            detail = f"{what} = {_show(t, observed)} (limit {t.op} {_show(t, t.value)})"
            results.append(Result(t, label, observed, ok, detail))
    problem = no_success_problem(data.summary) if thresholds else None
    if problem is not None:
        results.append(Result(ALWAYS_CHECKED, "whole run", None, False, problem))
    return results


def format_results(results: Sequence[Result]) -> str:
    if not results:
        return ""
    failed = sum(1 for r in results if not r.passed)
    head = (
        f"thresholds: {len(results) - failed} passed, {failed} FAILED"
        if failed
        else f"thresholds: all {len(results)} passed"
    )
    return "\n".join([head, *(f"  {r.line()}" for r in results)])


def results_json(results: Sequence[Result]) -> list[dict[str, Any]]:
    return [
        {
            "threshold": r.threshold.text,
            "scope": r.scope,
            "observed": r.observed,
            "passed": r.passed,
            "detail": r.detail,
        }
        for r in results
    ]
