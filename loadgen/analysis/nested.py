"""Intervals for figures measured in rounds of turns: a two-level bootstrap (rounds, then turns within a round).

A transport comparison measures each arm in several rounds; each round is many turns. One bootstrap replicate
of an arm's figure draws the rounds with replacement (:func:`round_draws`) and, for each drawn round, a replicate
of that round's figure over its own turns (:meth:`RoundFigure.draw`); the replicate is the median of those. So
the interval holds both the round-to-round noise (a busy neighbour during one round) and the turn-to-turn noise
within a round; with one round it is the turns alone.

The turn level is not redrawn turn by turn (a round has thousands): each figure draws from the large-sample law
of its own resampled statistic, so the cost does not grow with the turns:

- :class:`Quantile` (a percentile of a histogram): the resampled quantile is the original sample's order
  statistic at a rank whose spread is binomial (sd ``sqrt(n q (1-q))``), drawn with its normal approximation;
- :class:`Mean`: normal, sd / sqrt(n);
- :class:`Proportion` (error rate, retention): the exact binomial, drawn through its inverse CDF;
- :class:`Fixed`: a figure of the round as a whole (turns/s, CPU per turn), with no turn-level part;
- :class:`Offset`: one figure less another of the same round, each drawn on its own.

Two arms whose kept rounds are the same rounds (the same ids) are paired: their replicates draw the same rounds,
so a disturbance that hit one interleaved round hits both sides of the difference and cancels. Draws are seeded
(:func:`replicates`): the same figures give the same intervals.

With few rounds the round-to-round part is poorly known (two or three rounds cannot show how much a machine's
noise varies between rounds), so intervals from fewer than :data:`FEW_ROUNDS` rounds are narrower than the truth
when that noise is large: say so next to them. A :class:`Fixed` figure has no interval from fewer than two rounds.
"""

from __future__ import annotations

import math
import random
import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from loadgen.analysis.bootstrap import CONFIDENCE, RESAMPLES, Interval, percentile_bounds

#: Below this many rounds, an interval leans on the turns within rounds (see the module's docstring).
FEW_ROUNDS = 5
#: The binomial table of a proportion reaches this many standard deviations either side of its mean.
_TAIL_SDS = 12.0


class RoundFigure(Protocol):
    """One round's figure: its value, and a replicate of it over the round's own turns."""

    @property
    def value(self) -> float: ...

    @property
    def varies(self) -> bool:
        """Whether the figure has a turn-level part (False: the round's value is all there is)."""
        ...

    def draw(self, rng: random.Random) -> float: ...


@dataclass(frozen=True)
class Distribution:
    """A round's turns as a sorted histogram: distinct values and the cumulative count up to each."""

    values: tuple[float, ...]
    cumulative: tuple[int, ...]

    @classmethod
    def of(cls, pairs: Iterable[tuple[float, int]]) -> Distribution:
        """From (value, count) pairs in any order; counts of 0 are left out."""
        merged: dict[float, int] = {}
        for value, count in pairs:
            if count > 0:
                merged[value] = merged.get(value, 0) + count
        values = tuple(sorted(merged))
        running, cumulative = 0, []
        for value in values:
            running += merged[value]
            cumulative.append(running)
        return cls(values, tuple(cumulative))

    @classmethod
    def of_samples(cls, samples: Iterable[float]) -> Distribution:
        return cls.of((s, 1) for s in samples)

    @property
    def n(self) -> int:
        return self.cumulative[-1] if self.cumulative else 0

    def at_rank(self, rank: int) -> float:
        """The ``rank``-th smallest turn (1-based, clipped to 1..n)."""
        rank = min(max(rank, 1), self.n)
        return self.values[bisect_left(self.cumulative, rank)]

    def rank_of(self, q: float) -> int:
        """The rank a quantile reads (as the histograms read it: q n rounded half up, at least 1)."""
        return max(int(min(q, 1.0) * self.n + 0.5), 1)

    def mean_sd(self) -> tuple[float, float]:
        n, total, squares, below = self.n, 0.0, 0.0, 0
        for value, upto in zip(self.values, self.cumulative, strict=True):
            count = upto - below
            below = upto
            total += value * count
            squares += value * value * count
        mean = total / n
        return mean, math.sqrt(max(0.0, squares / n - mean * mean))


@dataclass(frozen=True)
class Quantile:
    """The ``q`` quantile of a round's turns."""

    dist: Distribution
    q: float

    def __post_init__(self) -> None:
        if self.dist.n == 0:
            raise ValueError("a quantile of no turns")

    @property
    def value(self) -> float:
        return self.dist.at_rank(self.dist.rank_of(self.q))

    @property
    def varies(self) -> bool:
        return True

    def draw(self, rng: random.Random) -> float:
        n, q = self.dist.n, min(self.q, 1.0)
        spread = math.sqrt(n * q * (1.0 - q))
        return self.dist.at_rank(round(self.dist.rank_of(q) + rng.gauss(0.0, spread)))


@dataclass(frozen=True)
class Mean:
    """The mean of a round's ``n`` turns, with their standard deviation ``sd``."""

    mean: float
    sd: float
    n: int

    @classmethod
    def of(cls, dist: Distribution) -> Mean:
        mean, sd = dist.mean_sd()
        return cls(mean, sd, dist.n)

    @property
    def value(self) -> float:
        return self.mean

    @property
    def varies(self) -> bool:
        return True

    def draw(self, rng: random.Random) -> float:
        return rng.gauss(self.mean, self.sd / math.sqrt(self.n))


@dataclass(frozen=True)
class Proportion:
    """``hits`` of ``n`` turns (failures of turns, facts kept of facts probed)."""

    hits: int
    n: int
    _table: tuple[tuple[int, ...], tuple[float, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.n <= 0 or not 0 <= self.hits <= self.n:
            raise ValueError(f"a proportion of {self.hits} in {self.n}")
        object.__setattr__(self, "_table", _binomial_table(self.n, self.hits / self.n))

    @property
    def value(self) -> float:
        return self.hits / self.n

    @property
    def varies(self) -> bool:
        return True

    def draw(self, rng: random.Random) -> float:
        ks, cdf = self._table
        return ks[min(bisect_right(cdf, rng.random()), len(ks) - 1)] / self.n


def _binomial_table(n: int, p: float) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Support and CDF of Binomial(n, p), cut where the tails are negligible."""
    if p <= 0.0 or p >= 1.0:
        return (round(n * p),), (1.0,)
    spread = _TAIL_SDS * math.sqrt(n * p * (1.0 - p)) + 1.0
    low, high = max(0, math.floor(n * p - spread)), min(n, math.ceil(n * p + spread))
    log_p, log_q, log_n = math.log(p), math.log1p(-p), math.lgamma(n + 1)
    ks = tuple(range(low, high + 1))
    pmf = [math.exp(log_n - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_p + (n - k) * log_q) for k in ks]
    total, running, cdf = sum(pmf), 0.0, []
    for mass in pmf:
        running += mass
        cdf.append(running / total)
    return ks, tuple(cdf)


@dataclass(frozen=True)
class Fixed:
    """A figure of the round as a whole: no turn-level part."""

    value: float

    @property
    def varies(self) -> bool:
        return False

    def draw(self, rng: random.Random) -> float:
        return self.value


@dataclass(frozen=True)
class Offset:
    """One figure of a round less another of the same round (e.g. a TTFT above its timing floor)."""

    of: RoundFigure
    less: RoundFigure

    @property
    def value(self) -> float:
        return self.of.value - self.less.value

    @property
    def varies(self) -> bool:
        return self.of.varies or self.less.varies

    def draw(self, rng: random.Random) -> float:
        return self.of.draw(rng) - self.less.draw(rng)


@dataclass(frozen=True)
class Rounds:
    """One arm's figure in each of its kept rounds, with the rounds' ids (equal ids pair two arms)."""

    ids: tuple[int, ...]
    figures: tuple[RoundFigure, ...]

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.figures):
            raise ValueError("one id per round")

    @property
    def value(self) -> float:
        """The median over rounds."""
        return statistics.median(f.value for f in self.figures)

    def has_interval(self) -> bool:
        return bool(self.figures) and (len(self.figures) >= 2 or all(f.varies for f in self.figures))


def round_draws(ids: Sequence[int], resamples: int, seed: int | str) -> list[list[int]]:
    """Positions of the rounds each replicate draws (with replacement); one stream per set of ids and seed, so
    arms with the same rounds draw the same ones."""
    rng = random.Random(f"{seed}:rounds:{','.join(map(str, ids))}")
    n = len(ids)
    return [[0] * n if n == 1 else [rng.randrange(n) for _ in range(n)] for _ in range(resamples)]


def replicates(rounds: Rounds, *, resamples: int = RESAMPLES, seed: int | str = 0, label: str = "") -> list[float]:
    """Bootstrap replicates of the median over rounds (rounds drawn, then turns within each drawn round). The
    rounds drawn depend on ``seed`` and the rounds' ids only; the turn-level draws on ``label`` too (give each
    arm and figure its own, so two arms never share turn-level noise)."""
    if not rounds.figures:
        raise ValueError("no rounds")
    turns = random.Random(f"{seed}:turns:{label}")
    figures = rounds.figures
    return [
        statistics.median(figures[i].draw(turns) for i in draw) for draw in round_draws(rounds.ids, resamples, seed)
    ]


def percentile_interval(value: float, reps: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """``value`` with the percentile interval of its replicates."""
    low, high = percentile_bounds(list(reps), confidence)
    return Interval(value, low, high)


def difference_interval(
    base: Rounds, other: Rounds, base_reps: Sequence[float], other_reps: Sequence[float], confidence: float = CONFIDENCE
) -> Interval | None:
    """median(other) - median(base) with the interval of the replicates' differences (paired where the arms'
    replicates drew the same rounds: same ids and seed); None when either side has no interval."""
    if not (base.has_interval() and other.has_interval()) or len(base_reps) != len(other_reps):
        return None
    diffs = [o - b for b, o in zip(base_reps, other_reps, strict=True)]
    return percentile_interval(other.value - base.value, diffs, confidence)


__all__ = [
    "FEW_ROUNDS",
    "Distribution",
    "Fixed",
    "Mean",
    "Offset",
    "Proportion",
    "Quantile",
    "RoundFigure",
    "Rounds",
    "difference_interval",
    "percentile_interval",
    "replicates",
    "round_draws",
]
