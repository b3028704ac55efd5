"""Series downsampled for display with their envelope kept: a spike is never averaged away.

A long run has thousands of intervals; a plot needs a few hundred points. :func:`envelope` cuts a series into at
most ``budget`` buckets of consecutive points and keeps, per bucket, its time span, the min, the max and a
representative value (the mean of the bucket, or for latency percentiles, chosen by the caller, e.g. the max).
Plots draw the representative line with the min..max band around it, so the worst interval of a night is still on
the page whatever the page's size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Bucket:
    start: float
    end: float
    low: float
    high: float
    value: float
    points: int


def envelope(
    times: Sequence[float],
    values: Sequence[float | None],
    budget: int,
    *,
    pick: Callable[[list[float]], float] | None = None,
) -> list[Bucket]:
    """At most ``budget`` buckets over the points that have a value, in order; ``pick`` chooses a bucket's
    value from its points (default: their mean). A series no longer than ``budget`` keeps every point."""
    if budget < 1:
        raise ValueError("budget must be at least 1")
    points = [(t, v) for t, v in zip(times, values, strict=True) if v is not None]
    if not points:
        return []
    size = -(-len(points) // budget)  # ceil: every bucket but the last holds `size` points
    choose = pick or (lambda vs: sum(vs) / len(vs))
    out = []
    for at in range(0, len(points), size):
        chunk = points[at : at + size]
        vs = [v for _, v in chunk]
        out.append(Bucket(chunk[0][0], chunk[-1][0], min(vs), max(vs), choose(vs), len(vs)))
    return out
