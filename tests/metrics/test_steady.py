"""The steady window: which turns count, the run block, and the cool-down that cannot apply without a run time;
the aggregator keeps warm-up turns out of its totals but in its intervals."""

from __future__ import annotations

from loadgen.metrics.aggregator import RunAggregator
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.keys import ALL, Count, SeriesKey
from loadgen.metrics.steady import SteadyWindow

TURNS = SeriesKey("rest", ALL, 0, str(Count.TURNS))


def test_turns_count_by_when_they_started() -> None:
    w = SteadyWindow(1000.0, warmup_s=10.0, cooldown_s=5.0, run_s=60.0)
    assert not w.is_steady(1000.0) and not w.is_steady(1009.99)
    assert w.is_steady(1010.0) and w.is_steady(1054.99)
    assert not w.is_steady(1055.0) and not w.is_steady(1070.0)
    assert w.run_block(1061.0) == {
        "warmup_s": 10.0,
        "cooldown_s": 5.0,
        "steady": {"start": 1010.0, "end": 1055.0, "duration_s": 45.0},
    }
    assert w.run_block(1030.0)["steady"]["duration_s"] == 20.0  # a checkpoint while the run goes
    assert w.run_block(1005.0)["steady"]["duration_s"] == 0.0  # still warming up
    assert w.warnings() == []


def test_without_a_run_time_there_is_no_cool_down_and_a_warning_says_so() -> None:
    w = SteadyWindow(1000.0, warmup_s=0.0, cooldown_s=5.0, run_s=None)
    assert w.is_steady(1000.0) and w.is_steady(99999.0)
    assert w.run_block(1060.0)["steady"] == {"start": 1000.0, "end": 1060.0, "duration_s": 60.0}
    [warning] = w.warnings()
    assert warning.startswith("--cooldown 5s was not applied") and "-t" in warning


def test_unsteady_turns_reach_the_intervals_but_not_the_totals() -> None:
    now = [0.0]
    agg = RunAggregator(interval_s=5.0, clock=lambda: now[0])
    warm, steady = MetricsBatch(), MetricsBatch()
    warm.counts[TURNS] += 3
    steady.counts[TURNS] += 2
    agg.merge_unsteady(warm)
    agg.merge(steady)
    worker = MetricsBatch()
    worker.counts[TURNS] += 4
    agg.merge_unsteady_wire(worker.to_wire())
    now[0] = 6.0
    agg.maybe_roll(force=True)
    assert agg.total.counts[TURNS] == 2
    [interval] = agg.intervals
    assert interval.wire["c"][TURNS.encode()] == 3 + 2 + 4
