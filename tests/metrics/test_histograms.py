from loadgen.metrics.histograms import METRIC_RANGES, Metric, TrackedHistogram


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
