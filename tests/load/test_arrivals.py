"""Open-model arrival schedules: rate, spread, splitting over processes, rate changes."""

from __future__ import annotations

import itertools
import math
import random
import statistics

import pytest

from loadgen.load.arrivals import ArrivalClock, ArrivalKind


def _times(clock: ArrivalClock, until: float) -> list[float]:
    out = []
    while clock.peek() < until:
        out.append(clock.pop())
    return out


def test_constant_arrivals_are_evenly_spaced() -> None:
    clock = ArrivalClock(4.0, ArrivalKind.CONSTANT, start=100.0)
    times = _times(clock, 110.0)
    assert len(times) == 39  # 100.25 .. 109.75
    assert all(b - a == pytest.approx(0.25) for a, b in itertools.pairwise(times))


def test_poisson_arrivals_have_the_rate_and_the_spread_of_an_exponential() -> None:
    clock = ArrivalClock(20.0, ArrivalKind.POISSON, start=0.0, rng=random.Random(1))
    times = _times(clock, 500.0)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) / 500.0 == pytest.approx(20.0, rel=0.03)
    assert statistics.mean(gaps) == pytest.approx(0.05, rel=0.03)
    assert statistics.stdev(gaps) / statistics.mean(gaps) == pytest.approx(1.0, abs=0.05)  # CV of an exponential
    within_one_mean = sum(g <= 0.05 for g in gaps) / len(gaps)
    assert within_one_mean == pytest.approx(1 - math.exp(-1), abs=0.02)


def test_constant_split_over_processes_interleaves_evenly() -> None:
    clocks = [ArrivalClock(6.0, ArrivalKind.CONSTANT, start=0.0, shares=3, index=i) for i in range(3)]
    merged = sorted(t for c in clocks for t in _times(c, 10.0))
    assert all(b - a == pytest.approx(1 / 6) for a, b in itertools.pairwise(merged))
    assert all(c.rate_per_s == pytest.approx(2.0) for c in clocks)


def test_poisson_split_over_processes_keeps_the_run_rate() -> None:
    clocks = [ArrivalClock(30.0, start=0.0, shares=2, index=i, rng=random.Random(i)) for i in range(2)]
    merged = sorted(t for c in clocks for t in _times(c, 300.0))
    assert len(merged) / 300.0 == pytest.approx(30.0, rel=0.04)


def test_the_schedule_does_not_move_when_arrivals_are_taken_late() -> None:
    clock = ArrivalClock(10.0, ArrivalKind.CONSTANT, start=0.0)
    first = clock.pop()
    # the dispatcher was stalled for a second: the arrivals due meanwhile are still due at their own times
    late = [clock.pop() for _ in range(10)]
    assert first == pytest.approx(0.1)
    assert late == pytest.approx([0.2 + 0.1 * i for i in range(10)])


def test_rate_changes_take_effect_from_the_next_arrival_and_zero_stops() -> None:
    clock = ArrivalClock(2.0, ArrivalKind.CONSTANT, start=0.0)
    assert clock.pop() == pytest.approx(0.5)
    clock.set_rate(10.0)
    assert clock.pop() == pytest.approx(1.0)  # drawn at the old rate
    assert clock.pop() == pytest.approx(1.1)
    clock.set_rate(0.0)
    clock.pop()
    assert clock.peek() == math.inf
    clock.set_rate(5.0, now=20.0)
    assert clock.peek() == pytest.approx(20.2)


def test_a_change_of_shares_splits_the_run_rate_again() -> None:
    clock = ArrivalClock(6.0, ArrivalKind.CONSTANT, start=0.0, shares=1)
    assert clock.pop() == pytest.approx(1 / 6)
    clock.set_rate(6.0, shares=3)
    assert clock.rate_per_s == pytest.approx(2.0) and clock.shares == 3
    assert clock.pop() == pytest.approx(2 / 6)  # already scheduled at the old rate
    assert clock.pop() == pytest.approx(2 / 6 + 0.5)
    clock.set_rate(12.0)  # the shares are kept
    assert clock.rate_per_s == pytest.approx(4.0)
    with pytest.raises(ValueError):
        clock.set_rate(6.0, shares=0)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        ArrivalClock(-1.0, start=0.0)
    with pytest.raises(ValueError):
        ArrivalClock(1.0, start=0.0, shares=2, index=2)
