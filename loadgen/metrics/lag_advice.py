"""The ``--processes N`` a run should have used when its generator lag warning fires, sized from the measured
per-core capacity of its transports (reports/BENCHMARKS.md, "Live conversations per generator core": at 1-3 s
think with model-paced 64-token replies, one core held ~1,000 REST conversations before its lag p99 passed 5 ms,
~500 over gRPC with the project's own HTTP/2 client (the reference server on the same 2 cores was the limit there;
~300 through grpcio, which ``grpcs://`` still uses); AMQP was held back by the broker on the same machine; each
planned with margin).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final

#: Live conversations one generator process (one core) holds with margin before its lag p99 passes 5 ms.
USERS_PER_CORE: Final[dict[str, int]] = {"rest": 800, "grpc": 400, "amqp": 200}
#: For a transport not measured (a plugin's) or a run whose transports are not known: the lowest figure.
DEFAULT_USERS_PER_CORE: Final = 200


def users_per_core(transports: Iterable[str] = ()) -> int:
    """What one core holds for a run over ``transports``: the figure of the costliest of them."""
    figures = [USERS_PER_CORE.get(t, DEFAULT_USERS_PER_CORE) for t in transports]
    return min(figures) if figures else DEFAULT_USERS_PER_CORE


def suggested_processes(users: int, processes: int = 1, per_core: int = DEFAULT_USERS_PER_CORE) -> int:
    """Processes for ``users`` at ``per_core`` each; always more than the ``processes`` that lagged."""
    return max(math.ceil(users / per_core), max(processes, 1) + 1)


def processes_advice(users: int | None, processes: int | None, transports: Iterable[str] = ()) -> str:
    """The suggestion printed with the lag warning: a concrete ``--processes N`` when the user count is known."""
    names = sorted(set(transports))
    per_core = users_per_core(names)
    over = f" over {'/'.join(names)}" if names else ""
    capacity = f"~{per_core} live conversations per generator core{over}, reports/BENCHMARKS.md"
    if not users or users <= 0:
        return f"use fewer users per process or --processes N with N = users / {per_core} ({capacity})"
    n = suggested_processes(users, processes or 1, per_core)
    return f"use --processes {n} for {users} users ({capacity}), or fewer users per process"
