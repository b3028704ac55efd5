"""Uncertainty for comparisons: medians with bootstrap intervals, pairwise differences, interleaved rounds.

A comparison of transports on a shared machine is only worth its noise. Rounds are run in interleaved order
(:func:`interleaved_order`: A B C, B C A, C A B, ...), so drift falls on every arm alike; each arm's figure is the
median over its rounds with a percentile-bootstrap interval (:func:`median_interval`); a difference between two
arms is the bootstrap of the difference of medians (:func:`difference`), and it is "shown" only when its interval
leaves out zero. Resampling uses a seeded generator: the same figures give the same intervals.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

RESAMPLES = 2000
CONFIDENCE = 0.95


def interleaved_order(arms: Sequence[str], repeats: int) -> list[list[str]]:
    """``repeats`` rounds, each every arm once, the order rotated by one each round."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    n = len(arms)
    return [[arms[(start + k) % n] for k in range(n)] for start in (r % n for r in range(repeats))] if n else []


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def to_json(self, digits: int = 3) -> dict[str, float]:
        return {
            "value": round(self.value, digits),
            "ci_low": round(self.low, digits),
            "ci_high": round(self.high, digits),
        }


def percentile_bounds(samples: list[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The percentile interval of bootstrap replicates (``samples`` is sorted in place)."""
    samples.sort()
    tail = (1.0 - confidence) / 2.0
    low = samples[int(tail * (len(samples) - 1))]
    high = samples[round((1.0 - tail) * (len(samples) - 1))]
    return low, high


def median_interval(
    values: Sequence[float], *, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = 0
) -> Interval:
    """The median of ``values`` with a percentile-bootstrap interval (one value: an interval of width 0)."""
    if not values:
        raise ValueError("no values")
    data = list(values)
    median = statistics.median(data)
    if len(data) == 1:
        return Interval(median, median, median)
    rng = random.Random(seed)
    boots = [statistics.median(rng.choices(data, k=len(data))) for _ in range(resamples)]
    low, high = percentile_bounds(boots, confidence)
    return Interval(median, low, high)


def difference(
    base: Sequence[float],
    other: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Interval:
    """median(other) - median(base), with a bootstrap interval (each side resampled on its own)."""
    if not base or not other:
        raise ValueError("no values")
    a, b = list(base), list(other)
    value = statistics.median(b) - statistics.median(a)
    rng = random.Random(seed)
    boots = [
        statistics.median(rng.choices(b, k=len(b))) - statistics.median(rng.choices(a, k=len(a)))
        for _ in range(resamples)
    ]
    low, high = percentile_bounds(boots, confidence)
    return Interval(value, low, high)


def verdict(
    metric: str, unit: str, base_name: str, other_name: str, diff: Interval, confidence: float = CONFIDENCE
) -> str:
    """``"grpc TTFT p50 1.8 ms lower than rest, 95% CI 1.2-2.4"``, or ``"... no difference shown"``."""
    pct = f"{confidence * 100:g}%"
    if diff.contains(0.0):
        return (
            f"{other_name} vs {base_name} {metric}: no difference shown "
            f"({diff.value:+.3g} {unit}, {pct} CI {diff.low:+.3g} to {diff.high:+.3g})"
        )
    word = "higher" if diff.value > 0 else "lower"
    low, high = sorted((abs(diff.low), abs(diff.high)))
    return f"{other_name} {metric} {abs(diff.value):.3g} {unit} {word} than {base_name}, {pct} CI {low:.3g}-{high:.3g}"
