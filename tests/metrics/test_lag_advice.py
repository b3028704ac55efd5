"""The generator lag warning's --processes suggestion, sized from the measured per-core capacity."""

from __future__ import annotations

import pytest

from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.keys import ALL, SeriesKey
from loadgen.metrics.lag_advice import USERS_PER_CORE, processes_advice, suggested_processes
from loadgen.metrics.summary import build_summary


@pytest.mark.parametrize(
    ("users", "processes", "expected"),
    [(1200, 1, 3), (1201, 1, 4), (400, 1, 2), (100, 1, 2), (2000, 2, 5), (500, 4, 5), (10, 0, 2)],
)
def test_processes_are_sized_from_users_per_core(users: int, processes: int, expected: int) -> None:
    # ceil(users / 400), and always more processes than the run that lagged had
    assert USERS_PER_CORE == 400
    assert suggested_processes(users, processes) == expected


def test_advice_wording() -> None:
    assert processes_advice(1500, 1) == (
        "use --processes 4 for 1500 users (~400 live conversations per generator core, reports/BENCHMARKS.md), "
        "or fewer users per process"
    )
    assert processes_advice(None, None) == (
        "use fewer users per process or --processes N with N = users / 400 "
        "(~400 live conversations per generator core, reports/BENCHMARKS.md)"
    )
    assert processes_advice(0, 1) == processes_advice(None, 1)


def _lagging_batch(lag_us: int) -> MetricsBatch:
    batch = MetricsBatch()
    for _ in range(10):
        batch.record(SeriesKey(ALL, ALL, 0, "generator_lag"), lag_us)
    return batch


def test_the_lag_warning_names_the_processes_for_the_runs_users() -> None:
    summary = build_summary(_lagging_batch(9_000), {"id": "t", "duration_s": 10.0, "users": 900, "processes": 1})
    (warning,) = [w for w in summary["warnings"] if "generator lag" in w]
    assert "use --processes 3 for 900 users (~400 live conversations per generator core" in warning
    quiet = build_summary(_lagging_batch(1_000), {"id": "t", "duration_s": 10.0, "users": 900})
    assert not [w for w in quiet["warnings"] if "generator lag" in w]
