"""The series vocabulary: every metric name built and parsed in one place, and counters typed as what they hold."""

from __future__ import annotations

import json

import pytest

from loadgen.errors import ServerError
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.histograms import range_for
from loadgen.metrics.keys import (
    CONTEXT_BUCKET_ORDER,
    ContextMetric,
    Count,
    FailureReason,
    Metric,
    SeriesKey,
    Total,
    context_bucket,
    histogram_metric,
    is_total,
)
from loadgen.metrics.turns import TurnOutcome, record_turn
from loadgen.types import Reply, Usage


def test_counter_names_are_the_ones_run_folders_hold() -> None:
    assert {str(c) for c in Count} == {
        "count", "failures", "failures.transport", "failures.retention", "failures.session", "retention.checked",
        "retention.passed", "prompt_tokens", "cut_off", "slo.met", "arrivals", "arrivals.started",
        "arrivals.dropped", "arrivals.live_ms", "arrivals.live_max", "arrivals.dispatch_ms", "arrivals.dispatchers",
        "arrivals.run_ms", "arrivals.requested_milli",
        "tokens.by_usage", "tokens.by_tokenizer", "tokens.by_estimate", "tokens.short_reply", "tokens.usage_mismatch",
    }  # fmt: skip
    assert [str(t) for t in Total] == ["output_tokens"]
    assert is_total("output_tokens") and not is_total("count") and not is_total("reason:ServerError:x")


@pytest.mark.parametrize(
    ("reason", "name"),
    [
        (FailureReason("ServerError", "HTTP 503"), "reason:ServerError:HTTP 503"),
        (FailureReason("RetentionFailure", "turn 4 forgot code='A:1' planted at turn 2"),
         "reason:RetentionFailure:turn 4 forgot code='A:1' planted at turn 2"),
        (FailureReason("TurnTimeout", ""), "reason:TurnTimeout:"),
    ],
)  # fmt: skip
def test_failure_reasons_build_and_parse_back(reason: FailureReason, name: str) -> None:
    assert str(reason) == name
    assert FailureReason.parse(name) == reason
    assert SeriesKey("rest", "d", 1, "").with_metric(reason).metric == name


def test_a_failure_reason_is_cut_at_200_characters_and_labelled_for_reports() -> None:
    reason = FailureReason.of("ServerError", "x" * 300)
    assert len(reason.text) == 200
    assert FailureReason("ConnectError", "refused").label() == "ConnectError: refused"
    assert FailureReason.parse("count") is None
    assert FailureReason.parse("e2e@ctx<512") is None


@pytest.mark.parametrize(
    ("name", "metric", "bucket"),
    [("e2e@ctx<512", Metric.E2E, "<512"), ("ttft@ctx512-2k", Metric.TTFT, "512-2k"), ("e2e@ctx>4k", Metric.E2E, ">4k")],
)
def test_context_metrics_build_and_parse_back(name: str, metric: Metric, bucket: str) -> None:
    assert str(ContextMetric(metric, bucket)) == name
    assert ContextMetric.parse(name) == ContextMetric(metric, bucket)
    assert histogram_metric(name) is metric
    assert range_for(name) == range_for(str(metric))


def test_names_that_are_no_context_metric() -> None:
    assert ContextMetric.parse("e2e") is None
    assert ContextMetric.parse("bogus@ctx<512") is None
    assert histogram_metric("bogus") is None
    assert histogram_metric("itl") is Metric.ITL


@pytest.mark.parametrize(
    ("tokens", "bucket"),
    [(0, "<512"), (511, "<512"), (512, "512-2k"), (2047, "512-2k"), (2048, "2k-4k"), (4096, ">4k")],
)
def test_context_buckets(tokens: int, bucket: str) -> None:
    assert context_bucket(tokens) == bucket
    assert CONTEXT_BUCKET_ORDER == ("<512", "512-2k", "2k-4k", ">4k")


def _reply(tokens: list[float], usage: Usage | None) -> Reply:
    times = [1.0 + 0.01 * i for i in range(len(tokens))]
    return Reply("ok", t_sent=0.9, t_done=times[-1], chunk_times=times, chunk_tokens=tokens, usage=usage)


def test_counts_hold_integers_and_totals_fractions_through_the_wire() -> None:
    batch = MetricsBatch()
    record_turn(batch, TurnOutcome("rest", "d", 1, _reply([1.0, 1.5], None)))
    record_turn(batch, TurnOutcome("rest", "d", 1, _reply([1.0, 1.0], Usage(700, 2))))
    record_turn(batch, TurnOutcome("rest", "d", 1, None, error=ServerError("HTTP 503")))
    key = SeriesKey.series("rest", "d", 1)
    assert batch.counter(key.with_metric(Total.OUTPUT_TOKENS)) == 4.5
    assert batch.counter(key.with_metric(Count.TURNS)) == 3
    assert batch.counter(key.with_metric(Count.PROMPT_TOKENS)) == 700
    assert batch.counter(key.with_metric(FailureReason("ServerError", "HTTP 503"))) == 1
    wire = json.loads(json.dumps(batch.to_wire()))
    assert wire["c"]["rest|d|1|count"] == 3 and isinstance(wire["c"]["rest|d|1|count"], int)
    assert wire["c"]["rest|d|1|output_tokens"] == 4.5
    back = MetricsBatch()
    back.merge_wire(wire)
    assert back.counts == batch.counts
    assert dict(back.totals) == dict(batch.totals)
    assert all(type(v) is int for v in back.counts.values())
    assert all(type(v) is float for v in back.totals.values())
    assert set(back.totals) == {
        key.with_metric(Total.OUTPUT_TOKENS),
        SeriesKey.series("rest").with_metric(Total.OUTPUT_TOKENS),
    }
