"""The ``--processes N`` a run should have used when its generator lag warning fires, sized from the measured
per-core capacity (reports/BENCHMARKS.md, "Live conversations per generator core": ~500 live conversations at
1-3 s think with model-paced 64-token replies before the lag p99 passes 5 ms on one core; planned with margin).
"""

from __future__ import annotations

import math

#: Live conversations one generator process (one core) holds with margin before its lag p99 passes 5 ms.
USERS_PER_CORE = 400


def suggested_processes(users: int, processes: int = 1) -> int:
    """Processes for ``users`` at :data:`USERS_PER_CORE` each; always more than the ``processes`` that lagged."""
    return max(math.ceil(users / USERS_PER_CORE), max(processes, 1) + 1)


def processes_advice(users: int | None, processes: int | None) -> str:
    """The suggestion printed with the lag warning: a concrete ``--processes N`` when the user count is known."""
    if not users or users <= 0:
        return (
            f"use fewer users per process or --processes N with N = users / {USERS_PER_CORE} "
            f"(~{USERS_PER_CORE} live conversations per generator core, reports/BENCHMARKS.md)"
        )
    n = suggested_processes(users, processes or 1)
    return (
        f"use --processes {n} for {users} users (~{USERS_PER_CORE} live conversations per generator core, "
        f"reports/BENCHMARKS.md), or fewer users per process"
    )
