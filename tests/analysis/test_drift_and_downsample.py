"""Drift (Theil-Sen per hour) and envelope downsampling."""

from __future__ import annotations

import random

import pytest

from loadgen.analysis.downsample import Bucket, envelope
from loadgen.analysis.drift import drift, theil_sen


def test_theil_sen_finds_the_line_and_ignores_a_few_outliers() -> None:
    xs = list(range(20))
    ys = [2.0 * x + 1.0 for x in xs]
    assert theil_sen(xs, ys) == pytest.approx(2.0)
    ys[3], ys[11], ys[17] = 500.0, -400.0, 900.0  # three wild windows out of twenty
    assert theil_sen(xs, ys) == pytest.approx(2.0, abs=0.2)


def test_theil_sen_needs_two_distinct_xs() -> None:
    assert theil_sen([1.0], [1.0]) is None
    assert theil_sen([1.0, 1.0], [1.0, 5.0]) is None
    with pytest.raises(ValueError):
        theil_sen([1.0, 2.0], [1.0])


def test_drift_per_hour_and_relative_to_the_first_window() -> None:
    # p99 of 100 ms creeping up 5 ms per hour, one window every 10 minutes for 8 hours
    times = [600.0 * i + 300.0 for i in range(48)]
    values: list[float | None] = [100.0 + 5.0 * t / 3600.0 for t in times]
    result = drift(times, values)
    assert result.per_hour == pytest.approx(5.0)
    assert result.first == pytest.approx(100.0 + 5.0 * 300 / 3600)
    assert result.relative_per_hour == pytest.approx(5.0 / result.first)
    assert result.to_json()["pct_per_hour"] == pytest.approx(100 * 5.0 / result.first, abs=0.001)


def test_flat_noisy_series_has_no_drift_to_speak_of() -> None:
    rng = random.Random(3)
    times = [float(i) * 3600 for i in range(8)]
    values: list[float | None] = [100.0 + rng.uniform(-2, 2) for _ in times]
    result = drift(times, values)
    assert result.per_hour is not None and abs(result.per_hour) < 2.0


def test_windows_without_data_are_skipped_and_too_few_give_no_slope() -> None:
    assert drift([0.0, 3600.0, 7200.0], [None, 1.0, None]).per_hour is None
    result = drift([0.0, 3600.0, 7200.0, 10800.0], [None, 1.0, 2.0, 3.0])
    assert (result.windows, result.first, result.per_hour) == (3, 1.0, pytest.approx(1.0))
    assert drift([0.0, 3600.0, 7200.0], [0.0, 1.0, 2.0]).relative_per_hour is None  # first window at 0


def test_envelope_keeps_every_point_within_budget() -> None:
    buckets = envelope([1.0, 2.0, 3.0], [5.0, None, 7.0], budget=10)
    assert buckets == [Bucket(1.0, 1.0, 5.0, 5.0, 5.0, 1), Bucket(3.0, 3.0, 7.0, 7.0, 7.0, 1)]


def test_envelope_of_a_long_series_keeps_the_spike() -> None:
    times = [float(i) for i in range(5760)]  # 8 h of 5 s intervals
    values: list[float | None] = [10.0] * 5760
    values[4321] = 950.0
    buckets = envelope(times, values, budget=300)
    assert len(buckets) <= 300
    assert sum(b.points for b in buckets) == 5760
    spike = next(b for b in buckets if b.start <= 4321 <= b.end)
    assert spike.high == 950.0 and spike.low == 10.0
    assert max(b.high for b in buckets) == 950.0
    by_max = envelope(times, values, budget=300, pick=max)
    assert max(b.value for b in by_max) == 950.0


def test_envelope_budget_must_be_positive_and_empty_is_empty() -> None:
    assert envelope([], [], budget=5) == []
    with pytest.raises(ValueError):
        envelope([1.0], [1.0], budget=0)
