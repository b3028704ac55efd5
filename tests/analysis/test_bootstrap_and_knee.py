"""Bootstrap intervals, interleaved rounds, and the knee of a sweep."""

from __future__ import annotations

import random

import pytest

from loadgen.analysis.bootstrap import difference, interleaved_order, median_interval, verdict
from loadgen.analysis.knee import Step, find_knee, next_probe


def test_rounds_are_rotated_so_each_arm_takes_each_position() -> None:
    assert interleaved_order(["rest", "grpc", "amqp"], 4) == [
        ["rest", "grpc", "amqp"],
        ["grpc", "amqp", "rest"],
        ["amqp", "rest", "grpc"],
        ["rest", "grpc", "amqp"],
    ]
    assert interleaved_order([], 3) == []
    with pytest.raises(ValueError):
        interleaved_order(["a"], 0)


def test_median_interval_covers_the_true_median_about_95_percent_of_the_time() -> None:
    rng = random.Random(11)
    covered = 0
    trials = 200
    for trial in range(trials):
        sample = [rng.gauss(50.0, 5.0) for _ in range(30)]
        if median_interval(sample, resamples=400, seed=trial).contains(50.0):
            covered += 1
    assert 0.88 <= covered / trials <= 0.995


def test_a_known_difference_is_shown_and_identical_arms_show_none() -> None:
    rng = random.Random(5)
    rest = [rng.gauss(52.0, 0.8) for _ in range(40)]
    grpc = [rng.gauss(50.2, 0.8) for _ in range(40)]
    diff = difference(rest, grpc)
    assert not diff.contains(0.0)
    assert diff.value == pytest.approx(-1.8, abs=0.5)
    text = verdict("TTFT p50", "ms", "rest", "grpc", diff)
    assert text.startswith("grpc TTFT p50 ") and " ms lower than rest, 95% CI " in text
    same = difference(rest, [rng.gauss(52.0, 0.8) for _ in range(40)])
    assert same.contains(0.0)
    assert "no difference shown" in verdict("TTFT p50", "ms", "rest", "grpc", same)


def test_one_value_is_its_own_interval_and_none_is_an_error() -> None:
    assert median_interval([3.0]).to_json() == {"value": 3.0, "ci_low": 3.0, "ci_high": 3.0}
    with pytest.raises(ValueError):
        median_interval([])


def _step(load: float, *, ok: bool = True, lag: float | None = 1.0, errors: float = 0.0) -> Step:
    return Step(load, turns_per_s=load * 5, goodput=load * 5 if ok else 0.0, slo_held=ok, error_rate=errors,
                generator_lag_p99_ms=lag)  # fmt: skip


def test_knee_is_the_highest_step_that_held() -> None:
    steps = [_step(1), _step(2), _step(4), _step(8, ok=False), _step(16, ok=False)]
    knee = find_knee(steps)
    assert knee.knee is not None and knee.knee.load == 4
    assert knee.max_sustainable_turns_per_s == 20
    assert knee.ceiling_turns_per_s == 80
    assert not knee.limited_by_generator


def test_a_step_with_errors_or_a_lagging_generator_does_not_hold() -> None:
    knee = find_knee([_step(1), _step(2, errors=0.05), _step(4)])
    assert knee.knee is not None and knee.knee.load == 4  # noise in between does not stop the search
    knee = find_knee([_step(1), _step(2, lag=9.0)])
    assert knee.knee is not None and knee.knee.load == 1 and knee.limited_by_generator
    assert find_knee([_step(1, lag=None)]).knee is None  # no lag measured: cannot vouch for the step
    assert find_knee([_step(1, ok=False)]).max_sustainable_turns_per_s is None


def test_find_mode_bisects_geometrically_until_close() -> None:
    steps = [_step(2), _step(8, ok=False)]
    assert next_probe(steps) == pytest.approx(4.0)
    steps.append(_step(4))
    assert next_probe(steps) == pytest.approx(32**0.5)
    assert next_probe([_step(4), _step(4.3, ok=False)]) is None  # within 10%
    assert next_probe([_step(1, ok=False)]) is None
    assert next_probe([_step(1), _step(2)]) is None
