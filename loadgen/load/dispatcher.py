"""Open-model dispatch: due arrivals handed to idle conversation slots, or dropped, never delayed.

One :class:`Dispatcher` per load-generating process owns the process's :class:`~loadgen.load.arrivals.ArrivalClock`.
The slots are the process's users: an idle slot waits in :meth:`Dispatcher.wait_for_arrival`, gets the intended
arrival time of the next due arrival, runs one whole dialogue from it and says so with :meth:`Dispatcher.done`.
An arrival due while no slot is idle is *dropped*: counted, and the schedule goes on as if it had started (a slow
service meets the same arrivals a fast one does).

What is counted (:class:`ArrivalCounts`) goes to the ``record`` callback as it happens (the
:class:`~loadgen.metrics.keys.Count` ``arrivals*`` names), so it travels with the turns' figures: ``offered``
(arrivals due), ``started`` (handed to a slot), ``dropped``, ``dispatch_ms`` (how long this dispatcher has run)
with ``dispatchers`` (1 when it starts: summed over processes, the number that dispatched), ``run_ms`` (the
dispatching time divided by the number of processes sharing the rate: summed over processes, the run's
dispatching time, even when a worker joined late), ``requested_milli`` (this process's rate integrated over its
dispatching time, in thousandths of an arrival: summed, what the run asked for through its rate steps),
``live_ms`` (the live
conversations integrated over time, in conversation-milliseconds: divided by the dispatching time it is the mean
number of live conversations, and it sums exactly across processes) and ``live_max`` (raised by how much this
process's highest live count grew, so that the run's figure is the sum of each process's highest: exact with one
process, an upper bound with several).

Times are ``time.perf_counter()`` seconds (the clock the users measure turns with) unless ``now`` says otherwise.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass

import gevent
import gevent.event

from loadgen.load.arrivals import ArrivalClock
from loadgen.metrics.keys import Count

#: How often the dispatcher wakes up even when no arrival is due (rate changes, live samples, a stop).
TICK_S = 0.25
#: How often the live conversations are sampled into ``live_ms``.
SAMPLE_S = 1.0


#: Called with (counter, amount) as each arrival is offered, started or dropped and as live time accrues.
Record = Callable[[Count, int], None]


@dataclass
class ArrivalCounts:
    """This process's totals since its dispatcher started."""

    offered: int = 0
    started: int = 0
    dropped: int = 0
    live: int = 0
    live_max: int = 0
    live_ms: int = 0
    dispatch_ms: int = 0


class Dispatcher:
    """Hands due arrivals to idle slots (see the module doc). ``tick`` does the work; ``start`` runs it in a
    greenlet of its own until ``stop``."""

    def __init__(self, clock: ArrivalClock, record: Record | None = None, now: Callable[[], float] | None = None):
        self.clock = clock
        self.counts = ArrivalCounts()
        self._record = record or (lambda _counter, _n: None)
        self._now = now or time.perf_counter
        self._idle: collections.deque[gevent.event.AsyncResult] = collections.deque()
        self._sampled_at = self._now()
        self._carry: dict[Count, float] = {}
        self._greenlet: gevent.Greenlet | None = None
        self._wake = gevent.event.Event()
        self._stopped = False

    @property
    def idle(self) -> int:
        """Slots waiting for an arrival now."""
        return len(self._idle)

    def set_rate(self, run_rate_per_s: float, *, shares: int | None = None) -> None:
        """A new rate for the whole run (a rate step), split over ``shares`` processes when given (a worker joined
        or was lost); the dispatcher loop picks it up at once."""
        self._sample(self._now())  # the time so far counts at the old rate and share
        self.clock.set_rate(run_rate_per_s, now=self._now(), shares=shares)
        self._wake.set()

    # --- the slots' side ------------------------------------------------------------------------------------------
    def wait_for_arrival(self) -> float:
        """Block until an arrival is handed to this slot; its intended time. A slot killed while it waits (its user
        stopped) leaves the idle queue; one killed just after it was handed an arrival ends that conversation."""
        waiter = gevent.event.AsyncResult()
        self._idle.append(waiter)
        try:
            intended: float = waiter.get()
        except BaseException:  # GreenletExit: the slot's user is stopped
            if waiter.ready():
                self.done()  # handed an arrival, stopped before it began
            else:
                self._idle.remove(waiter)
            raise
        return intended

    def done(self) -> None:
        """A slot's conversation ended (finished, failed or cut off)."""
        self._sample(self._now())
        self.counts.live -= 1

    # --- the dispatcher's side -----------------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> float:
        """Offer every arrival due by ``now``: each to an idle slot (the longest idle first) or dropped. Returns when
        the next arrival is due."""
        now = self._now() if now is None else now
        while self.clock.peek() <= now:
            intended = self.clock.pop()
            self._offer(intended, now)
        if now - self._sampled_at >= SAMPLE_S:
            self._sample(now)
        return self.clock.peek()

    def _offer(self, intended: float, now: float) -> None:
        self.counts.offered += 1
        self._record(Count.ARRIVALS, 1)
        if not self._idle:
            self.counts.dropped += 1
            self._record(Count.ARRIVALS_DROPPED, 1)
            return
        self._sample(now)
        self.counts.started += 1
        self.counts.live += 1
        self._record(Count.ARRIVALS_STARTED, 1)
        if self.counts.live > self.counts.live_max:
            self._record(Count.ARRIVALS_LIVE_MAX, self.counts.live - self.counts.live_max)
            self.counts.live_max = self.counts.live
        self._idle.popleft().set(intended)

    def _sample(self, now: float) -> None:
        """Integrate the dispatching time and the live conversations up to ``now`` (whole milliseconds recorded, the
        rest carried)."""
        if self._stopped:
            return  # the live time ends where the dispatching did
        elapsed_ms = max(0.0, now - self._sampled_at) * 1000.0
        self._sampled_at = now
        self.counts.dispatch_ms += self._accrue(Count.ARRIVALS_DISPATCH_MS, elapsed_ms)
        self._accrue(Count.ARRIVALS_RUN_MS, elapsed_ms / self.clock.shares)
        self._accrue(Count.ARRIVALS_REQUESTED_MILLI, elapsed_ms * self.clock.rate_per_s)  # ms x 1/s = 1/1000
        self.counts.live_ms += self._accrue(Count.ARRIVALS_LIVE_MS, self.counts.live * elapsed_ms)

    def _accrue(self, counter: Count, ms: float) -> int:
        ms += self._carry.get(counter, 0.0)
        whole = int(ms + 1e-6)  # 0.7 - 0.2 s is 499.99... ms in floating point
        self._carry[counter] = ms - whole
        if whole:
            self._record(counter, whole)
        return whole

    def start(self) -> None:
        """Dispatch in a greenlet of its own; the dispatching time counts from now, and arrivals the clock had due
        before now are skipped, not offered (the schedule keeps its phase). Once only: a stopped dispatcher stays
        stopped."""
        if self._greenlet is None and not self._stopped:
            now = self._sampled_at = self._now()
            while self.clock.peek() < now:
                self.clock.pop()
            self._record(Count.ARRIVALS_DISPATCHERS, 1)
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        """Stop dispatching; the live time up to now is recorded, none after it."""
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None
        self._sample(self._now())
        self._stopped = True

    def _run(self) -> None:
        while True:
            due = self.tick()
            self._wake.clear()
            wait = min(TICK_S, max(0.0, due - self._now()))
            if wait > 0:
                self._wake.wait(timeout=wait)
            else:
                gevent.sleep(0)  # let the slots handed an arrival start


__all__ = ["SAMPLE_S", "TICK_S", "ArrivalCounts", "Dispatcher", "Record"]
