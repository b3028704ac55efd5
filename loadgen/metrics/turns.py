"""Turning one finished turn into histogram values and counters (names in :mod:`loadgen.metrics.keys`).

A turn is recorded twice: in its own series (transport x dialogue x turn) and in its transport's aggregate
(dialogue ``*``, turn 0). A failed transport call counts ``count``, ``failures``, ``failures.transport`` and
``reason:<ErrorClass>:<reason>``, and records only the schedule lag; a retention miss counts ``failures``,
``failures.retention`` and ``reason:RetentionFailure:<dialogue, turn and slot>`` beside the reply's latencies; a
reply that says the server did not know the conversation's session (a lost session, not a forgetful model)
counts ``failures``, ``failures.session`` and ``reason:SessionLost:<reason>`` beside its latencies, and no
retention check. :func:`record_cut_off` counts a turn its user was stopped in the middle of.

Beside the latencies a reply records its TPOT (time per output token: ``(e2e - ttft) / (output_tokens - 1)``, when
the reply has a TTFT and at least 2 tokens) and its ``e2e_from_intended`` (its e2e plus its schedule lag: from when
the turn was meant to start to its last byte, the latency without coordinated omission). Each reply counts
``tokens.by_<source>`` for who counted its tokens: the server's usage, else (with token accounting,
:attr:`TurnOutcome.tokens`) the local count, which then also stands for the prompt and output tokens, else the
transport's estimate; accounting also counts ``tokens.short_reply`` and ``tokens.usage_mismatch``. With an
:class:`~loadgen.load.slo.SloChecker`, a turn that did not fail and met every per-turn SLO counts ``slo.met``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import pairwise

from loadgen.errors import RetentionFailure, TransportError
from loadgen.load.slo import SloChecker
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.histograms import Metric, record_gaps_in_all
from loadgen.metrics.keys import (
    ALL,
    CONTEXT_BUCKETS,
    ContextMetric,
    Count,
    FailureReason,
    SeriesKey,
    Total,
    context_bucket,
)
from loadgen.types import Reply, TokenCheck

__all__ = ["CONTEXT_BUCKETS", "TurnOutcome", "context_bucket", "record_cut_off", "record_turn", "to_us"]

#: The kind a retention miss is counted under (what Locust shows it as).
RETENTION_KIND = RetentionFailure.__name__
#: The kind a lost session is counted under.
SESSION_KIND = "SessionLost"
#: The counter of the replies each source counted the tokens of (:attr:`TokenCheck.counted_by`).
COUNTED_BY: dict[str, Count] = {
    "usage": Count.TOKENS_BY_USAGE,
    "tokenizer": Count.TOKENS_BY_TOKENIZER,
    "estimate": Count.TOKENS_BY_ESTIMATE,
}


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
    retention_reason: str | None = None  # grouped: dialogue, turn and slot, never a slot's value
    schedule_lag_s: float = 0.0
    session_lost: str | None = None  # the reason, when the server did not know the session
    retention_detail: str | None = None  # the forgotten values too (for the turn log only)
    tokens: TokenCheck | None = None  # token accounting (shapes or --tokenizer), None when off


class _Series:
    """Prebuilt keys and direct histogram references of one series (a turn, or a transport's aggregate),
    cached in the batch so that recording a turn builds no keys and looks nothing up by key."""

    __slots__ = (
        "count", "counted_by", "e2e", "e2e_from_intended", "failures", "failures_retention", "failures_session",
        "failures_transport", "itl", "key", "output_tokens", "output_tokens_hist", "prompt_tokens",
        "prompt_tokens_hist", "retention_checked", "retention_passed", "schedule_lag", "short_reply", "slo_met",
        "tpot", "ttft", "usage_mismatch",
    )  # fmt: skip

    def __init__(self, batch: MetricsBatch, key: SeriesKey) -> None:
        self.key = key
        self.count = key.with_metric(Count.TURNS)
        self.failures = key.with_metric(Count.FAILURES)
        self.failures_transport = key.with_metric(Count.TRANSPORT_FAILURES)
        self.failures_retention = key.with_metric(Count.RETENTION_FAILURES)
        self.failures_session = key.with_metric(Count.SESSION_FAILURES)
        self.retention_checked = key.with_metric(Count.RETENTION_CHECKED)
        self.retention_passed = key.with_metric(Count.RETENTION_PASSED)
        self.output_tokens = key.with_metric(Total.OUTPUT_TOKENS)
        self.prompt_tokens = key.with_metric(Count.PROMPT_TOKENS)
        self.slo_met = key.with_metric(Count.SLO_MET)
        self.counted_by = {source: key.with_metric(count) for source, count in COUNTED_BY.items()}
        self.short_reply = key.with_metric(Count.SHORT_REPLY)
        self.usage_mismatch = key.with_metric(Count.USAGE_MISMATCH)
        self.e2e = batch.histogram(key.with_metric(Metric.E2E))
        self.ttft = batch.histogram(key.with_metric(Metric.TTFT))
        self.itl = batch.histogram(key.with_metric(Metric.ITL))
        self.tpot = batch.histogram(key.with_metric(Metric.TPOT))
        self.e2e_from_intended = batch.histogram(key.with_metric(Metric.E2E_FROM_INTENDED))
        self.schedule_lag = batch.histogram(key.with_metric(Metric.SCHEDULE_LAG))
        self.output_tokens_hist = batch.histogram(key.with_metric(Metric.OUTPUT_TOKENS))
        self.prompt_tokens_hist = batch.histogram(key.with_metric(Metric.PROMPT_TOKENS))


def _series(batch: MetricsBatch, transport: str, dialogue: str, turn: int) -> _Series:
    handle_key = ("turn-series", transport, dialogue, turn)
    series: _Series | None = batch.handles.get(handle_key)
    if series is None:
        series = batch.handles[handle_key] = _Series(batch, SeriesKey.series(transport, dialogue, turn))
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


def _record_retention(counts: Counter[SeriesKey], both: tuple[_Series, _Series], outcome: TurnOutcome) -> None:
    missed = None if outcome.retention_passed else FailureReason.of(RETENTION_KIND, outcome.retention_reason or "")
    for s in both:
        counts[s.retention_checked] += 1
        if missed is None:
            counts[s.retention_passed] += 1
        else:
            counts[s.failures] += 1
            counts[s.failures_retention] += 1
            counts[s.key.with_metric(missed)] += 1


def _record_tokens(counts: Counter[SeriesKey], both: tuple[_Series, _Series], check: TokenCheck) -> None:
    for s in both:
        counts[s.counted_by[check.counted_by]] += 1
        if check.short_reply:
            counts[s.short_reply] += 1
        if check.usage_mismatch:
            counts[s.usage_mismatch] += 1


def tpot_us(e2e_s: float, ttft_s: float | None, output_tokens: float) -> int | None:
    """Time per output token after the first, in microseconds; None without a TTFT or with fewer than 2 tokens."""
    if ttft_s is None or output_tokens < 2:
        return None
    return to_us((e2e_s - ttft_s) / (output_tokens - 1))


def record_turn(batch: MetricsBatch, outcome: TurnOutcome, slo: SloChecker | None = None) -> None:
    """Record one turn. Keys: the turn itself and the transport-wide aggregate (dialogue ``*``, turn 0). With
    ``slo``, a turn that did not fail and met every per-turn objective counts ``slo.met``."""
    both = (
        _series(batch, outcome.transport, outcome.dialogue, outcome.turn),
        _series(batch, outcome.transport, ALL, 0),
    )
    counts, totals = batch.counts, batch.totals
    lag_us = to_us(outcome.schedule_lag_s)
    for s in both:
        counts[s.count] += 1
        s.schedule_lag.record(lag_us)
    if outcome.error is not None or outcome.reply is None:
        reason = outcome.error.reason if outcome.error is not None else "no reply"
        kind = type(outcome.error).__name__ if outcome.error is not None else "TransportError"
        failure = FailureReason.of(kind, reason)
        for s in both:
            counts[s.failures] += 1
            counts[s.failures_transport] += 1
            counts[s.key.with_metric(failure)] += 1
        return
    reply = outcome.reply
    e2e_s = reply.e2e_s()
    e2e = to_us(e2e_s)
    intended = e2e + lag_us
    ttft_s = reply.ttft_s()
    ttft = to_us(ttft_s) if ttft_s is not None else None
    output_tokens = reply.output_tokens
    prompt_tokens = reply.usage.prompt_tokens if reply.usage is not None else None
    check = outcome.tokens
    if check is not None:
        _record_tokens(counts, both, check)
        if reply.usage is None:  # counted locally: the tokenizer file's or the estimate's count
            prompt_tokens = check.prompt_tokens
            output_tokens = float(check.output_tokens or 0)
    else:
        source = "usage" if reply.usage is not None else "estimate"  # the transport's own estimate
        for s in both:
            counts[s.counted_by[source]] += 1
    tpot = tpot_us(e2e_s, ttft_s, output_tokens)
    _record_inter_token(both, reply)
    for s in both:
        s.e2e.record(e2e)
        s.e2e_from_intended.record(intended)
        if ttft is not None:
            s.ttft.record(ttft)
        if tpot is not None:
            s.tpot.record(tpot)
        totals[s.output_tokens] += output_tokens
        if output_tokens:
            s.output_tokens_hist.record(round(output_tokens))
        if prompt_tokens is not None:
            counts[s.prompt_tokens] += prompt_tokens
            s.prompt_tokens_hist.record(prompt_tokens)
    if outcome.session_lost is not None:
        lost = FailureReason.of(SESSION_KIND, outcome.session_lost)
        for s in both:
            counts[s.failures] += 1
            counts[s.failures_session] += 1
            counts[s.key.with_metric(lost)] += 1
    elif outcome.retention_checked:
        _record_retention(counts, both, outcome)
    if slo is not None and outcome.session_lost is None and outcome.retention_passed:
        values: dict[str, int | None] = {
            Metric.E2E: e2e,
            Metric.TTFT: ttft,
            Metric.TPOT: tpot,
            Metric.E2E_FROM_INTENDED: intended,
        }
        if slo.met(outcome.transport, outcome.dialogue, outcome.turn, values):
            for s in both:
                counts[s.slo_met] += 1
    if prompt_tokens is not None:
        agg_key = both[1].key
        bucket = context_bucket(prompt_tokens)
        batch.record(agg_key.with_metric(ContextMetric(Metric.E2E, bucket)), e2e)
        if ttft is not None:
            batch.record(agg_key.with_metric(ContextMetric(Metric.TTFT, bucket)), ttft)


def record_cut_off(batch: MetricsBatch, transport: str) -> None:
    """One turn in flight when its user was stopped: counted, never silently dropped."""
    batch.counts[SeriesKey(transport, ALL, 0, str(Count.CUT_OFF))] += 1
