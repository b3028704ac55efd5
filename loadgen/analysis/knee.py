"""The knee of a load sweep: the highest step that held its SLOs with a generator that kept up.

A sweep runs measured steps of rising offered load (arrival rates, or user counts). A step *holds* when every SLO
held, its error rate stayed within the limit and the generator's own lag p99 stayed under ``GENERATOR_LAG_LIMIT_MS``
(past that, the generator and not the service set the figures; a sweep may set another limit). The knee is the
highest step that holds; ``max_sustainable_turns_per_s`` is the throughput measured at it; the ceiling is the
highest throughput seen at any step. :func:`next_probe` picks the next load to try in ``--find`` mode: halfway
(geometrically) between the highest step that held and the lowest above it that did not, until they are within
``resolution`` of each other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

GENERATOR_LAG_LIMIT_MS = 5.0


@dataclass(frozen=True)
class Step:
    load: float  # the offered load: conversations per second (open model) or users (closed model)
    turns_per_s: float
    goodput: float | None  # turns per second that met every per-turn SLO
    slo_held: bool
    error_rate: float
    generator_lag_p99_ms: float | None
    lag_limit_ms: float = GENERATOR_LAG_LIMIT_MS  # past this lag p99 the generator, not the service, set the figures

    def generator_kept_up(self) -> bool:
        return self.generator_lag_p99_ms is not None and self.generator_lag_p99_ms <= self.lag_limit_ms

    def holds(self, max_error_rate: float) -> bool:
        return self.slo_held and self.error_rate <= max_error_rate and self.generator_kept_up()


@dataclass(frozen=True)
class Knee:
    knee: Step | None  # None: not even the lowest step held
    ceiling_turns_per_s: float
    limited_by_generator: bool  # a step failed only because the generator fell behind

    @property
    def max_sustainable_turns_per_s(self) -> float | None:
        return None if self.knee is None else self.knee.turns_per_s


def find_knee(steps: Sequence[Step], *, max_error_rate: float = 0.01) -> Knee:
    """The knee of ``steps`` (any order). Only a step that holds counts; a failing step between two holding ones
    (noise) does not stop the search, the highest holding load wins."""
    ordered = sorted(steps, key=lambda s: s.load)
    holding = [s for s in ordered if s.holds(max_error_rate)]
    knee = holding[-1] if holding else None
    above = [s for s in ordered if knee is None or s.load > knee.load]
    limited = any(s.slo_held and s.error_rate <= max_error_rate and not s.generator_kept_up() for s in above[:1])
    ceiling = max((s.turns_per_s for s in ordered), default=0.0)
    return Knee(knee, ceiling, limited)


def next_probe(steps: Sequence[Step], *, max_error_rate: float = 0.01, resolution: float = 0.1) -> float | None:
    """The next load to measure between the highest holding step and the lowest failing one above it, or
    ``None`` when they are within ``resolution`` (relative) or there is no such pair."""
    ordered = sorted(steps, key=lambda s: s.load)
    holding = [s.load for s in ordered if s.holds(max_error_rate)]
    if not holding:
        return None
    best = holding[-1]
    failing = [s.load for s in ordered if s.load > best and not s.holds(max_error_rate)]
    if not failing:
        return None
    worst = failing[0]
    if worst <= best * (1.0 + resolution):
        return None
    return math.sqrt(best * worst) if best > 0 else worst / 2.0
