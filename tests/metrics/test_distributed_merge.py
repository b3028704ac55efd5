"""The distributed merge, as a property: whatever N workers record, shipping their batches through
``to_wire`` -> JSON -> ``merge_wire`` gives exactly what one process recording everything gives, in every counts
array, above/below-range count, exact sum and counter; and interval snapshots hold the aggregate series only.

Histograms of two ranges (and two precisions) take part, and values below, at and above each range's ends. The
cases are drawn from seeded generators (the project has no property-testing library): a failure names its seed.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

import pytest

from loadgen.metrics.aggregator import RunAggregator
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.histograms import METRIC_RANGES, Metric, TrackedHistogram
from loadgen.metrics.keys import ALL, Count, SeriesKey, Total

#: Two ranges (1 µs..1 h, 1 µs..1 min at 3 digits) and a third precision (tokens at 2 digits).
METRICS = (str(Metric.E2E), str(Metric.ITL), str(Metric.PROMPT_TOKENS))
KEYS = tuple(
    SeriesKey(transport, dialogue, turn, metric)
    for transport in ("rest", "grpc")
    for dialogue, turn in ((ALL, 0), ("travel", 1), ("travel", 2))
    for metric in METRICS
)
COUNTER_KEYS = tuple(
    SeriesKey(transport, dialogue, turn, str(name))
    for transport in ("rest", "grpc")
    for dialogue, turn in ((ALL, 0), ("travel", 1))
    for name in (Count.TURNS, Count.FAILURES, Total.OUTPUT_TOKENS)
)


def _edges() -> list[int]:
    out = {-(10**9), -1, 0, 1, 2}
    for r in METRIC_RANGES.values():
        out |= {r.highest - 1, r.highest, r.highest + 1, r.highest * 10}
    return sorted(out)


EDGES = _edges()
Records = list[tuple[SeriesKey, int, int]]
Counters = list[tuple[SeriesKey, int]]


def _value(rng: random.Random) -> int:
    """An edge value half the time, else anything from a negative to far above every range."""
    return rng.choice(EDGES) if rng.random() < 0.5 else rng.randint(-(10**6), 10**11)


def _workers(rng: random.Random) -> list[tuple[Records, Counters]]:
    workers = []
    for _ in range(rng.randint(1, 4)):
        records = [(rng.choice(KEYS), _value(rng), rng.randint(1, 3)) for _ in range(rng.randint(0, 40))]
        counters = [(rng.choice(COUNTER_KEYS), rng.randint(0, 1000)) for _ in range(rng.randint(0, 8))]
        workers.append((records, counters))
    return workers


def _fill(batch: MetricsBatch, records: Records, counters: Counters) -> None:
    for key, value, count in records:
        batch.record(key, value, count)
    for key, amount in counters:
        if key.metric == Total.OUTPUT_TOKENS:  # totals hold fractions: quarter steps keep every sum exact
            batch.totals[key] += amount / 4
        else:
            batch.counts[key] += amount


@dataclass(frozen=True)
class Figures:
    """Everything a histogram holds, read out."""

    counts: tuple[int, ...]
    total: int
    above: int
    below: int
    value_sum: int
    min: int
    max: int


def _figures(h: TrackedHistogram) -> Figures:
    hdr = h.hist
    return Figures(tuple(hdr.counts), h.count, h.above_range, h.below_range, h.value_sum, hdr.get_min_value(), h.max())


def _state(batch: MetricsBatch, *, only_all: bool = False) -> dict[str, Any]:
    """A batch as plain data, empty histograms and zero counters left out (they mean nothing)."""

    def keep(key: SeriesKey) -> bool:
        return not only_all or key.dialogue == ALL

    return {
        "h": {k: _figures(h) for k, h in batch.histograms.items() if h.count and keep(k)},
        "c": {k: batch.counter(k) for k in [*batch.counts, *batch.totals] if batch.counter(k) and keep(k)},
    }


def _wire_state(wire: dict[str, Any]) -> dict[str, Any]:
    batch = MetricsBatch()
    batch.merge_wire(json.loads(json.dumps(wire)))
    return _state(batch)


@pytest.mark.parametrize("seed", range(40))
def test_n_workers_through_the_wire_equal_one_process(seed: int) -> None:
    workers = _workers(random.Random(seed))
    single = MetricsBatch()  # one process recording everything itself
    for records, counters in workers:
        _fill(single, records, counters)

    over_wire = RunAggregator(interval_s=3600)  # Locust's master: batches from worker processes
    local = RunAggregator(interval_s=3600)  # the only process: its own batches merged directly
    for records, counters in workers:
        shipped, own = MetricsBatch(), MetricsBatch()
        _fill(shipped, records, counters)
        _fill(own, records, counters)
        over_wire.merge_wire(json.loads(json.dumps(shipped.take().to_wire())))
        local.merge(own)
        assert shipped.is_empty()

    expected = _state(single)
    assert _state(over_wire.total) == expected
    assert _state(local.total) == expected

    # the interval: the aggregate series (dialogue "*") only, histograms and counters alike, both ways in
    over_wire.maybe_roll(force=True)
    local.maybe_roll(force=True)
    expected_interval = _state(single, only_all=True)
    (wire_interval,) = over_wire.intervals
    (local_interval,) = local.intervals
    assert _wire_state(wire_interval.wire) == expected_interval
    assert _wire_state(local_interval.wire) == expected_interval


def test_the_wire_carries_the_out_of_range_counts_and_the_exact_sum() -> None:
    """The same, spelled out for one histogram: above and below range travel beside the HDR encoding."""
    batch = MetricsBatch()
    key = SeriesKey("rest", ALL, 0, str(Metric.ITL))
    top = METRIC_RANGES[Metric.ITL].highest
    batch.record(key, top + 1, 2)
    batch.record(key, -5)
    batch.record(key, 1000)
    entry = json.loads(json.dumps(batch.to_wire()))["h"][key.encode()]
    assert entry[1:] == [2, 1, 2 * top + 1 + 1000]
    merged = MetricsBatch()
    merged.merge_wire(json.loads(json.dumps(batch.to_wire())))
    merged.merge_wire(json.loads(json.dumps(batch.to_wire())))
    hist = merged.histograms[key]
    assert (hist.count, hist.above_range, hist.below_range, hist.value_sum) == (8, 4, 2, 2 * (2 * top + 1 + 1000))


@pytest.mark.parametrize("seed", range(20))
def test_adding_a_histogram_of_another_range_goes_through_the_encoding_exactly(seed: int) -> None:
    """An ITL histogram (1 µs..1 min) added into an E2E one (1 µs..1 h): as if the E2E histogram had recorded
    the ITL histogram's (clamped) values, with its above/below counts and sum carried over."""
    rng = random.Random(seed)
    values = [(_value(rng), rng.randint(1, 3)) for _ in range(rng.randint(1, 30))]
    itl, e2e = TrackedHistogram(Metric.ITL), TrackedHistogram(Metric.E2E)
    assert itl.range != e2e.range
    expected = TrackedHistogram(Metric.E2E)
    top = itl.range.highest
    for value, count in values:
        itl.record(value, count)
        expected.record(min(max(value, 1), top), count)
    e2e.add(itl)
    got = _figures(e2e)
    assert got.counts == _figures(expected).counts
    assert got.total == sum(c for _, c in values)
    assert got.above == sum(c for v, c in values if v > top)
    assert got.below == sum(c for v, c in values if v < 0)
    assert got.value_sum == itl.value_sum == sum(min(max(v, 1), top) * c for v, c in values)
