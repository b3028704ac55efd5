"""The collector against a MetricsBatch of known samples: what a scrape shows, parsed back with prometheus-client's
own parser, and that it reads the aggregator held still."""

from __future__ import annotations

from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from loadgen.metrics.aggregator import RunAggregator
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.keys import ALL, ContextMetric, Count, FailureReason, Metric, SeriesKey, Total
from loadgen.telemetry.buckets import LATENCY_BOUNDS_S
from loadgen.telemetry.prometheus import RunCollector, registry_for

TURN = SeriesKey.series("rest", "greet", 2)
AGG = SeriesKey.series("rest")
LAG = SeriesKey(ALL, ALL, 0, str(Metric.GENERATOR_LAG))


def _batch() -> MetricsBatch:
    batch = MetricsBatch()
    for base in (TURN, AGG):
        for us in (1000, 1001, 5000, 5004, 130_000_000):  # the last one is above 120 s: +Inf only
            batch.record(base.with_metric(Metric.E2E), us)
        batch.record(base.with_metric(Metric.TTFT), 40_000)
        batch.record(base.with_metric(Metric.OUTPUT_TOKENS), 20)
        batch.counts[base.with_metric(Count.TURNS)] += 6
        batch.counts[base.with_metric(Count.FAILURES)] += 3
        batch.counts[base.with_metric(Count.TRANSPORT_FAILURES)] += 1
        batch.counts[base.with_metric(Count.RETENTION_FAILURES)] += 2
        batch.counts[base.with_metric(Count.RETENTION_CHECKED)] += 4
        batch.counts[base.with_metric(Count.RETENTION_PASSED)] += 2
        batch.counts[base.with_metric(FailureReason.of("TurnTimeout", "no reply in 60 s"))] += 1
        batch.totals[base.with_metric(Total.OUTPUT_TOKENS)] += 100.5
    batch.counts[AGG.with_metric(Count.CUT_OFF)] += 2
    batch.record(AGG.with_metric(ContextMetric(Metric.E2E, "<512")), 1000)
    batch.record(LAG, 700)
    return batch


def _scrape(agg: RunAggregator, users: int | None = 7) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry_for(RunCollector(lambda: agg, lambda: users))).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _labels(transport: str, dialogue: str, turn: str, **more: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"transport": transport, "dialogue": dialogue, "turn": turn, **more}.items()))


def _aggregator(batch: MetricsBatch) -> RunAggregator:
    agg = RunAggregator(clock=lambda: 1_700_000_000.0)
    agg.merge(batch)
    return agg


def test_counters_per_transport_dialogue_and_turn() -> None:
    got = _scrape(_aggregator(_batch()))
    for labels in (_labels("rest", "greet", "2"), _labels("rest", "all", "all")):
        assert got["chat_loadgen_turns_total", labels] == 6
        assert got["chat_loadgen_retention_checked_total", labels] == 4
        assert got["chat_loadgen_retention_passed_total", labels] == 2
        assert got["chat_loadgen_output_tokens_total", labels] == 100.5
    turn_failures = {
        dict(labels)["kind"]: value
        for (name, labels), value in got.items()
        if name == "chat_loadgen_failures_total" and dict(labels)["dialogue"] == "greet"
    }
    assert turn_failures == {"transport": 1, "retention": 2}  # their sum is the 3 failures
    assert not any(name == "chat_loadgen_failures_total" and dict(labels)["kind"] == "" for name, labels in got)
    assert got["chat_loadgen_cut_off_turns_total", _labels("rest", "all", "all")] == 2
    assert not any("reason" in name or "TurnTimeout" in str(labels) for name, labels in got)  # no free text


def test_latency_histograms_in_seconds_with_exact_bucket_counts() -> None:
    got = _scrape(_aggregator(_batch()))
    labels = _labels("rest", "greet", "2")

    def bucket(le: str) -> float:
        return got["chat_loadgen_e2e_seconds_bucket", tuple(sorted((*labels, ("le", le))))]

    assert bucket("0.001") == 1
    assert bucket("0.0025") == 2
    assert bucket("0.005") == 3
    assert bucket("0.01") == 4
    assert bucket("120.0") == 4
    assert bucket("+Inf") == 5
    assert got["chat_loadgen_e2e_seconds_count", labels] == 5
    assert got["chat_loadgen_e2e_seconds_sum", labels] == (1000 + 1001 + 5000 + 5004 + 130_000_000) / 1e6
    le_values = {dict(k[1])["le"] for k in got if k[0] == "chat_loadgen_ttft_seconds_bucket"}
    assert len(le_values) == len(LATENCY_BOUNDS_S) + 1
    assert got["chat_loadgen_ttft_seconds_bucket", tuple(sorted((*labels, ("le", "0.025"))))] == 0
    assert got["chat_loadgen_ttft_seconds_bucket", tuple(sorted((*labels, ("le", "0.05"))))] == 1
    assert got["chat_loadgen_turn_output_tokens_count", labels] == 1
    assert got["chat_loadgen_turn_output_tokens_sum", labels] == 20
    everything = _labels("all", "all", "all")
    assert got["chat_loadgen_generator_lag_seconds_count", everything] == 1
    assert got["chat_loadgen_generator_lag_seconds_bucket", tuple(sorted((*everything, ("le", "0.001"))))] == 1
    assert not any("ctx" in name for name, _ in got)  # latency by context length is left out


def test_every_metric_recorded_gets_a_histogram() -> None:
    batch = MetricsBatch()
    for metric in Metric:
        batch.record(AGG.with_metric(metric), 3)
    names = {name for name, _ in _scrape(_aggregator(batch))}
    for metric in Metric:
        tokens = metric.value.endswith("_tokens")
        expected = f"chat_loadgen_turn_{metric}" if tokens else f"chat_loadgen_{metric}_seconds"
        assert f"{expected}_count" in names, metric


def test_gauges_users_and_start_time() -> None:
    got = _scrape(_aggregator(_batch()), users=7)
    assert got["chat_loadgen_users", ()] == 7
    assert got["chat_loadgen_run_start_time_seconds", ()] == 1_700_000_000.0
    assert ("chat_loadgen_users", ()) not in _scrape(_aggregator(_batch()), users=None)


def test_no_aggregator_yet_shows_no_figures() -> None:
    text = generate_latest(registry_for(RunCollector(lambda: None, lambda: 0))).decode()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert names == {"chat_loadgen_users"}


def test_a_scrape_holds_the_aggregator_still_while_it_reads_and_pauses_throughout() -> None:
    agg = _aggregator(_batch())
    seen: list[bool] = []

    def pause() -> None:
        seen.append(agg._lock.locked())

    generate_latest(registry_for(RunCollector(lambda: agg, pause=pause)))
    # held while the histograms are read (pausing between them), let go before the families are formatted
    assert True in seen and False in seen and seen == sorted(seen, reverse=True)
    assert not agg._lock.locked()


def test_a_new_test_starts_the_counters_from_zero() -> None:
    agg = _aggregator(_batch())
    assert _scrape(agg)["chat_loadgen_turns_total", _labels("rest", "all", "all")] == 6
    agg.begin(1_700_000_100.0)
    got: dict[Any, float] = _scrape(agg)
    assert not any(name == "chat_loadgen_turns_total" for name, _ in got)
    assert got["chat_loadgen_run_start_time_seconds", ()] == 1_700_000_100.0
