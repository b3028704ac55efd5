"""The run folder of a Locust run (master or single process): named, checkpointed as the run goes, written whole
when each test stops.

- Named at ``init`` (``--run-id``, or a time stamp + the transport); created when a test starts. A test started
  again from the web UI after a stop is a new run: ``<run-id>-2``, ``-3``, ...
- ``intervals.jsonl`` is appended as each interval closes (:class:`~loadgen.metrics.rundir.IntervalLog`).
- Every ``--checkpoint-interval`` seconds the checkpoint greenlet rewrites ``summary.json`` and
  ``histograms.json`` (``run.complete`` false) with pauses (:func:`pause`) after each histogram read or
  encoded, so the users run between them; its cost does not grow with the run's length. ``run.checkpoints`` says
  what they cost: ``{"count", "interval_s", "last_ms", "mean_ms", "max_ms"}`` (wall-clock, the users' turns in the
  pauses included), ``cpu_last_ms``, ``cpu_mean_ms``, ``cpu_max_ms`` (the checkpoint's own work, this thread's CPU
  time between pauses) and ``max_block_ms`` (the longest stretch of that work without a pause: the most a
  checkpoint held the users up, less what other processes took of the core meanwhile). A run killed with
  ``kill -9`` loses at most the seconds since the last checkpoint.
- The run block says the test's steady window (``warmup_s``, ``cooldown_s``, ``steady``:
  :class:`~loadgen.metrics.steady.SteadyWindow`); the summary's rates are over it, and with ``--slo`` it has the SLO
  figures (:mod:`loadgen.load.slo`).
- When the test stops, the folder is written whole (``run.complete`` true) and the summary listeners run (report
  files, CI gates).

``faults`` (from the embedded server's ``loadgen-fault`` lines) are ``[{"fault", "kind", "start_s", "end_s"}]``
in seconds from the run's start (``end_s`` null while a fault lasts; an instant fault ends where it starts).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gevent
import greenlet  # type: ignore[import-untyped]

from loadgen.locust_plugin.runtime import LoadgenRuntime
from loadgen.metrics.aggregator import RunAggregator
from loadgen.metrics.rundir import IntervalLog, write_run

logger = logging.getLogger("loadgen")

#: (sections, warnings) another part adds to summary.json, given the run's start: the embedded server's faults,
#: the workers. A section named "run" is merged into the run block instead.
SectionSource = Callable[[float], tuple[dict[str, Any], list[str]]]


def pause() -> None:
    """Let the users run between groups of histograms of a checkpoint or a flush: ``gevent.idle()`` returns once the
    event loop has polled and run what was due (timers, sockets: a user's think time or reply, the lag probe), at
    ~2 us when nothing was. ``gevent.sleep(0)`` only runs greenlets already ready, so one waiting for a timer or a
    socket waited for the whole checkpoint (a 10 ms ticker ran ~45 ms late across 200 pauses after 1 ms of work
    each; ~2 ms with this pause); ``gevent.sleep(0.0001)`` serves them too but costs ~1 ms a pause (the loop's
    millisecond timers)."""
    gevent.idle()


class _Meter:
    """A pause that also measures the work between pauses: its total and its longest stretch. Time is this thread's
    CPU time while this greenlet runs (a greenlet switch hook stops the clock when another greenlet runs, e.g. while
    this one waits for a lock), so neither other processes nor the users' own work count as the checkpoint's."""

    def __init__(self, inner: Callable[[], None] | None) -> None:
        self._inner = inner
        self._me = greenlet.getcurrent()
        self._since = time.thread_time()
        self._stretch_s = 0.0
        self.busy_s = 0.0
        self.longest_s = 0.0
        self._previous = greenlet.settrace(self._trace)

    def _trace(self, event: str, args: Any) -> None:
        if event in ("switch", "throw"):
            origin, target = args
            if origin is self._me:
                self._stretch_s += time.thread_time() - self._since
            elif target is self._me:
                self._since = time.thread_time()
        if self._previous is not None:
            self._previous(event, args)

    def __call__(self) -> None:
        self._close_stretch()
        if self._inner is not None:
            self._inner()
        self._stretch_s, self._since = 0.0, time.thread_time()

    def _close_stretch(self) -> None:
        self._stretch_s += time.thread_time() - self._since
        self.busy_s += self._stretch_s
        self.longest_s = max(self.longest_s, self._stretch_s)
        self._stretch_s, self._since = 0.0, time.thread_time()

    def finish(self) -> tuple[float, float]:
        """Stop measuring: (the work's total, its longest stretch), in seconds."""
        self._close_stretch()
        greenlet.settrace(self._previous)
        return self.busy_s, self.longest_s


@dataclass
class CheckpointStats:
    interval_s: float
    count: int = 0
    total_s: float = 0.0
    last_s: float = 0.0
    max_s: float = 0.0
    cpu_total_s: float = 0.0
    cpu_last_s: float = 0.0
    cpu_max_s: float = 0.0
    max_block_s: float = 0.0

    def add(self, took_s: float, cpu_s: float, block_s: float) -> None:
        self.count += 1
        self.total_s += took_s
        self.last_s = took_s
        self.max_s = max(self.max_s, took_s)
        self.cpu_total_s += cpu_s
        self.cpu_last_s = cpu_s
        self.cpu_max_s = max(self.cpu_max_s, cpu_s)
        self.max_block_s = max(self.max_block_s, block_s)

    def to_json(self) -> dict[str, Any]:
        def ms(s: float) -> float | None:
            return round(s * 1000.0, 3) if self.count else None

        n = max(self.count, 1)
        return {
            "count": self.count,
            "interval_s": self.interval_s,
            "last_ms": ms(self.last_s),
            "mean_ms": ms(self.total_s / n),
            "max_ms": ms(self.max_s),
            "cpu_last_ms": ms(self.cpu_last_s),
            "cpu_mean_ms": ms(self.cpu_total_s / n),
            "cpu_max_ms": ms(self.cpu_max_s),
            "max_block_ms": ms(self.max_block_s),
        }


def faults_section(events: list[dict[str, Any]], started_at: float) -> list[dict[str, Any]]:
    """The embedded server's fault edges (contract: ``{"fault", "kind", "edge", "at"}``) as one row per fault."""
    rows: list[dict[str, Any]] = []
    open_rows: dict[str, dict[str, Any]] = {}
    for event in sorted(events, key=lambda e: float(e.get("at", 0.0))):
        at = round(float(event.get("at", 0.0)) - started_at, 3)
        name = str(event.get("fault", ""))
        if event.get("edge") == "end":
            row = open_rows.pop(name, None)
            if row is not None:
                row["end_s"] = at
            continue
        row = {"fault": name, "kind": str(event.get("kind", "")), "start_s": at, "end_s": None}
        if event.get("kind") == "forget-sessions":  # an instant: one edge
            row["end_s"] = at
        else:
            open_rows[name] = row
        rows.append(row)
    return rows


class RunFolder:
    """The run folder and its writes (see the module doc). One per process that writes reports."""

    def __init__(self, reports_dir: str, run_id: str, checkpoint_s: float) -> None:
        self.base = Path(reports_dir) / run_id
        self.run_dir: Path = self.base
        self.tests = 0
        self.meta: dict[str, Any] = {"id": run_id}
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.stats = CheckpointStats(checkpoint_s)
        self.sources: list[SectionSource] = []
        self.interval_log: IntervalLog | None = None
        self.active = False  # a test has begun and its folder is not yet final
        self.written_updates = -1
        self.last_summary: dict[str, Any] | None = None
        self._writing = threading.Lock()  # gevent's once Locust has patched threading

    def begin(self, rt: LoadgenRuntime, now: float) -> None:
        """A test starts: a folder of its own (the second test of a process gets ``<run-id>-2``), figures from 0."""
        assert rt.aggregator is not None
        self.tests += 1
        run_id = self.base.name if self.tests == 1 else f"{self.base.name}-{self.tests}"
        self.run_dir = self.base.with_name(run_id)
        self.meta["id"] = run_id
        self.started_at, self.stopped_at = now, None
        self.stats = CheckpointStats(self.stats.interval_s)
        if self.interval_log is not None:
            self.interval_log.close()
        self.interval_log = IntervalLog(self.run_dir, fresh=True)
        rt.aggregator.on_interval = self.interval_log
        rt.aggregator.begin(now)
        self.active = True
        self.written_updates = -1

    def stop(self, now: float) -> None:
        if self.stopped_at is None:
            self.stopped_at = now

    def write(self, environment: Any, rt: LoadgenRuntime, *, final: bool) -> dict[str, Any] | None:
        """A checkpoint (``final`` False: with pauses, timed) or the test's last write. One write at a time: the
        test's last write waits for a checkpoint under way, and a checkpoint that waited for the last write (or
        began after it) writes nothing, so it never overwrites the complete folder with an incomplete one."""
        with self._writing:
            if not final and not self.active:
                return self.last_summary
            return self._write_timed(environment, rt, final=final)

    def _write_timed(self, environment: Any, rt: LoadgenRuntime, *, final: bool) -> dict[str, Any] | None:
        agg = rt.aggregator
        if agg is None:
            return None
        began = time.perf_counter()
        meter = _Meter(None if final else pause)
        try:
            summary = self._write(environment, rt, agg, meter, final=final)
        finally:
            cpu_s, block_s = meter.finish()
        if not final:
            self.stats.add(time.perf_counter() - began, cpu_s, block_s)
        self.written_updates = agg.updates
        self.last_summary = summary
        return summary

    def _write(
        self, environment: Any, rt: LoadgenRuntime, agg: RunAggregator, meter: _Meter, *, final: bool
    ) -> dict[str, Any]:
        rt.flush_local(pause=meter)
        agg.maybe_roll(force=final)
        meter()
        agg.settle()
        meter()
        now = time.time()
        started = self.started_at or agg.started_at
        ended = (self.stopped_at or now) if final else now
        sections: dict[str, Any] = {}
        warnings: list[str] = []
        for source in self.sources:
            more, said = source(started)
            sections.update(more)
            warnings.extend(said)
        run = self._run_block(environment, rt, started, ended, final)
        run.update(sections.pop("run", {}))
        if rt.steady is not None:  # the window as the master sees it: from its own start
            window = replace(rt.steady, started_at=started)
            run.update(window.run_block(ended))
            warnings.extend(window.warnings())
        return write_run(
            self.run_dir,
            agg,
            run,
            warnings,
            pause=meter,
            sections=sections,
            slo=rt.slo.objectives if rt.slo is not None else (),
        )

    def _run_block(
        self, environment: Any, rt: LoadgenRuntime, started: float, ended: float, final: bool
    ) -> dict[str, Any]:
        runner = environment.runner
        run = dict(self.meta)
        run.update(
            started_at=started,
            ended_at=ended,
            duration_s=round(max(0.0, ended - started), 3),
            users=getattr(runner, "target_user_count", None) or getattr(runner, "user_count", None),
            processes=1,
            complete=final,
            checkpoints=self.stats.to_json(),
            intervals=rt.aggregator.intervals_closed if rt.aggregator is not None else 0,
        )
        return run

    def close(self) -> None:
        if self.interval_log is not None:
            self.interval_log.close()
            self.interval_log = None
