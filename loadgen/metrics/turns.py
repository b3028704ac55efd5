"""Turning one finished turn into histogram values and counters."""

from __future__ import annotations

from dataclasses import dataclass

from loadgen.errors import TransportError
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.histograms import Metric
from loadgen.metrics.keys import ALL, SeriesKey
from loadgen.types import Reply

#: Prompt-length buckets (tokens) for "latency by context length".
CONTEXT_BUCKETS: tuple[tuple[int, str], ...] = ((512, "<512"), (2048, "512-2k"), (4096, "2k-4k"))


def context_bucket(prompt_tokens: int) -> str:
    for limit, label in CONTEXT_BUCKETS:
        if prompt_tokens < limit:
            return label
    return ">4k"


def to_us(seconds: float) -> int:
    return max(0, round(seconds * 1_000_000))


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    transport: str
    dialogue: str
    turn: int
    reply: Reply | None  # None when the transport failed
    error: TransportError | None = None
    retention_checked: int = 0  # facts probed in this turn
    retention_passed: bool = True
    retention_reason: str | None = None
    schedule_lag_s: float = 0.0


def record_turn(batch: MetricsBatch, outcome: TurnOutcome) -> None:
    """Record one turn. Keys: the turn itself and the transport-wide aggregate (dialogue ``*``, turn 0)."""
    turn_key = SeriesKey(outcome.transport, outcome.dialogue, outcome.turn, "")
    agg_key = SeriesKey(outcome.transport, ALL, 0, "")
    keys = (turn_key, agg_key)
    lag_us = to_us(outcome.schedule_lag_s)
    for key in keys:
        batch.incr(key.with_metric("count"))
        batch.record(key.with_metric(Metric.SCHEDULE_LAG), lag_us)
    if outcome.error is not None or outcome.reply is None:
        reason = outcome.error.reason if outcome.error is not None else "no reply"
        kind = type(outcome.error).__name__ if outcome.error is not None else "TransportError"
        for key in keys:
            batch.incr(key.with_metric("failures"))
            batch.incr(key.with_metric("failures.transport"))
            batch.incr(key.with_metric(f"reason:{kind}:{reason[:200]}"))
        return
    reply = outcome.reply
    e2e = to_us(reply.e2e_s())
    ttft_s = reply.ttft_s()
    itl = reply.inter_token_samples()
    output_tokens = reply.output_tokens
    prompt_tokens = reply.usage.prompt_tokens if reply.usage is not None else None
    for key in keys:
        batch.record(key.with_metric(Metric.E2E), e2e)
        if ttft_s is not None:
            batch.record(key.with_metric(Metric.TTFT), to_us(ttft_s))
        itl_hist = batch.histogram(key.with_metric(Metric.ITL))
        for seconds, n in itl:
            itl_hist.record(to_us(seconds), n)
        batch.incr(key.with_metric("output_tokens"), output_tokens)
        if output_tokens:
            batch.record(key.with_metric(Metric.OUTPUT_TOKENS), round(output_tokens))
        if prompt_tokens is not None:
            batch.incr(key.with_metric("prompt_tokens"), prompt_tokens)
            batch.record(key.with_metric(Metric.PROMPT_TOKENS), prompt_tokens)
        if outcome.retention_checked:
            batch.incr(key.with_metric("retention.checked"))
            if outcome.retention_passed:
                batch.incr(key.with_metric("retention.passed"))
            else:
                batch.incr(key.with_metric("failures"))
                batch.incr(key.with_metric("failures.retention"))
                batch.incr(key.with_metric(f"reason:RetentionFailure:{(outcome.retention_reason or '')[:200]}"))
    if prompt_tokens is not None:
        bucket = context_bucket(prompt_tokens)
        batch.record(agg_key.with_metric(f"{Metric.E2E}@ctx{bucket}"), e2e)
        if ttft_s is not None:
            batch.record(agg_key.with_metric(f"{Metric.TTFT}@ctx{bucket}"), to_us(ttft_s))
