"""Open-model arrivals: new conversations at a rate, on a schedule that does not wait for the service.

:class:`ArrivalClock` hands out intended arrival times (``time.monotonic()`` seconds): evenly spaced
(``constant``) or with exponential gaps (``poisson``, the default: independent users arriving at random). The
schedule is computed, never measured: when the generator or the target falls behind, arrivals are due in the
past and are started (or dropped, when the in-flight cap is reached) without moving the schedule, so a slow
service meets the same arrivals a fast one does (wrk2's lesson on coordinated omission).

A run's rate is split over its load-generating processes: each of ``shares`` processes runs a clock at
``rate / shares``; Poisson streams superpose exactly, and constant streams are phase-shifted by
``index / shares`` of the whole run's gap so that together they are evenly spaced too. The rate may change
while the clock runs (rate steps), and so may the number of shares (a worker joined or was lost): the next gap
is drawn at the new rate from the last arrival (constant streams then keep their own phase).
"""

from __future__ import annotations

import enum
import random


class ArrivalKind(enum.StrEnum):
    CONSTANT = "constant"
    POISSON = "poisson"


class ArrivalClock:
    """Intended arrival times for one process. Not thread-safe: one dispatcher greenlet owns it."""

    def __init__(
        self,
        rate_per_s: float,
        kind: ArrivalKind = ArrivalKind.POISSON,
        *,
        start: float,
        shares: int = 1,
        index: int = 0,
        rng: random.Random | None = None,
    ) -> None:
        if shares < 1 or not 0 <= index < shares:
            raise ValueError(f"index {index} of {shares} shares")
        self.kind = kind
        self.shares = shares
        self._rng = rng or random.Random()
        self._rate = 0.0
        self.set_rate(rate_per_s)
        first_gap = self._gap()
        if kind is ArrivalKind.CONSTANT and self._rate > 0:
            first_gap = (index + 1) / (self._rate * shares)  # this process's slot among the run's arrivals
        self._next = start + first_gap if self._rate > 0 else float("inf")
        self.issued = 0

    @property
    def rate_per_s(self) -> float:
        """This process's rate (the run's rate divided by ``shares``)."""
        return self._rate

    def set_rate(self, run_rate_per_s: float, now: float | None = None, *, shares: int | None = None) -> None:
        """Change the run's rate, and with ``shares`` the number of processes it is split over (a worker joined
        the run or was lost; kept when None). The arrival already scheduled stays; the gaps after it are drawn at
        the new rate. A clock stopped at rate 0 resumes one gap after ``now``."""
        if run_rate_per_s < 0:
            raise ValueError(f"arrival rate must not be negative, got {run_rate_per_s}")
        if shares is not None:
            if shares < 1:
                raise ValueError(f"{shares} shares")
            self.shares = shares
        self._rate = run_rate_per_s / self.shares
        if now is not None and getattr(self, "_next", None) == float("inf"):
            self._next = now + self._gap()

    def _gap(self) -> float:
        if self._rate <= 0:
            return float("inf")
        if self.kind is ArrivalKind.CONSTANT:
            return 1.0 / self._rate
        return self._rng.expovariate(self._rate)

    def peek(self) -> float:
        """When the next arrival is due (``inf`` at rate 0)."""
        return self._next

    def pop(self) -> float:
        """The next arrival's intended time; the one after is scheduled from it, not from now."""
        due = self._next
        self._next = due + self._gap()
        self.issued += 1
        return due
