"""The load generator's own lag: a greenlet that asks to wake every 10 ms and records how late it woke.

When this lag grows, the generator (not the service) is the bottleneck and its delay leaks into every
latency it measures. Runs in every Locust process that runs users.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gevent

TICK_S = 0.010


class LagProbe:
    def __init__(self, record: Callable[[int], None], tick_s: float = TICK_S) -> None:
        self._record = record
        self._tick_s = tick_s
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    @property
    def running(self) -> bool:
        return self._greenlet is not None and not self._greenlet.dead

    def _run(self) -> None:
        tick = self._tick_s
        while True:
            before = time.perf_counter()
            gevent.sleep(tick)
            late = time.perf_counter() - before - tick
            self._record(max(0, round(late * 1_000_000)))
