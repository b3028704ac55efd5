"""HDR histograms with a range chosen per metric, and out-of-range values counted, never dropped silently."""

from __future__ import annotations

import ctypes
import sys
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, overload

from hdrh.histogram import HdrHistogram

from loadgen.metrics.keys import Metric, histogram_metric

__all__ = ["METRIC_RANGES", "HistogramRange", "Metric", "TrackedHistogram", "range_for", "record_gaps_in_all"]


@dataclass(frozen=True)
class HistogramRange:
    lowest: int
    highest: int
    significant_digits: int


_HOUR_US = 3_600_000_000
_MINUTE_US = 60_000_000

#: Ranges per metric (integer microseconds, or tokens for the token metrics).
METRIC_RANGES: dict[Metric, HistogramRange] = {
    Metric.E2E: HistogramRange(1, _HOUR_US, 3),
    Metric.TTFT: HistogramRange(1, _HOUR_US, 3),
    Metric.ITL: HistogramRange(1, _MINUTE_US, 3),
    Metric.TPOT: HistogramRange(1, _MINUTE_US, 3),
    Metric.E2E_FROM_INTENDED: HistogramRange(1, _HOUR_US, 3),
    Metric.SCHEDULE_LAG: HistogramRange(1, _HOUR_US, 2),
    Metric.GENERATOR_LAG: HistogramRange(1, _MINUTE_US, 3),
    Metric.PROMPT_TOKENS: HistogramRange(1, 10_000_000, 2),
    Metric.OUTPUT_TOKENS: HistogramRange(1, 10_000_000, 2),
}
_DEFAULT_RANGE = HistogramRange(1, _HOUR_US, 3)


def range_for(metric: str) -> HistogramRange:
    """The range of a histogram named ``metric``: a context metric (``e2e@ctx<512``) shares its metric's."""
    measured = histogram_metric(metric)
    return _DEFAULT_RANGE if measured is None else METRIC_RANGES[measured]


class _Drained:
    """A read-only figure of a :class:`TrackedHistogram`, read after what ``record_later`` kept is recorded."""

    def __init__(self, attribute: str, doc: str) -> None:
        self._attribute = attribute
        self.__doc__ = doc

    @overload
    def __get__(self, histogram: None, owner: type[Any]) -> _Drained: ...
    @overload
    def __get__(self, histogram: TrackedHistogram, owner: type[Any]) -> int: ...
    def __get__(self, histogram: TrackedHistogram | None, owner: type[Any]) -> _Drained | int:
        if histogram is None:
            return self
        histogram._drain()
        value: int = getattr(histogram, self._attribute)
        return value


class TrackedHistogram:
    """An HdrHistogram plus counters of values below/above its range.

    A value of 0 is recorded as 1 (the lowest trackable value); values above the range are counted in
    ``above_range`` and also recorded at the highest trackable value so counts stay equal to events.

    Recording is on every turn's hot path (an inter-token sample per token), so :meth:`record` computes the
    counts index itself, with the formula of hdrhistogram's ``_counts_index_for`` inlined, instead of
    going through ``record_value``'s four Python calls; a unit test holds it to hdrhistogram's own result.
    :meth:`record_later` goes further: it only keeps the values, and they are recorded (once per distinct
    value) the next time anything reads the histogram: every public read drains them first.
    """

    __slots__ = (
        "_above", "_below", "_counts", "_half_count", "_half_mag", "_hdr", "_highest", "_later", "_lowest",
        "_mask", "_shift_base", "_sum", "range",
    )  # fmt: skip

    #: Values kept by :meth:`record_later` are recorded at the latest when this many are waiting.
    LATER_LIMIT = 65_536

    def __init__(self, metric: str) -> None:
        self.range = range_for(metric)
        self._hdr = HdrHistogram(self.range.lowest, self.range.highest, self.range.significant_digits)
        self._above = 0
        self._below = 0
        self._sum = 0  # exact sum of recorded (clamped) values: hdrh's own mean walks every counter
        self._later: list[int] = []
        h = self._hdr
        self._counts = h.counts
        self._lowest: int = self.range.lowest
        self._highest: int = self.range.highest
        self._mask: int = h.sub_bucket_mask
        self._shift_base: int = h.unit_magnitude  # bucket index = bit_length - unit_magnitude - (half_mag + 1)
        self._half_mag: int = h.sub_bucket_half_count_magnitude
        self._half_count: int = h.sub_bucket_half_count

    # --- recording ------------------------------------------------------------------------------------------

    def _index(self, value: int) -> int:
        bucket = (value | self._mask).bit_length() - self._shift_base - self._half_mag - 1
        return ((bucket + 1) << self._half_mag) + (value >> (bucket + self._shift_base)) - self._half_count

    def _clamp(self, value: int, count: int) -> int:
        if value < self._lowest:
            if value < 0:
                self._below += count
            return self._lowest
        if value > self._highest:
            self._above += count
            return self._highest
        return value

    def record(self, value: int, count: int = 1) -> None:
        if not self._lowest <= value <= self._highest:
            value = self._clamp(value, count)
        self._counts[self._index(value)] += count
        h = self._hdr
        h.total_count += count
        if value < h.min_value:
            h.min_value = value
        if value > h.max_value:
            h.max_value = value
        self._sum += value * count

    def record_later(self, values: list[int]) -> None:
        """Record each of ``values`` once, deferred: kept in a list (a C-speed extend) and recorded once per
        distinct value when the histogram is next read. Exactly the same figures as recording them now."""
        later = self._later
        later.extend(values)
        if len(later) >= self.LATER_LIMIT:
            self._drain()

    def _drain(self) -> None:
        later = self._later
        if later:
            self._later = []
            for value, n in Counter(later).items():
                self.record(value, n)

    # --- reading (each read records what record_later kept first) ------------------------------------------

    @property
    def hist(self) -> HdrHistogram:
        """The underlying HdrHistogram, up to date."""
        self._drain()
        return self._hdr

    @property
    def count(self) -> int:
        self._drain()
        return int(self._hdr.get_total_count())

    above_range = _Drained("_above", "Values recorded above the range (and counted at its top).")
    below_range = _Drained("_below", "Negative values recorded (and counted at the lowest value).")
    value_sum = _Drained("_sum", "Exact sum of the recorded (clamped) values.")

    def encode(self) -> str:
        return bytes(self.hist.encode()).decode("ascii")

    def add_encoded(self, encoded: str, above: int = 0, below: int = 0, value_sum: int = 0) -> None:
        self.hist.decode_and_add(encoded.encode("ascii"))
        self._above += above
        self._below += below
        self._sum += value_sum

    def add(self, other: TrackedHistogram) -> None:
        """Add another histogram of the same range, exactly (in place, no encoding)."""
        if other.range != self.range:
            self.add_encoded(other.encode(), other.above_range, other.below_range, other.value_sum)
            return
        self.hist.add(other.hist)
        self._above += other._above
        self._below += other._below
        self._sum += other._sum

    def quantiles(self, quantiles: Iterable[float]) -> dict[float, int]:
        """Values at the given quantiles (0..1 scale), read in one pass, as hdrhistogram's
        ``get_percentile_to_value_dict`` gives them (a unit test holds it to that): the counters are read
        as one buffer and summed in C (``itertools.accumulate``) up to the highest value's, not through a
        Python call per counter (~4x faster; a report reads hundreds of these)."""
        qs = list(quantiles)
        total = self.count  # drains
        if total == 0:
            return dict.fromkeys(qs, 0)
        h = self._hdr
        top = self._index(h.max_value)
        running = list(accumulate(memoryview(self._counts).cast("B").cast("Q")[: top + 1].tolist()))
        out: dict[float, int] = {}
        for q in qs:
            percentile = min(q * 100.0, 100.0)
            target = max(int(percentile * total / 100 + 0.5), 1)
            index = min(bisect_left(running, target), top)
            value = h.get_value_from_index(index)
            out[q] = int(h.get_highest_equivalent_value(value) if percentile else h.get_lowest_equivalent_value(value))
        return out

    def max(self) -> int:
        return int(self._hdr.get_max_value()) if self.count else 0

    def mean(self) -> float:
        count = self.count
        return self._sum / count if count else 0.0

    def reset(self) -> None:
        """Empty the histogram in place (a memset, not hdrhistogram's per-counter loop)."""
        self._later = []
        h = self._hdr
        if h.total_count:
            ctypes.memset(self._counts, 0, ctypes.sizeof(self._counts))
        h.total_count = 0
        h.min_value = sys.maxsize
        h.max_value = 0
        h.start_time_stamp_msec = 0  # as a new histogram has them
        h.end_time_stamp_msec = 0
        self._above = 0
        self._below = 0
        self._sum = 0


def record_gaps_in_all(hists: Sequence[TrackedHistogram], times: Sequence[float], weights: Sequence[float]) -> None:
    """Record the gaps between successive ``times`` (seconds) into several histograms of one range (a turn's
    series and its transport-wide aggregate), in whole microseconds: gap ``i`` (from ``times[i - 1]`` to
    ``times[i]``) is divided by ``weights[i]`` (1 when missing) and counted ``round(weights[i])`` times (at
    least once); a gap whose weight is 0 or less is skipped. For inter-token latency: the gap after each
    chunk spread over the tokens it carried, as :meth:`loadgen.types.Reply.inter_token_samples` defines it.

    One pass, each counts index computed once, totals, min and max set once per histogram: this runs once
    per token of every turn."""
    if len(times) < 2:
        return
    first = hists[0]
    lowest, highest = first._lowest, first._highest
    mask, shift, half_mag, half_count = first._mask, first._shift_base, first._half_mag, first._half_count
    indexed: list[tuple[int, int]] = []
    total = value_sum = 0
    smallest, largest = sys.maxsize, 0
    known = len(weights)
    previous = times[0]
    for i in range(1, len(times)):
        now = times[i]
        weight = weights[i] if i < known else 1.0
        if weight > 0:
            value = round((now - previous) / weight * 1_000_000)
            n = max(1, round(weight))
            if not lowest <= value <= highest:
                for h in hists:
                    clamped = h._clamp(value, n)
                value = clamped
            bucket = (value | mask).bit_length() - shift - half_mag - 1
            indexed.append((((bucket + 1) << half_mag) + (value >> (bucket + shift)) - half_count, n))
            total += n
            value_sum += value * n
            if value < smallest:
                smallest = value
            if value > largest:
                largest = value
        previous = now
    if not total:
        return
    for h in hists:
        counts = h._counts
        for index, n in indexed:
            counts[index] += n
        hh = h._hdr
        hh.total_count += total
        if smallest < hh.min_value:
            hh.min_value = smallest
        if largest > hh.max_value:
            hh.max_value = largest
        h._sum += value_sum
