"""The transport contract kit: hold a transport (yours, or a built-in one) and a service to the transport API.

The checks (:data:`CHECKS`, one function each, ``check(target)``; ``docs/TRANSPORT_API.md`` explains them):

- replies and timing (:mod:`loadgen.testing.checks`): a streamed turn's timestamps in order (``t_sent <=
  t_first_byte <= chunk_times[0] <= ... <= t_done``) and its counts; a whole turn; TTFT against a service with known
  fixed timing (never early, chunks never held back); client history (the whole conversation) and server history
  (a session id) both answered from the history;
- failures (:mod:`loadgen.testing.failures`): a refused connection is a ``ConnectError``, a slow reply a
  ``TurnTimeout`` at the deadline (before the first token and mid-stream), an error answer a ``ServerError``; the
  transport goes on after each with replies of its own; secrets stay out of reasons; a turn cut short lets the
  service stop streaming; ``close()`` twice;
- under gevent, as in Locust (:mod:`loadgen.testing.gevent_check`): the hub never blocked, users' turns overlap, a
  killed turn ends at once.

Use it three ways:

- ``python -m loadgen.testing --transport NAME [--host URL --fixed-ttft-ms 50 --fixed-itl-ms 10]`` (no ``--host``:
  against the reference server, for the transports it serves);
- from pytest: :mod:`loadgen.testing.pytest_plugin` makes a test per check;
- from code: ``run_contract(ContractTarget(...))`` or any check on its own; ``reference_target(name)`` gives a
  target on the reference server, started in a thread with fixed timing.

Importing this package imports no Locust and no gevent.
"""

from __future__ import annotations

from loadgen.testing.checks import CheckSkipped, ContractFailure
from loadgen.testing.reference import reference_target
from loadgen.testing.runner import CHECKS, CheckResult, check_name, run_check, run_contract
from loadgen.testing.target import ContractTarget

__all__ = [
    "CHECKS",
    "CheckResult",
    "CheckSkipped",
    "ContractFailure",
    "ContractTarget",
    "check_name",
    "reference_target",
    "run_check",
    "run_contract",
]
