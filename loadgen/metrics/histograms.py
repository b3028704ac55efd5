"""HDR histograms with a range chosen per metric, and out-of-range values counted, never dropped silently."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from hdrh.histogram import HdrHistogram


class Metric(enum.StrEnum):
    E2E = "e2e"  # end-to-end latency of a turn (sent -> last byte)
    TTFT = "ttft"  # time to first token
    ITL = "itl"  # inter-token latency, per token, excluding the time to first token
    SCHEDULE_LAG = "schedule_lag"  # when a turn started minus when it was meant to start
    GENERATOR_LAG = "generator_lag"  # lateness of a 10 ms ticking greenlet: the load generator's own lag
    PROMPT_TOKENS = "prompt_tokens"  # a count, not microseconds
    OUTPUT_TOKENS = "output_tokens"  # a count, not microseconds


@dataclass(frozen=True)
class HistogramRange:
    lowest: int
    highest: int
    significant_digits: int


_HOUR_US = 3_600_000_000
_MINUTE_US = 60_000_000

#: Ranges per metric (integer microseconds, or tokens for the token metrics).
METRIC_RANGES: dict[str, HistogramRange] = {
    Metric.E2E: HistogramRange(1, _HOUR_US, 3),
    Metric.TTFT: HistogramRange(1, _HOUR_US, 3),
    Metric.ITL: HistogramRange(1, _MINUTE_US, 3),
    Metric.SCHEDULE_LAG: HistogramRange(1, _HOUR_US, 2),
    Metric.GENERATOR_LAG: HistogramRange(1, _MINUTE_US, 3),
    Metric.PROMPT_TOKENS: HistogramRange(1, 10_000_000, 2),
    Metric.OUTPUT_TOKENS: HistogramRange(1, 10_000_000, 2),
}
_DEFAULT_RANGE = HistogramRange(1, _HOUR_US, 3)


def range_for(metric: str) -> HistogramRange:
    base = metric.split("@", 1)[0]  # "e2e@ctx<512" shares e2e's range
    return METRIC_RANGES.get(base, _DEFAULT_RANGE)


class TrackedHistogram:
    """An HdrHistogram plus counters of values below/above its range.

    A value of 0 is recorded as 1 (the lowest trackable value); values above the range are counted in
    ``above_range`` and also recorded at the highest trackable value so counts stay equal to events.
    """

    __slots__ = ("above_range", "below_range", "hist", "range", "value_sum")

    def __init__(self, metric: str) -> None:
        self.range = range_for(metric)
        self.hist = HdrHistogram(self.range.lowest, self.range.highest, self.range.significant_digits)
        self.above_range = 0
        self.below_range = 0
        self.value_sum = 0  # exact sum of recorded (clamped) values: hdrh's own mean walks every counter

    def record(self, value: int, count: int = 1) -> None:
        if value < self.range.lowest:
            if value < 0:
                self.below_range += count
            value = self.range.lowest
        elif value > self.range.highest:
            self.above_range += count
            value = self.range.highest
        if not self.hist.record_value(value, count):  # pragma: no cover - guarded above
            self.above_range += count
        self.value_sum += value * count

    @property
    def count(self) -> int:
        return int(self.hist.get_total_count())

    def encode(self) -> str:
        return bytes(self.hist.encode()).decode("ascii")

    def add_encoded(self, encoded: str, above: int = 0, below: int = 0, value_sum: int = 0) -> None:
        self.hist.decode_and_add(encoded.encode("ascii"))
        self.above_range += above
        self.below_range += below
        self.value_sum += value_sum

    def add(self, other: TrackedHistogram) -> None:
        self.add_encoded(other.encode(), other.above_range, other.below_range, other.value_sum)

    def quantiles(self, quantiles: Iterable[float]) -> dict[float, int]:
        """Values at the given quantiles (0..1 scale), read in one pass."""
        qs = list(quantiles)
        if self.count == 0:
            return dict.fromkeys(qs, 0)
        by_percentile = self.hist.get_percentile_to_value_dict([q * 100.0 for q in qs])
        return {q: int(by_percentile[q * 100.0]) for q in qs}

    def max(self) -> int:
        return int(self.hist.get_max_value()) if self.count else 0

    def mean(self) -> float:
        count = self.count
        return self.value_sum / count if count else 0.0

    def reset(self) -> None:
        self.hist.reset()
        self.above_range = 0
        self.below_range = 0
        self.value_sum = 0
