"""``summary.json``: the run's figures per (transport, dialogue, turn), plus run-level ones.

Schema (``schema_version`` 2; a reader of version 1 folders finds the same fields less the new ones), documented
in README.md ("Reading the report"):
{
  "schema_version": 2,
  "run": {id, started_at, ended_at, duration_s, target, transports, history_mode, users, complete, cut_off_turns,
          checkpoints, warmup_s, cooldown_s, steady: {start, end, duration_s}, ... options},
  "turns": [ {transport, dialogue, turn, count, failures, failures_by_kind: {transport, retention, session},
              failure_reasons: {"Kind: reason": n}, e2e_ms, ttft_ms, itl_ms, tpot_ms, e2e_from_intended_ms,
              schedule_lag_ms (each {p50, p95, p99, max, mean, count, out_of_range}),
              retention: {checked, passed, rate}, output_tokens, prompt_tokens, output_tokens_per_s,
              slo: {met, attainment, goodput_per_s} (with --slo),
              tokens: {prompt, output (each {p50, p95, p99, max, mean, count}, in tokens), counted_by: {usage,
              tokenizer, estimate}, short_reply, usage_mismatch}} ... ],
  "transports": {name: the same figures over all dialogues and turns, plus turns_per_s},
  "slo": {objectives: [text, ...], transports: {name: {held, checks: [{objective, value_ms, held}]}}} (with --slo),
  "context_buckets": {transport: {bucket: {e2e_ms, ttft_ms}}},
  "generator_lag_ms": {p50, p95, p99, max, mean, count},
  "token_counting": "usage" | "tokenizer" | "estimate" | null (who counted most replies' tokens),
  "warnings": [text, ...],
  ... and the sections the run adds (``sections``): windows, drift, outages, recovery, faults, workers
}
Percentile fields are milliseconds (floats); quantile names follow the percentile scale (p99 = 0.99). A latency
block with no samples has every statistic ``null`` (count 0), never 0.0. Rates (turns_per_s, output tokens/s,
goodput) are over the steady-state duration (``run.steady.duration_s``: the run less its warm-up and cool-down)
when the run block has one, else over ``run.duration_s``; turns started in the warm-up or cool-down are not in
these figures at all (only in ``intervals.jsonl``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from loadgen.load.slo import Objective, evaluate, row_figures
from loadgen.metrics.batch import MetricsBatch, Pause
from loadgen.metrics.histograms import Metric, TrackedHistogram
from loadgen.metrics.keys import ALL, ContextMetric, Count, FailureReason, SeriesKey, Total
from loadgen.metrics.lag_advice import processes_advice
from loadgen.metrics.turns import COUNTED_BY

SCHEMA_VERSION = 2
QUANTILES: dict[str, float] = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
GENERATOR_LAG_WARN_MS = 5.0


def latency_block(hist: TrackedHistogram | None) -> dict[str, float | int | None]:
    """Percentiles of a microsecond histogram, in milliseconds; every statistic None when it has no samples."""
    if hist is None or hist.count == 0:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None, "count": 0, "out_of_range": 0}
    values = hist.quantiles(QUANTILES.values())
    block: dict[str, float | int | None] = {name: round(values[q] / 1000.0, 3) for name, q in QUANTILES.items()}
    block["max"] = round(hist.max() / 1000.0, 3)
    block["mean"] = round(hist.mean() / 1000.0, 3)
    block["count"] = hist.count
    block["out_of_range"] = hist.above_range + hist.below_range
    return block


def token_block(hist: TrackedHistogram | None) -> dict[str, float | int | None]:
    """Percentiles of a histogram of token counts (as they are, not scaled); None statistics when it is empty."""
    if hist is None or hist.count == 0:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None, "count": 0}
    values = hist.quantiles(QUANTILES.values())
    block: dict[str, float | int | None] = {name: int(values[q]) for name, q in QUANTILES.items()}
    block.update(max=int(hist.max()), mean=round(hist.mean(), 1), count=hist.count)
    return block


def _reasons(batch: MetricsBatch) -> dict[tuple[str, str, int], dict[str, int]]:
    """Failure reasons per series (one pass over the counters)."""
    out: dict[tuple[str, str, int], dict[str, int]] = defaultdict(dict)
    for key, value in batch.counts.items():
        if (reason := FailureReason.parse(key.metric)) is not None:
            out[key.turn_key()][reason.label()] = int(value)
    return out


def figures_duration_s(run: dict[str, Any]) -> float:
    """The seconds rates are computed over: the steady state's when the run block has one, else the run's."""
    steady = run.get("steady")
    if isinstance(steady, dict) and steady.get("duration_s") is not None:
        return float(steady["duration_s"])
    return float(run.get("duration_s") or 0.0)


def _figures(
    batch: MetricsBatch,
    base: SeriesKey,
    duration_s: float,
    reasons: dict[str, int],
    pause: Pause | None,
    slo: bool = False,
) -> dict[str, Any]:
    def counter(name: Count | Total) -> float:
        return batch.counter(base.with_metric(name))

    def hist(metric: Metric) -> TrackedHistogram | None:
        return batch.histograms.get(base.with_metric(metric))

    def block(metric: Metric) -> dict[str, float | int | None]:
        figures = latency_block(hist(metric))
        if pause is not None:
            pause()  # a block reads a histogram's every counter: let the users run after each
        return figures

    checked = int(counter(Count.RETENTION_CHECKED))
    passed = int(counter(Count.RETENTION_PASSED))
    output_tokens = counter(Total.OUTPUT_TOKENS)
    e2e = hist(Metric.E2E)
    busy_s = (e2e.mean() * e2e.count / 1e6) if e2e is not None and e2e.count else 0.0
    figures = {
        "count": int(counter(Count.TURNS)),
        "failures": int(counter(Count.FAILURES)),
        "failures_by_kind": {
            "transport": int(counter(Count.TRANSPORT_FAILURES)),
            "retention": int(counter(Count.RETENTION_FAILURES)),
            "session": int(counter(Count.SESSION_FAILURES)),
        },
        "failure_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "e2e_ms": block(Metric.E2E),
        "ttft_ms": block(Metric.TTFT),
        "itl_ms": block(Metric.ITL),
        "tpot_ms": block(Metric.TPOT),
        "e2e_from_intended_ms": block(Metric.E2E_FROM_INTENDED),
        "schedule_lag_ms": block(Metric.SCHEDULE_LAG),
        "retention": {"checked": checked, "passed": passed, "rate": (passed / checked) if checked else None},
        "output_tokens": round(output_tokens, 1),
        "prompt_tokens": int(counter(Count.PROMPT_TOKENS)),
        # tokens per second of one conversation while its reply streams (per user) ...
        "output_tokens_per_s_per_user": round(output_tokens / busy_s, 2) if busy_s else 0.0,
        # ... and over the whole run (all users together)
        "output_tokens_per_s": round(output_tokens / duration_s, 2) if duration_s > 0 else 0.0,
        "turns_per_s": round(counter(Count.TURNS) / duration_s, 3) if duration_s > 0 else 0.0,
    }
    if slo:
        figures["slo"] = row_figures(int(counter(Count.SLO_MET)), int(counter(Count.TURNS)), duration_s)
    figures["tokens"] = {
        "prompt": token_block(hist(Metric.PROMPT_TOKENS)),
        "output": token_block(hist(Metric.OUTPUT_TOKENS)),
        "counted_by": {source: int(counter(count)) for source, count in COUNTED_BY.items()},
        "short_reply": int(counter(Count.SHORT_REPLY)),
        "usage_mismatch": int(counter(Count.USAGE_MISMATCH)),
    }
    return figures


def token_counting(transports: dict[str, Any]) -> str | None:
    """Who counted the most replies' tokens over the run (``usage``, ``tokenizer``, ``estimate``), None: no reply."""
    totals = {source: 0 for source in COUNTED_BY}
    for figures in transports.values():
        for source, n in figures["tokens"]["counted_by"].items():
            totals[source] += n
    best = max(totals, key=lambda source: totals[source])
    return best if totals[best] else None


def token_warnings(transports: dict[str, Any]) -> list[str]:
    """A warning per transport whose replies were short of the length asked or whose usage disagreed."""
    out = []
    for transport, figures in sorted(transports.items()):
        tokens, turns = figures["tokens"], figures["count"]
        if tokens["short_reply"]:
            out.append(
                f"{transport}: {tokens['short_reply']} of {turns} replies were shorter than the length asked "
                "(--output-tokens): the server stops early or ignores min_tokens/ignore_eos; per turn in the "
                "report's token table"
            )
        if tokens["usage_mismatch"]:
            out.append(
                f"{transport}: in {tokens['usage_mismatch']} of {turns} turns the server's usage disagreed with the "
                "local count (--tokenizer) by more than --token-tolerance: a different tokenizer, a context the "
                "server cut, or wrong usage figures; per turn in the report's token table"
            )
    return out


def build_summary(
    batch: MetricsBatch,
    run: dict[str, Any],
    warnings: list[str] | None = None,
    *,
    pause: Pause | None = None,
    sections: dict[str, Any] | None = None,
    slo: tuple[Objective, ...] = (),
) -> dict[str, Any]:
    """The summary of ``batch``; ``pause`` (e.g. ``gevent.sleep(0)``) is called after each histogram read, so
    that a checkpoint written while users run holds them up for one histogram at a time, never the whole of it.
    ``sections`` (windows, drift, outages, ...) are added as they are, after the figures; ``slo`` (the run's
    ``--slo`` objectives) adds each row's ``slo`` figures and the top-level ``slo`` block."""
    duration_s = figures_duration_s(run)
    turn_keys = sorted({k.turn_key() for k in batch.series_keys()})
    reasons = _reasons(batch)
    turns = []
    transports: dict[str, Any] = {}
    for transport, dialogue, turn in turn_keys:
        if transport == ALL:
            continue
        base = SeriesKey.series(transport, dialogue, turn)
        figures = _figures(batch, base, duration_s, reasons.get(base.turn_key(), {}), pause, bool(slo))
        if dialogue == ALL:
            transports[transport] = figures
            continue
        turns.append({"transport": transport, "dialogue": dialogue, "turn": turn, **figures})
    buckets: dict[str, dict[str, Any]] = defaultdict(dict)
    for key, hist in sorted(batch.histograms.items()):
        context = ContextMetric.parse(key.metric)
        if key.dialogue == ALL and context is not None and key.transport != ALL:
            buckets[key.transport].setdefault(context.bucket, {})[f"{context.metric}_ms"] = latency_block(hist)
            if pause is not None:
                pause()
    lag = latency_block(batch.histograms.get(SeriesKey(ALL, ALL, 0, Metric.GENERATOR_LAG)))
    all_warnings = list(warnings or [])
    all_warnings.extend(token_warnings(transports))
    if lag["p99"] is not None and float(lag["p99"]) > GENERATOR_LAG_WARN_MS:
        all_warnings.append(
            f"load generator lag p99 is {lag['p99']} ms (> {GENERATOR_LAG_WARN_MS} ms): the generator was "
            f"overloaded and its own delay is inside the latencies; {lag_advice(run, transports)}. "
            "Per-token figures: trust TPOT (a turn's whole stream after its first token, over its tokens) rather "
            "than ITL, whose single gaps take the generator's stalls in full"
        )
    summary: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run": run,
        "turns": turns,
        "transports": transports,
        "context_buckets": dict(buckets),
        "generator_lag_ms": lag,
        "token_counting": token_counting(transports),
        "warnings": all_warnings,
    }
    if slo:
        summary["slo"] = evaluate(slo, batch)
    summary.update(sections or {})
    return summary


def lag_advice(run: dict[str, Any], transports: Iterable[str] = ()) -> str:
    """The ``--processes`` suggestion for this run's user count and processes (run block: ``users``,
    ``processes``) over its ``transports``."""
    users, processes = run.get("users"), run.get("processes")
    return processes_advice(
        users if isinstance(users, int) else None, processes if isinstance(processes, int) else None, transports
    )


def cut_off_turns(batch: MetricsBatch) -> int:
    """Turns in flight when their users were stopped (counted per transport by the processes that ran them)."""
    return sum(int(v) for k, v in batch.counts.items() if k.metric == Count.CUT_OFF)
