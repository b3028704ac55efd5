import random

import pytest
from hdrh.histogram import HdrHistogram

from loadgen.metrics.histograms import METRIC_RANGES, Metric, TrackedHistogram, range_for, record_gaps_in_all


def test_out_of_range_values_are_counted_not_dropped() -> None:
    h = TrackedHistogram(Metric.ITL)
    top = METRIC_RANGES[Metric.ITL].highest
    h.record(5_000)
    h.record(top * 10)
    h.record(-3)
    h.record(0)
    assert h.count == 4  # every event counted
    assert h.above_range == 1
    assert h.below_range == 1  # negative; zero is a legal value clamped to the lowest bucket
    assert h.max() >= top * 0.99


def test_quantiles_are_on_the_0_to_1_scale() -> None:
    h = TrackedHistogram(Metric.E2E)
    for v in range(1, 1001):
        h.record(v * 1000)
    q = h.quantiles([0.5, 0.99])
    assert abs(q[0.5] - 500_000) <= 500_000 * 0.002
    assert abs(q[0.99] - 990_000) <= 990_000 * 0.002


def test_encode_and_add_is_exact() -> None:
    a, b = TrackedHistogram(Metric.TTFT), TrackedHistogram(Metric.TTFT)
    for v in (10, 200, 3000, 40_000):
        a.record(v)
    b.record(7, 5)
    b.record(10**12)
    a.add(b)
    assert a.count == 10
    assert a.above_range == 1


def test_context_bucket_metrics_share_the_base_range() -> None:
    assert TrackedHistogram("e2e@ctx<512").range == METRIC_RANGES[Metric.E2E]


def test_mean_is_exact_and_survives_merge() -> None:
    a, b = TrackedHistogram(Metric.E2E), TrackedHistogram(Metric.E2E)
    a.record(1_000, 3)
    b.record(4_000)
    a.add(b)
    assert a.mean() == (3 * 1_000 + 4_000) / 4


def _reference(metric: str, values: list[int]) -> HdrHistogram:
    r = range_for(metric)
    ref = HdrHistogram(r.lowest, r.highest, r.significant_digits)
    for v in values:
        ref.record_value(min(max(v, r.lowest), r.highest))
    return ref


@pytest.mark.parametrize("metric", [Metric.E2E, Metric.ITL, Metric.SCHEDULE_LAG, Metric.PROMPT_TOKENS])
def test_inlined_index_matches_hdrhistograms_own_record_value(metric: str) -> None:
    rng = random.Random(7)
    top = range_for(metric).highest
    values = [rng.randint(0, 5000) for _ in range(2000)] + [int(10 ** rng.uniform(0, 12)) for _ in range(2000)]
    values += [1, 2, 2047, 2048, 2049, 4095, 4096, top - 1, top, top + 1]
    ours = TrackedHistogram(metric)
    for v in values:
        ours.record(v)
    ref = _reference(metric, values)
    assert list(ours.hist.counts) == list(ref.counts)
    assert ours.hist.get_total_count() == ref.get_total_count()
    assert ours.hist.get_min_value() == ref.get_min_value()
    assert ours.hist.get_max_value() == ref.get_max_value()
    assert ours.above_range == sum(v > top for v in values)


def test_record_gaps_in_all_equals_recording_each_gap() -> None:
    times = [0.0, 0.000003, 0.0009, 0.0019, 1.0 + 10**6, 2.0 + 10**6]
    weights = [1.0, 1.0, 2.0, 0.0, 1.0, 3.0]
    a, b = TrackedHistogram(Metric.ITL), TrackedHistogram(Metric.ITL)
    record_gaps_in_all([a, b], times, weights)
    one = TrackedHistogram(Metric.ITL)
    for i in range(1, len(times)):
        if weights[i] > 0:
            one.record(round((times[i] - times[i - 1]) / weights[i] * 1e6), max(1, round(weights[i])))
    for h in (a, b):
        assert list(h.hist.counts) == list(one.hist.counts)
        assert (h.count, h.above_range, h.value_sum, h.max()) == (one.count, 1, one.value_sum, one.max())
    assert one.count == 1 + 2 + 1 + 3


def test_reset_in_place_gives_an_empty_histogram_that_records_again() -> None:
    h = TrackedHistogram(Metric.E2E)
    h.record(1_234, 5)
    h.record(10**13)
    h.reset()
    assert (h.count, h.above_range, h.value_sum, h.max()) == (0, 0, 0, 0)
    assert not any(h.hist.counts)
    h.record(777)
    assert h.count == 1
    assert h.quantiles([0.5])[0.5] == 777


def test_values_recorded_later_read_the_same_as_values_recorded_now() -> None:
    rng = random.Random(3)
    values = [rng.choice([0, 5, 1300, 1301, 99_999, 10**12, -2]) for _ in range(500)]
    now, later = TrackedHistogram(Metric.ITL), TrackedHistogram(Metric.ITL)
    for v in values:
        now.record(v)
    later.record_later(values[:200])
    later.record_later(values[200:])
    assert later.count == now.count == 500  # reading drains
    assert list(later.hist.counts) == list(now.hist.counts)
    assert (later.above_range, later.below_range, later.value_sum) == (now.above_range, now.below_range, now.value_sum)
    assert later.encode() == now.encode()


def test_values_kept_for_later_are_in_every_read() -> None:
    a = TrackedHistogram(Metric.ITL)
    a.record_later([1000, 2000])
    assert a.quantiles([1.0])[1.0] == 2000
    b, c = TrackedHistogram(Metric.ITL), TrackedHistogram(Metric.ITL)
    b.record_later([7, 7, 7])
    c.add(b)  # the source drains too
    assert c.count == 3
    d = TrackedHistogram(Metric.ITL)
    d.record_later([10**12])
    assert d.above_range == 1
    d.reset()
    assert d.count == 0


def test_a_long_wait_is_recorded_at_the_limit() -> None:
    h = TrackedHistogram(Metric.ITL)
    h.record_later([1] * (TrackedHistogram.LATER_LIMIT + 1))
    assert not h._later  # recorded already, without any read
    assert h.count == TrackedHistogram.LATER_LIMIT + 1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_quantiles_are_hdrhistograms_own(seed: int) -> None:
    rng = random.Random(seed)
    h = TrackedHistogram(Metric.E2E)
    for _ in range(rng.randint(1, 3000)):
        h.record(int(10 ** rng.uniform(0, 9)), rng.randint(1, 3))
    qs = [0.0, 0.001, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 0.99999, 1.0]
    ours = h.quantiles(qs)
    theirs = h.hist.get_percentile_to_value_dict([q * 100.0 for q in qs])
    assert ours == {q: int(theirs[q * 100.0]) for q in qs}
