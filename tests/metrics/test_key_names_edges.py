"""Series names (loadgen.metrics.keys) at their edges: a reason text holding the separators, the bucket limits,
the default scope of a series, and names that only look like a context metric or a reason."""

from __future__ import annotations

import pytest

from loadgen.metrics.keys import (
    ALL,
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


def test_a_key_round_trips_even_when_its_reason_holds_the_separators() -> None:
    reason = FailureReason.of("ServerError", "HTTP 503 | upstream: a|b")
    key = SeriesKey("rest", "support", 12, str(reason))
    assert key.encode() == "rest|support|12|reason:ServerError:HTTP 503 | upstream: a|b"
    assert SeriesKey.decode(key.encode()) == key
    assert FailureReason.parse(SeriesKey.decode(key.encode()).metric) == reason


def test_the_default_series_is_a_transports_aggregate() -> None:
    assert SeriesKey.series("grpc") == SeriesKey("grpc", ALL, 0, "")
    assert SeriesKey.series("grpc").with_metric(Metric.TTFT).encode() == "grpc|*|0|ttft"
    assert SeriesKey.series("amqp", "d", 3).with_metric(Count.TURNS) == SeriesKey("amqp", "d", 3, "count")
    assert SeriesKey("rest", "d", 2, "e2e").turn_key() == ("rest", "d", 2)


def test_keys_sort_by_transport_dialogue_turn_then_metric() -> None:
    keys = [SeriesKey("rest", "d", 10, "e2e"), SeriesKey("rest", "d", 2, "ttft"), SeriesKey("grpc", "z", 1, "e2e")]
    assert sorted(keys) == [keys[2], keys[1], keys[0]]


@pytest.mark.parametrize(
    ("tokens", "bucket"),
    [(-1, "<512"), (2048, "2k-4k"), (4095, "2k-4k"), (4097, ">4k"), (10**9, ">4k")],
)
def test_bucket_limits(tokens: int, bucket: str) -> None:
    assert context_bucket(tokens) == bucket


def test_a_reason_is_cut_at_exactly_200_characters() -> None:
    assert FailureReason.of("TurnTimeout", "y" * 200).text == "y" * 200
    assert FailureReason.of("TurnTimeout", "y" * 201).text == "y" * 200
    assert FailureReason.of("TurnTimeout", "short") == FailureReason("TurnTimeout", "short")


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("reason:ServerError:a:b", FailureReason("ServerError", "a:b")),  # a colon in the text stays in the text
        ("reason:Kind", FailureReason("Kind", "")),
        ("reason:", FailureReason("", "")),
        ("Reason:Kind:x", None),
        ("xreason:Kind:x", None),
    ],
)
def test_reason_names(name: str, parsed: FailureReason | None) -> None:
    assert FailureReason.parse(name) == parsed


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("itl@ctx2k-4k", ContextMetric(Metric.ITL, "2k-4k")),
        ("e2e@ctx", ContextMetric(Metric.E2E, "")),
        ("e2e@ctx@ctx<512", ContextMetric(Metric.E2E, "@ctx<512")),  # the metric is what stands before the first
        ("e2e@ct<512", None),
        ("@ctx<512", None),
        ("count@ctx<512", None),
    ],
)
def test_context_metric_names(name: str, parsed: ContextMetric | None) -> None:
    assert ContextMetric.parse(name) == parsed
    assert histogram_metric(name) == (None if parsed is None else parsed.metric)


def test_every_histogram_metric_is_its_own_name_and_only_totals_are_totals() -> None:
    for metric in Metric:
        assert histogram_metric(str(metric)) is metric
    assert is_total(str(Total.OUTPUT_TOKENS))
    assert not any(is_total(str(c)) for c in Count)
    assert not is_total("")
