"""The --processes advice (loadgen.metrics.lag_advice) at its edges: the default of the processes that lagged,
one user, a process count not known."""

from __future__ import annotations

from loadgen.metrics.lag_advice import processes_advice, suggested_processes


def _advice(n: int, users: int) -> str:
    return (
        f"use --processes {n} for {users} users (~200 live conversations per generator core, reports/BENCHMARKS.md), "
        "or fewer users per process"
    )


def test_one_process_lagged_unless_told_otherwise() -> None:
    assert suggested_processes(100) == 2
    assert suggested_processes(1200) == 6  # at the default 200 per core
    assert suggested_processes(100, 3) == 4


def test_the_advice_with_a_known_user_count() -> None:
    assert processes_advice(1, 1) == _advice(2, 1)  # one user is a known count
    assert processes_advice(100, None) == _advice(2, 100)  # processes not known: one
    assert processes_advice(100, 0) == _advice(2, 100)
    assert processes_advice(100, 3) == _advice(4, 100)  # always more than the processes that lagged
    assert processes_advice(2000, 3) == _advice(10, 2000)


def test_the_advice_without_a_user_count() -> None:
    generic = (
        "use fewer users per process or --processes N with N = users / 200 "
        "(~200 live conversations per generator core, reports/BENCHMARKS.md)"
    )
    assert processes_advice(None, 3) == generic
    assert processes_advice(0, 3) == generic
    assert processes_advice(-5, 3) == generic
