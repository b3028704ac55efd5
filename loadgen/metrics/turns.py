"""Turning one finished turn into histogram values and counters."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from loadgen.errors import TransportError
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.histograms import Metric, record_gaps_in_all
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


class _Series:
    """Prebuilt keys and direct histogram references of one series (a turn, or a transport's aggregate),
    cached in the batch so that recording a turn builds no keys and looks nothing up by key."""

    __slots__ = (
        "count", "e2e", "failures", "failures_retention", "failures_transport", "itl", "key", "output_tokens",
        "output_tokens_hist", "prompt_tokens", "prompt_tokens_hist", "retention_checked", "retention_passed",
        "schedule_lag", "ttft",
    )  # fmt: skip

    def __init__(self, batch: MetricsBatch, key: SeriesKey) -> None:
        self.key = key
        self.count = key.with_metric("count")
        self.failures = key.with_metric("failures")
        self.failures_transport = key.with_metric("failures.transport")
        self.failures_retention = key.with_metric("failures.retention")
        self.retention_checked = key.with_metric("retention.checked")
        self.retention_passed = key.with_metric("retention.passed")
        self.output_tokens = key.with_metric("output_tokens")
        self.prompt_tokens = key.with_metric("prompt_tokens")
        self.e2e = batch.histogram(key.with_metric(Metric.E2E))
        self.ttft = batch.histogram(key.with_metric(Metric.TTFT))
        self.itl = batch.histogram(key.with_metric(Metric.ITL))
        self.schedule_lag = batch.histogram(key.with_metric(Metric.SCHEDULE_LAG))
        self.output_tokens_hist = batch.histogram(key.with_metric(Metric.OUTPUT_TOKENS))
        self.prompt_tokens_hist = batch.histogram(key.with_metric(Metric.PROMPT_TOKENS))


def _series(batch: MetricsBatch, transport: str, dialogue: str, turn: int) -> _Series:
    handle_key = ("turn-series", transport, dialogue, turn)
    series: _Series | None = batch.handles.get(handle_key)
    if series is None:
        series = batch.handles[handle_key] = _Series(batch, SeriesKey(transport, dialogue, turn, ""))
    return series


def _record_inter_token(both: tuple[_Series, _Series], reply: Reply) -> None:
    """Inter-token latency as :meth:`Reply.inter_token_samples` defines it. When every chunk after the first
    carried one token (the usual stream) the gaps are the samples: computed in one comprehension and kept
    for a deferred record; otherwise each gap is spread over its chunk's tokens."""
    times, tokens = reply.chunk_times, reply.chunk_tokens
    gaps = len(times) - 1
    if gaps < 1:
        return
    if len(tokens) == len(times) and tokens.count(1.0) - (tokens[0] == 1.0) == gaps:
        values = [round((later - earlier) * 1_000_000) for earlier, later in pairwise(times)]
        for s in both:
            s.itl.record_later(values)
    else:
        record_gaps_in_all([s.itl for s in both], times, tokens)


def record_turn(batch: MetricsBatch, outcome: TurnOutcome) -> None:
    """Record one turn. Keys: the turn itself and the transport-wide aggregate (dialogue ``*``, turn 0)."""
    both = (
        _series(batch, outcome.transport, outcome.dialogue, outcome.turn),
        _series(batch, outcome.transport, ALL, 0),
    )
    counters = batch.counters
    lag_us = to_us(outcome.schedule_lag_s)
    for s in both:
        counters[s.count] += 1
        s.schedule_lag.record(lag_us)
    if outcome.error is not None or outcome.reply is None:
        reason = outcome.error.reason if outcome.error is not None else "no reply"
        kind = type(outcome.error).__name__ if outcome.error is not None else "TransportError"
        for s in both:
            counters[s.failures] += 1
            counters[s.failures_transport] += 1
            counters[s.key.with_metric(f"reason:{kind}:{reason[:200]}")] += 1
        return
    reply = outcome.reply
    e2e = to_us(reply.e2e_s())
    ttft_s = reply.ttft_s()
    ttft = to_us(ttft_s) if ttft_s is not None else None
    output_tokens = reply.output_tokens
    prompt_tokens = reply.usage.prompt_tokens if reply.usage is not None else None
    _record_inter_token(both, reply)
    for s in both:
        s.e2e.record(e2e)
        if ttft is not None:
            s.ttft.record(ttft)
        counters[s.output_tokens] += output_tokens  # type: ignore[assignment]
        if output_tokens:
            s.output_tokens_hist.record(round(output_tokens))
        if prompt_tokens is not None:
            counters[s.prompt_tokens] += prompt_tokens
            s.prompt_tokens_hist.record(prompt_tokens)
        if outcome.retention_checked:
            counters[s.retention_checked] += 1
            if outcome.retention_passed:
                counters[s.retention_passed] += 1
            else:
                counters[s.failures] += 1
                counters[s.failures_retention] += 1
                counters[s.key.with_metric(f"reason:RetentionFailure:{(outcome.retention_reason or '')[:200]}")] += 1
    if prompt_tokens is not None:
        agg_key = both[1].key
        bucket = context_bucket(prompt_tokens)
        batch.record(agg_key.with_metric(f"{Metric.E2E}@ctx{bucket}"), e2e)
        if ttft is not None:
            batch.record(agg_key.with_metric(f"{Metric.TTFT}@ctx{bucket}"), ttft)
