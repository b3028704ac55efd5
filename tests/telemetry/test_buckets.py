"""Prometheus buckets from HDR histograms: exact where the histogram records values apart, and never off by more
than one HDR bucket's width (0.1 %) past a bound."""

from __future__ import annotations

import random

from loadgen.metrics.histograms import TrackedHistogram
from loadgen.telemetry.buckets import LATENCY_BOUNDS_S, MICROSECONDS_PER_SECOND, TOKEN_BOUNDS, bucket_counts


def test_the_bounds_run_from_one_millisecond_to_two_minutes_in_increasing_order() -> None:
    assert LATENCY_BOUNDS_S[0] == 0.001 and LATENCY_BOUNDS_S[-1] == 120.0
    assert list(LATENCY_BOUNDS_S) == sorted(set(LATENCY_BOUNDS_S))
    assert list(TOKEN_BOUNDS) == sorted(set(TOKEN_BOUNDS))


def test_an_empty_histogram_has_empty_buckets() -> None:
    assert bucket_counts(TrackedHistogram("e2e"), LATENCY_BOUNDS_S, MICROSECONDS_PER_SECOND) == [0] * 16


def test_samples_at_a_bound_count_in_it_and_samples_past_its_hdr_bucket_in_the_next() -> None:
    hist = TrackedHistogram("e2e")
    for us in (1000, 1001, 2500, 5000, 5003, 5004, 119_000_000):
        hist.record(us)
    got = dict(zip(LATENCY_BOUNDS_S, bucket_counts(hist, LATENCY_BOUNDS_S, MICROSECONDS_PER_SECOND), strict=True))
    assert got[0.001] == 1  # 1000 us; 1001 us is past it (values below 2048 us are recorded apart)
    assert got[0.0025] == 3  # + 1001, 2500
    assert got[0.005] == 5  # + 5000 and 5003 (the HDR bucket of 5000 us is 5000..5003)
    assert got[0.01] == 6  # + 5004
    assert got[50.0] == 6
    assert got[120.0] == 7


def test_random_samples_agree_with_a_plain_count_within_the_histograms_resolution() -> None:
    rng = random.Random(14)
    values = [int(rng.lognormvariate(11, 2)) + 1 for _ in range(20_000)]  # ~60 ms median, 1 us .. hours
    hist = TrackedHistogram("e2e")
    for v in values:
        hist.record(v)
    got = bucket_counts(hist, LATENCY_BOUNDS_S, MICROSECONDS_PER_SECOND)
    for bound, count in zip(LATENCY_BOUNDS_S, got, strict=True):
        limit = round(bound * MICROSECONDS_PER_SECOND)
        at_most = hist.hist.get_highest_equivalent_value(limit)
        assert sum(v <= limit for v in values) <= count <= sum(v <= at_most for v in values), bound
        assert at_most - limit <= limit / 1000
        if limit < 2048:
            assert count == sum(v <= limit for v in values)
    assert got[-1] == sum(v <= 120_000_000 for v in values)


def test_values_recorded_later_are_counted() -> None:
    hist = TrackedHistogram("itl")
    hist.record_later([900, 3000, 3000])
    assert bucket_counts(hist, (0.001, 0.0025, 0.005), MICROSECONDS_PER_SECOND) == [1, 1, 3]


def test_token_counts_use_their_own_scale() -> None:
    hist = TrackedHistogram("output_tokens")
    for n in (1, 4, 5, 300):
        hist.record(n)
    assert bucket_counts(hist, TOKEN_BOUNDS, 1)[:6] == [1, 2, 3, 3, 3, 4]  # 1, 4, 16, 64, 256, 1024
