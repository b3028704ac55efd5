"""Drift: does a figure creep over a long run? A robust slope (Theil-Sen) per hour, against the first window.

:func:`theil_sen` is the median of the pairwise slopes (breakdown point ~29%: one bad hour cannot fake or hide a
trend, where least squares would follow it). :func:`drift` turns a series of per-window values into the slope per
hour, both in the figure's unit and relative to the first window (``%/h``), which is what a threshold such as
``drift.ttft.p99 < 10%/h`` reads.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

#: Above this many points the pairwise slopes are taken over a fixed, evenly spaced subset (O(n^2) pairs).
MAX_POINTS = 400


def theil_sen(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """The median slope over every pair of points with different x; ``None`` for fewer than two such points."""
    if len(xs) != len(ys):
        raise ValueError("xs and ys differ in length")
    points = list(zip(xs, ys, strict=True))
    if len(points) > MAX_POINTS:
        step = len(points) / MAX_POINTS
        points = [points[int(i * step)] for i in range(MAX_POINTS)]
    slopes = [(y2 - y1) / (x2 - x1) for (x1, y1), (x2, y2) in combinations(points, 2) if x2 != x1]
    return statistics.median(slopes) if slopes else None


@dataclass(frozen=True)
class Drift:
    """The trend of one figure over a run."""

    windows: int  # points the slope was taken over
    first: float | None  # the figure in the first window (the reference)
    per_hour: float | None  # slope, in the figure's own unit per hour
    relative_per_hour: float | None  # per_hour / first, as a fraction (0.1 = 10%/h); None when first is 0

    def to_json(self) -> dict[str, float | int | None]:
        return {
            "windows": self.windows,
            "first": self.first,
            "per_hour": None if self.per_hour is None else round(self.per_hour, 6),
            "pct_per_hour": None if self.relative_per_hour is None else round(self.relative_per_hour * 100.0, 3),
        }


def drift(times_s: Sequence[float], values: Sequence[float | None], *, min_windows: int = 3) -> Drift:
    """The drift of ``values`` (one per window, ``None`` where a window had no data) at ``times_s`` (window
    middles, seconds); fewer than ``min_windows`` windows with data give no slope."""
    points = [(t, v) for t, v in zip(times_s, values, strict=True) if v is not None]
    if len(points) < min_windows:
        return Drift(len(points), points[0][1] if points else None, None, None)
    slope = theil_sen([t for t, _ in points], [v for _, v in points])
    first = points[0][1]
    per_hour = None if slope is None else slope * 3600.0
    relative = None if per_hour is None or not first else per_hour / first
    return Drift(len(points), first, per_hour, relative)
