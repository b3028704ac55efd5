"""The two-level bootstrap of figures measured in rounds of turns, against distributions whose truth is known."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable

import pytest

from loadgen.analysis.nested import (
    Distribution,
    Fixed,
    Mean,
    Offset,
    Proportion,
    Quantile,
    RoundFigure,
    Rounds,
    difference_interval,
    percentile_interval,
    replicates,
    round_draws,
)
from loadgen.metrics.histograms import TrackedHistogram

TRIALS = 150
RESAMPLES = 400


def _exp_ms(rng: random.Random, n: int, offset: float = 0.0) -> Distribution:
    return Distribution.of_samples(round(offset + rng.expovariate(1.0), 3) for _ in range(n))


def _coverage(make: Callable[[random.Random, int], list[RoundFigure]], truth: float, seed: int) -> float:
    """How often the 95% interval of the median over rounds holds ``truth``."""
    rng = random.Random(seed)
    covered = 0
    for trial in range(TRIALS):
        figures = make(rng, trial)
        rounds = Rounds(tuple(range(len(figures))), tuple(figures))
        interval = percentile_interval(rounds.value, replicates(rounds, resamples=RESAMPLES, seed=trial))
        covered += interval.contains(truth)
    return covered / TRIALS


def test_a_distribution_reads_ranks_as_the_histograms_do() -> None:
    dist = Distribution.of([(3.0, 2), (1.0, 1), (2.0, 0), (5.0, 1), (3.0, 1)])
    assert dist.values == (1.0, 3.0, 5.0) and dist.cumulative == (1, 4, 5) and dist.n == 5
    assert [dist.at_rank(k) for k in (0, 1, 2, 4, 5, 9)] == [1.0, 1.0, 3.0, 3.0, 5.0, 5.0]
    assert [dist.rank_of(q) for q in (0.0, 0.5, 0.99, 1.0)] == [1, 3, 5, 5]
    assert dist.mean_sd() == pytest.approx((3.0, math.sqrt(1.6)))
    rng = random.Random(1)
    hist = TrackedHistogram("ttft")
    for _ in range(2000):
        hist.record(int(rng.expovariate(1 / 20_000)))
    from_hist = Distribution.of(
        (v.value_iterated_to, v.count_at_value_iterated_to) for v in hist.hist.get_recorded_iterator()
    )
    for q in (0.5, 0.95, 0.99, 1.0):
        assert Quantile(from_hist, q).value == hist.quantiles([q])[q]


@pytest.mark.parametrize(
    ("name", "make", "truth"),
    [
        ("median of Exp(1)", lambda rng, t: [Quantile(_exp_ms(rng, 400), 0.5)], math.log(2)),
        ("p95 of Exp(1)", lambda rng, t: [Quantile(_exp_ms(rng, 400), 0.95)], math.log(20)),
        ("mean of Exp(1)", lambda rng, t: [Mean.of(_exp_ms(rng, 400))], 1.0),
        ("5% failures", lambda rng, t: [Proportion(sum(rng.random() < 0.05 for _ in range(400)), 400)], 0.05),
        ("median over 3 rounds", lambda rng, t: [Quantile(_exp_ms(rng, 200), 0.5) for _ in range(3)], math.log(2)),
    ],
)
def test_intervals_from_turns_hold_the_truth_about_95_percent_of_the_time(
    name: str, make: Callable[[random.Random, int], list[RoundFigure]], truth: float
) -> None:
    assert 0.88 <= _coverage(make, truth, seed=len(name)) <= 1.0, name


def test_rounds_that_differ_widen_the_interval_to_hold_the_round_noise() -> None:
    """Each round is shifted by its own N(0, 0.15) (a busy neighbour): 8 rounds still cover the truth."""

    def shifted(rng: random.Random, trial: int) -> list[RoundFigure]:
        return [Quantile(_exp_ms(rng, 300, offset=rng.gauss(0.0, 0.15)), 0.5) for _ in range(8)]

    assert _coverage(shifted, math.log(2), seed=3) >= 0.85


def test_turn_level_draws_follow_their_laws() -> None:
    rng = random.Random(2)
    failures = Proportion(30, 600)
    draws = [failures.draw(rng) for _ in range(4000)]
    assert statistics.fmean(draws) == pytest.approx(0.05, abs=0.002)
    assert statistics.stdev(draws) == pytest.approx(math.sqrt(0.05 * 0.95 / 600), rel=0.08)
    assert {Proportion(0, 50).draw(rng) for _ in range(50)} == {0.0}
    assert {Proportion(50, 50).draw(rng) for _ in range(50)} == {1.0}
    mean = Mean(10.0, 4.0, 400)
    means = [mean.draw(rng) for _ in range(4000)]
    assert statistics.stdev(means) == pytest.approx(0.2, rel=0.08)
    with pytest.raises(ValueError):
        Proportion(3, 2)
    with pytest.raises(ValueError):
        Quantile(Distribution.of([]), 0.5)


def test_a_round_figure_less_another_of_the_same_round() -> None:
    rng = random.Random(4)
    ttft = Quantile(Distribution.of_samples([20.0, 21.0, 22.0, 23.0, 24.0]), 0.5)
    floor = Fixed(20.5)
    above = Offset(ttft, floor)
    assert above.value == 1.5 and above.varies
    assert all(-0.5 <= above.draw(rng) <= 3.5 for _ in range(200))
    assert not Offset(Fixed(3.0), Fixed(1.0)).varies


def test_one_round_of_a_whole_round_figure_has_no_interval_and_no_verdict() -> None:
    one = Rounds((1,), (Fixed(12.0),))
    assert one.value == 12.0 and not one.has_interval()
    two = Rounds((1, 2), (Fixed(12.0), Fixed(14.0)))
    assert two.has_interval()
    assert difference_interval(one, two, [], replicates(two, resamples=50)) is None


def test_arms_with_the_same_rounds_are_paired_and_a_shared_disturbance_cancels() -> None:
    """Round r hits both arms with the same large shift; the other arm is 0.3 higher throughout."""
    rng = random.Random(9)
    shifts = [rng.gauss(0.0, 2.0) for _ in range(6)]
    base = Rounds(tuple(range(6)), tuple(Quantile(_exp_ms(rng, 400, s), 0.5) for s in shifts))
    other = Rounds(tuple(range(6)), tuple(Quantile(_exp_ms(rng, 400, s + 0.3), 0.5) for s in shifts))
    reps = {name: replicates(r, resamples=1000, seed=5, label=name) for name, r in (("a", base), ("b", other))}
    paired = difference_interval(base, other, reps["a"], reps["b"])
    assert paired is not None and paired.low > 0.0 and paired.contains(0.3)
    apart = Rounds(tuple(range(10, 16)), other.figures)  # the same figures, other rounds: not paired
    independent = difference_interval(base, apart, reps["a"], replicates(apart, resamples=1000, seed=5, label="b"))
    assert independent is not None and independent.contains(0.0)
    assert (independent.high - independent.low) > 5 * (paired.high - paired.low)


def test_the_same_figures_give_the_same_intervals() -> None:
    rounds = Rounds((1, 2, 3), tuple(Quantile(_exp_ms(random.Random(i), 200), 0.9) for i in range(3)))
    assert replicates(rounds, resamples=200, seed=1, label="x") == replicates(rounds, resamples=200, seed=1, label="x")
    assert replicates(rounds, resamples=200, seed=1, label="x") != replicates(rounds, resamples=200, seed=1, label="y")
    assert round_draws((1, 2, 3), 5, 0) == round_draws((1, 2, 3), 5, 0) != round_draws((4, 5, 6), 5, 0)
    assert round_draws((7,), 3, 0) == [[0], [0], [0]]
    with pytest.raises(ValueError):
        replicates(Rounds((), ()))
