"""Tracked histograms (loadgen.metrics.histograms) at their edges: the range limits to the value, empty
histograms, quantiles 0 and above 1, merges across ranges, and gaps with missing, zero or fractional weights."""

from __future__ import annotations

from loadgen.metrics.histograms import (
    METRIC_RANGES,
    HistogramRange,
    Metric,
    TrackedHistogram,
    range_for,
    record_gaps_in_all,
)

HOUR_US = 3_600_000_000
MINUTE_US = 60_000_000


def test_the_ranges_of_the_metrics() -> None:
    assert range_for("e2e") == HistogramRange(1, HOUR_US, 3)
    assert range_for("itl@ctx<512") == HistogramRange(1, MINUTE_US, 3)
    assert range_for("no such metric") == HistogramRange(1, HOUR_US, 3)
    assert range_for("schedule_lag") == HistogramRange(1, HOUR_US, 2)
    assert TrackedHistogram("prompt_tokens").range == METRIC_RANGES[Metric.PROMPT_TOKENS]


def test_the_range_limits_to_the_value() -> None:
    h = TrackedHistogram(Metric.ITL)
    h.record(MINUTE_US)  # the top itself is in range
    h.record(1)
    h.record(0)  # zero is recorded at the lowest value, and is not "below"
    assert (h.count, h.above_range, h.below_range) == (3, 0, 0)
    assert h.value_sum == MINUTE_US + 1 + 1
    h.record(MINUTE_US + 1, 2)
    h.record(-1, 3)
    assert (h.count, h.above_range, h.below_range) == (8, 2, 3)
    assert h.value_sum == MINUTE_US + 2 + 2 * MINUTE_US + 3
    assert h.quantiles([0.0])[0.0] == 1


def test_min_and_max_follow_the_values() -> None:
    h = TrackedHistogram(Metric.E2E)
    h.record(500)
    h.record(100)
    h.record(900)
    assert h.hist.get_min_value() == 100
    assert h.max() == 900
    assert h.quantiles([0.0, 1.0]) == {0.0: 100, 1.0: 900}


def test_an_empty_histogram_reads_zero() -> None:
    h = TrackedHistogram(Metric.E2E)
    assert h.quantiles([0.5, 0.99]) == {0.5: 0, 0.99: 0}
    assert (h.count, h.max(), h.mean(), h.value_sum, h.above_range, h.below_range) == (0, 0, 0.0, 0, 0, 0)


def test_a_quantile_above_one_reads_the_maximum() -> None:
    h = TrackedHistogram(Metric.E2E)
    for v in (10, 20, 30):
        h.record(v)
    assert h.quantiles([1.5]) == {1.5: 30}
    # the value at rank max(1, round-half-up(q * count))
    assert h.quantiles([0.1, 0.49, 0.5, 0.83, 0.84]) == {0.1: 10, 0.49: 10, 0.5: 20, 0.83: 20, 0.84: 30}


def test_one_value_is_every_quantile() -> None:
    h = TrackedHistogram(Metric.E2E)
    h.record(1234)
    assert h.quantiles([0.0, 0.001, 0.5, 1.0]) == {0.0: 1234, 0.001: 1234, 0.5: 1234, 1.0: 1234}
    assert h.mean() == 1234.0


def test_adding_an_encoded_histogram_alone_adds_no_out_of_range_counts() -> None:
    source = TrackedHistogram(Metric.E2E)
    source.record(300, 4)
    target = TrackedHistogram(Metric.E2E)
    target.add_encoded(source.encode())
    assert (target.count, target.above_range, target.below_range, target.value_sum) == (4, 0, 0, 0)
    target.add_encoded(source.encode(), above=2, below=1, value_sum=1200)
    assert (target.count, target.above_range, target.below_range, target.value_sum) == (8, 2, 1, 1200)


def test_adding_a_histogram_of_another_range_keeps_every_figure() -> None:
    itl = TrackedHistogram(Metric.ITL)
    itl.record(250, 3)
    itl.record(MINUTE_US * 2)
    itl.record(-4)
    e2e = TrackedHistogram(Metric.E2E)
    e2e.record(1000)
    e2e.add(itl)
    assert (e2e.count, e2e.above_range, e2e.below_range) == (6, 1, 1)
    assert e2e.value_sum == 1000 + 750 + MINUTE_US + 1
    assert e2e.max() == itl.max()
    assert e2e.quantiles([0.5])[0.5] == 250


def test_adding_a_histogram_of_the_same_range_keeps_every_figure() -> None:
    a, b = TrackedHistogram(Metric.ITL), TrackedHistogram(Metric.ITL)
    a.record(10)
    b.record(20, 2)
    b.record(-1)
    b.record(MINUTE_US + 5)
    a.add(b)
    assert (a.count, a.above_range, a.below_range, a.value_sum) == (5, 1, 1, 10 + 40 + 1 + MINUTE_US)


def test_a_reset_histogram_reads_a_new_minimum_and_maximum() -> None:
    h = TrackedHistogram(Metric.E2E)
    h.record(5)
    h.record(9_000)
    h.reset()
    h.record(700)
    assert h.hist.get_min_value() == 700 and h.max() == 700
    assert h.quantiles([0.0, 1.0]) == {0.0: 700, 1.0: 700}
    fresh = TrackedHistogram(Metric.E2E)
    fresh.record(700)
    assert h.encode() == fresh.encode()


def test_two_times_make_one_gap() -> None:
    h = TrackedHistogram(Metric.ITL)
    record_gaps_in_all([h], [1.0, 1.002], [1.0, 1.0])
    assert (h.count, h.value_sum) == (1, 2000)
    record_gaps_in_all([h], [5.0], [1.0])
    record_gaps_in_all([h], [], [])
    assert h.count == 1


def test_a_gap_without_its_weight_counts_once_whole() -> None:
    h = TrackedHistogram(Metric.ITL)
    record_gaps_in_all([h], [0.0, 0.001, 0.004], [1.0])
    same = TrackedHistogram(Metric.ITL)
    same.record(1000)
    same.record(3000)
    assert (h.count, h.value_sum, h.max()) == (2, 4000, same.max())


def test_zero_and_fractional_weights() -> None:
    h = TrackedHistogram(Metric.ITL)
    record_gaps_in_all([h], [0.0, 0.001, 0.002, 0.003], [1.0, 0.0, 0.4, -1.0])
    # the 0 and negative weights are skipped; 0.4 counts once, the gap divided by 0.4
    assert (h.count, h.value_sum) == (1, 2500)
    nothing = TrackedHistogram(Metric.ITL)
    record_gaps_in_all([nothing], [0.0, 1.0], [1.0, 0.0])
    assert (nothing.count, nothing.max(), nothing.value_sum) == (0, 0, 0)
    nothing.record(50)
    assert nothing.hist.get_min_value() == 50


def test_gaps_update_min_max_and_out_of_range_in_every_histogram() -> None:
    a, b = TrackedHistogram(Metric.ITL), TrackedHistogram(Metric.ITL)
    a.record(5000)
    record_gaps_in_all([a, b], [0.0, 0.001, 0.0015, 100.0, 99.0], [1.0, 1.0, 1.0, 1.0, 1.0])
    for h in (a, b):
        assert h.above_range == 1 and h.below_range == 1
        assert h.max() >= MINUTE_US * 0.999
        assert h.hist.get_min_value() == 1
    assert a.count == 5 and b.count == 4
    assert b.value_sum == 1000 + 500 + MINUTE_US + 1
    assert a.value_sum == 5000 + b.value_sum


def test_gaps_add_to_what_a_histogram_already_holds() -> None:
    h = TrackedHistogram(Metric.ITL)
    h.record(2000)
    h.record(7, 2)
    record_gaps_in_all([h], [0.0, 0.002, 0.004], [1.0, 1.0, 1.0])
    assert h.hist.get_count_at_value(2000) == 3
    assert (h.count, h.value_sum) == (5, 2000 + 14 + 4000)


def test_values_kept_for_later_are_recorded_once_the_limit_is_reached() -> None:
    h = TrackedHistogram(Metric.ITL)
    h.record_later([3] * (TrackedHistogram.LATER_LIMIT - 1))
    assert len(h._later) == TrackedHistogram.LATER_LIMIT - 1  # below the limit: still kept
    h.record_later([3])
    assert not h._later  # at the limit: recorded, bounding what is kept
    assert h.count == TrackedHistogram.LATER_LIMIT


def test_a_reset_forgets_the_values_below_the_range_too() -> None:
    h = TrackedHistogram(Metric.E2E)
    h.record(-5)
    h.reset()
    assert (h.below_range, h.above_range, h.count) == (0, 0, 0)


def test_quantile_zero_is_the_lowest_value_of_the_minimums_bucket() -> None:
    h = TrackedHistogram(Metric.E2E)
    h.record(1_000_003)
    h.record(2_000_000)
    low, high = h.hist.get_lowest_equivalent_value(1_000_003), h.hist.get_highest_equivalent_value(1_000_003)
    assert low < high  # three significant digits: a bucket many microseconds wide
    assert h.quantiles([0.0, 0.5]) == {0.0: low, 0.5: high}


def test_values_kept_after_a_read_are_kept_again() -> None:
    h = TrackedHistogram(Metric.ITL)
    h.record_later([5])
    assert h.count == 1
    h.record_later([6, 7])
    assert h.count == 3
