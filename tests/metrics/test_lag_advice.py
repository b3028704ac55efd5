"""The generator lag warning's --processes suggestion, sized from the measured per-core capacity of the run's
transports."""

from __future__ import annotations

import pytest

from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.keys import ALL, SeriesKey
from loadgen.metrics.lag_advice import (
    DEFAULT_USERS_PER_CORE,
    USERS_PER_CORE,
    processes_advice,
    suggested_processes,
    users_per_core,
)
from loadgen.metrics.summary import build_summary


def test_the_figures_per_transport() -> None:
    # reports/BENCHMARKS.md: ~1,000 REST and ~500 gRPC conversations per core, with margin; AMQP broker-bound
    assert USERS_PER_CORE == {"rest": 800, "grpc": 400, "amqp": 200}
    assert DEFAULT_USERS_PER_CORE == 200
    assert users_per_core(["rest"]) == 800
    assert users_per_core(["rest", "grpc"]) == 400  # the costliest of the run's transports
    assert users_per_core(["grpc", "amqp"]) == 200
    assert users_per_core(["mypkg.mod:Custom"]) == 200  # not measured
    assert users_per_core(["rest", "mypkg.mod:Custom"]) == 200
    assert users_per_core([]) == 200


@pytest.mark.parametrize(
    ("users", "processes", "per_core", "expected"),
    [
        (1600, 1, 800, 2),
        (1601, 1, 800, 3),
        (800, 1, 800, 2),
        (1200, 1, 400, 3),
        (1201, 1, 400, 4),
        (100, 1, 800, 2),
        (2000, 2, 250, 8),
        (500, 4, 800, 5),
        (10, 0, 200, 2),
    ],
)
def test_processes_are_sized_from_users_per_core(users: int, processes: int, per_core: int, expected: int) -> None:
    # ceil(users / per_core), and always more processes than the run that lagged had
    assert suggested_processes(users, processes, per_core) == expected


def test_advice_wording() -> None:
    assert processes_advice(1500, 1, ["rest"]) == (
        "use --processes 2 for 1500 users (~800 live conversations per generator core over rest, "
        "reports/BENCHMARKS.md), or fewer users per process"
    )
    assert processes_advice(1500, 1, ["rest", "grpc", "rest"]) == (
        "use --processes 4 for 1500 users (~400 live conversations per generator core over grpc/rest, "
        "reports/BENCHMARKS.md), or fewer users per process"
    )
    assert processes_advice(None, None) == (
        "use fewer users per process or --processes N with N = users / 200 "
        "(~200 live conversations per generator core, reports/BENCHMARKS.md)"
    )
    assert processes_advice(0, 1) == processes_advice(None, 1)


def _lagging_batch(lag_us: int, transport: str = "rest") -> MetricsBatch:
    batch = MetricsBatch()
    for _ in range(10):
        batch.record(SeriesKey(ALL, ALL, 0, "generator_lag"), lag_us)
        batch.record(SeriesKey(transport, ALL, 0, "e2e"), 1_000)
    return batch


def test_the_lag_warning_names_the_processes_for_the_runs_users_and_transport() -> None:
    run = {"id": "t", "duration_s": 10.0, "users": 900, "processes": 1}
    summary = build_summary(_lagging_batch(9_000), run)
    (warning,) = [w for w in summary["warnings"] if "generator lag" in w]
    assert "use --processes 2 for 900 users (~800 live conversations per generator core over rest" in warning
    over_grpc = build_summary(_lagging_batch(9_000, "grpc"), run)
    (warning,) = [w for w in over_grpc["warnings"] if "generator lag" in w]
    assert "use --processes 3 for 900 users (~400 live conversations per generator core over grpc" in warning
    quiet = build_summary(_lagging_batch(1_000), {"id": "t", "duration_s": 10.0, "users": 900})
    assert not [w for w in quiet["warnings"] if "generator lag" in w]
