"""The run's accumulated figures: totals plus interval snapshots for "over time" plots and .hlog files.

One aggregator lives in the process that writes the report (Locust's master, or the only process).
It receives deltas: from this process's own recorder, or encoded from workers (``merge_wire``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from loadgen.metrics.batch import MetricsBatch, Pause
from loadgen.metrics.keys import ALL, SeriesKey


@dataclass
class IntervalSnapshot:
    start: float  # unix seconds
    end: float
    wire: dict[str, Any]  # MetricsBatch.to_wire() of the aggregate series (dialogue "*") in that interval


class RunAggregator:
    def __init__(self, interval_s: float = 5.0, clock: Any = time.time) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self.total = MetricsBatch()
        self._interval = MetricsBatch()
        self.started_at = clock()
        self._interval_start = self.started_at
        self.intervals: list[IntervalSnapshot] = []
        self.updates = 0  # bumps on every merge: lets writers skip rewriting unchanged data
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """No merge (and no interval roll) while this is held: a reader with pauses sees one state."""
        with self._lock:
            yield

    def merge(self, batch: MetricsBatch, *, pause: Pause | None = None) -> None:
        """Add this process's own figures directly (histograms added in place, nothing encoded); ``pause`` is
        called between groups of histograms (the aggregator stays locked meanwhile)."""
        if batch.is_empty():
            return
        with self._lock:
            self.total.merge(batch, pause=pause)
            self._interval.merge(batch, dialogue=ALL)
            self.updates += 1
        self.maybe_roll()

    def merge_wire(self, data: dict[str, Any]) -> None:
        with self._lock:
            self.total.merge_wire(data)
            aggregate_only = {
                "v": data["v"],
                "h": {k: v for k, v in data["h"].items() if SeriesKey.decode(k).dialogue == ALL},
                "c": {k: v for k, v in data["c"].items() if SeriesKey.decode(k).dialogue == ALL},
            }
            self._interval.merge_wire(aggregate_only)
            self.updates += 1
        self.maybe_roll()

    def maybe_roll(self, *, force: bool = False) -> None:
        now = self._clock()
        with self._lock:
            if not force and now - self._interval_start < self.interval_s:
                return
            if not self._interval.is_empty() or force:
                self.intervals.append(IntervalSnapshot(self._interval_start, now, self._interval.to_wire()))
            self._interval = MetricsBatch()
            self._interval_start = now
