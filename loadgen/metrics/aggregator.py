"""The run's accumulated figures: totals, interval snapshots, per-window rows and outages.

One aggregator lives in the process that writes the report (Locust's master, or the only process). It receives
deltas: from this process's own recorder (``merge``), or encoded from workers (``merge_wire``, and
``merge_outages_wire`` for their outage events). Turns started in the warm-up or cool-down come separately
(``merge_unsteady``, ``merge_unsteady_wire``: the process that ran them sorted them): they go to the intervals only,
never to the totals the summary, thresholds and comparisons read.

Every ``interval_s`` (at the first merge or :meth:`RunAggregator.maybe_roll` after it) the aggregate series
(dialogue ``*``) of the interval just ended become an :class:`IntervalSnapshot`, handed to ``on_interval`` (the
run folder appends it to ``intervals.jsonl``; by default it is kept in :attr:`RunAggregator.intervals`, for
tests and offline use) and added to the open window (:mod:`loadgen.metrics.windows`). Nothing the aggregator
keeps grows with the run's length: the totals are one set of histograms, windows are a handful of rows, outages
settle (:mod:`loadgen.metrics.recovery`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from loadgen.metrics.batch import MetricsBatch, Pause
from loadgen.metrics.keys import ALL, SeriesKey
from loadgen.metrics.recovery import OutageTracker
from loadgen.metrics.windows import WindowSeries, drift_of, window_length

#: How long after it happened an outage event may still arrive, beyond a turn's time-out (reports, clocks).
EVENT_DELAY_S = 15.0


@dataclass
class IntervalSnapshot:
    start: float  # unix seconds
    end: float
    wire: dict[str, Any]  # MetricsBatch.to_wire() of the aggregate series (dialogue "*") in that interval

    def to_json(self) -> dict[str, Any]:
        """One line of ``intervals.jsonl``."""
        return {"start": self.start, "end": self.end, **self.wire}


def _aggregate_only(data: dict[str, Any]) -> dict[str, Any]:
    """The aggregate series (dialogue ``*``) of a wire form: what an interval keeps."""
    return {
        "v": data["v"],
        "h": {k: v for k, v in data["h"].items() if SeriesKey.decode(k).dialogue == ALL},
        "c": {k: v for k, v in data["c"].items() if SeriesKey.decode(k).dialogue == ALL},
    }


class RunAggregator:
    def __init__(
        self,
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.time,
        *,
        drift_window_s: float | None = None,
        run_s: float | None = None,
        turn_timeout_s: float = 60.0,
        on_interval: Callable[[IntervalSnapshot], None] | None = None,
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._drift_window_s = drift_window_s
        self._run_s = run_s
        self._horizon_s = turn_timeout_s + EVENT_DELAY_S
        self.intervals: list[IntervalSnapshot] = []  # kept only without an ``on_interval`` sink
        self.on_interval = on_interval
        self._lock = threading.Lock()
        self.begin(clock())

    def begin(self, now: float) -> None:
        """Start afresh at ``now``: no figures, no intervals, no windows, no outages (a new test)."""
        self.total = MetricsBatch()
        self._interval = MetricsBatch()
        self.started_at = now
        self._interval_start = now
        self.intervals = []
        self.intervals_closed = 0
        window_s, may_double = window_length(self.interval_s, self._drift_window_s, self._run_s)
        self.windows = WindowSeries(now, window_s, may_double)
        self.outages = OutageTracker(self._horizon_s)
        # bumps on every change, never goes back (a new test too): lets writers and readers skip unchanged data
        self.updates = getattr(self, "updates", -1) + 1

    def reset_figures(self) -> None:
        """Drop the totals, windows and outages recorded so far (Locust's "reset stats"); intervals go on."""
        with self._lock:
            self.total = MetricsBatch()
            now = self._clock()
            window_s, may_double = window_length(self.interval_s, self._drift_window_s, self._run_s)
            self.windows = WindowSeries(now, window_s, may_double)
            self.outages = OutageTracker(self._horizon_s)
            self.updates += 1

    @property
    def now(self) -> float:
        return self._clock()

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
            self._interval.merge_wire(_aggregate_only(data))
            self.updates += 1
        self.maybe_roll()

    def merge_unsteady(self, batch: MetricsBatch) -> None:
        """This process's turns of the warm-up or cool-down: into the interval (``intervals.jsonl``) only."""
        if batch.is_empty():
            return
        with self._lock:
            self._interval.merge(batch, dialogue=ALL)
            self.updates += 1
        self.maybe_roll()

    def merge_unsteady_wire(self, data: dict[str, Any]) -> None:
        """A worker's turns of the warm-up or cool-down (wire form): into the interval only."""
        with self._lock:
            self._interval.merge_wire(_aggregate_only(data))
            self.updates += 1
        self.maybe_roll()

    def merge_outages_wire(self, data: dict[str, Any]) -> None:
        """A process's outage events (:meth:`loadgen.metrics.outages.OutageRecorder.take_wire`)."""
        if not data.get("t"):
            return
        with self._lock:
            self.outages.merge_wire(data)
            self.updates += 1

    def maybe_roll(self, *, force: bool = False) -> None:
        now = self._clock()
        with self._lock:
            if not force and now - self._interval_start < self.interval_s:
                return
            if not self._interval.is_empty() or force:
                snapshot = IntervalSnapshot(self._interval_start, now, self._interval.to_wire())
                self.intervals_closed += 1
                self.windows.add_interval(self._interval_start, now, self._interval)
                if self.on_interval is None:
                    self.intervals.append(snapshot)
                else:
                    self.on_interval(snapshot)
            self._interval.empty_in_place()
            self._interval_start = now

    def settle(self) -> None:
        """Settle what outages can no longer change (see :mod:`loadgen.metrics.recovery`)."""
        with self._lock:
            self.outages.settle(self._clock())

    def sections(self) -> tuple[dict[str, Any], list[str]]:
        """summary.json's ``windows``, ``drift``, ``outages`` and ``recovery`` now, and their warnings. Call it with
        the aggregator held."""
        now = self._clock()
        windows = self.windows.to_json(now)
        outages, recovery, warnings = self.outages.to_json(self.started_at)
        return {
            "windows": windows,
            "drift": drift_of(windows["rows"]),
            "outages": outages,
            "recovery": recovery,
        }, warnings
