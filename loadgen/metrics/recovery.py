"""The run's outages, kept at a cost that does not grow with the run: :class:`OutageTracker`.

The process that writes the report merges every process's outage events (:mod:`loadgen.metrics.outages`) into
one tracker. Events arrive late (a worker reports every few seconds, a turn may run up to its time-out), so an
outage is final only once nothing that can still arrive could change it: :meth:`OutageTracker.settle` (called at
each checkpoint) moves such outages out of the events into a short record, and drops the events they were made
of. Events that arrive at most ``horizon_s`` after they happened (a turn's time-out plus a report interval) give
exactly the outages :func:`~loadgen.metrics.outages.find_outages` finds over all of them at once.

Two more bounds keep a bad night cheap: a target down for hours fails every turn, and those failures (done before
``now - horizon_s`` with no success since the outage began) belong to the open outage whatever happens next, so
they are folded into its count and user set (:class:`~loadgen.metrics.outages.Prefix`); a flapping target makes
many short outages, of which the first :data:`MAX_LISTED` per transport are listed in summary.json and all are
counted in ``recovery`` (the count, the maximum and the median recovery time, from a histogram).

summary.json: ``outages`` (each :meth:`~loadgen.metrics.outages.Outage.to_json`) and ``recovery``: per transport
``{"outages": n, "max_s": x | null, "p50_s": x | null}`` over the outages that ended (a still-open one has no
recovery time).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from loadgen.metrics.histograms import Metric, TrackedHistogram
from loadgen.metrics.outages import Outage, OutageEvents, Prefix, TransportEvents, scan_outages, sorted_failures

#: Outages listed per transport in summary.json (all are counted in ``recovery``).
MAX_LISTED = 500


@dataclass
class _Settled:
    listed: list[Outage] = field(default_factory=list)
    count: int = 0
    ended: int = 0  # with a recovery time
    max_recovery_s: float | None = None
    recovery_us: TrackedHistogram = field(default_factory=lambda: TrackedHistogram(Metric.E2E))

    def add(self, outage: Outage) -> None:
        self.count += 1
        if len(self.listed) < MAX_LISTED:
            self.listed.append(outage)
        if outage.recovery_s is not None:
            self.ended += 1
            self.recovery_us.record(round(outage.recovery_s * 1_000_000))
            self.max_recovery_s = max(self.max_recovery_s or 0.0, outage.recovery_s)


class OutageTracker:
    """Every process's outage events, merged; outages settled as they age (see the module doc)."""

    def __init__(self, horizon_s: float) -> None:
        self.horizon_s = horizon_s
        self.events = OutageEvents()
        self._prefix: dict[str, Prefix] = {}
        self._longest: dict[str, float] = {}
        self._settled: dict[str, _Settled] = {}

    def merge_wire(self, data: dict[str, Any]) -> None:
        self.events.merge_wire(data)

    def is_empty(self) -> bool:
        return not self._settled and not self._prefix and all(e.is_empty() for e in self.events.by_transport.values())

    def settle(self, now: float) -> None:
        """Move the outages nothing can change any more out of the events (see the module doc)."""
        before = now - self.horizon_s
        for name, events in self.events.by_transport.items():
            self._settle_one(name, events, before)

    def _settle_one(self, name: str, events: TransportEvents, before: float) -> None:
        longest = max([self._longest.get(name, 0.0), *(done - sent for sent, done, _ in events.failures)])
        self._longest[name] = longest
        found = scan_outages(name, events, prefix=self._prefix.get(name), longest=longest)
        failures = sorted_failures(events)
        done_with: set[int] = set()
        last_settled: float | None = None
        for f in found:
            if f.outage.end_s is None or f.settles_at >= before:
                break
            self._settled.setdefault(name, _Settled()).add(f.outage)
            done_with.update(f.taken)
            self._prefix.pop(name, None)
            last_settled = f.settles_at
        remaining = [e for j, e in enumerate(failures) if j not in done_with]
        # comebacks at or before the start of the first outage left are never read again (an outage looks after
        # its start)
        prefix = self._prefix.get(name)
        starts = ([prefix.start] if prefix is not None else []) + ([remaining[0][1]] if remaining else [])
        cut = min(starts) if starts else last_settled
        comebacks = sorted(events.comebacks, key=lambda e: e[1])
        if cut is not None:
            comebacks = comebacks[bisect.bisect_right([c[1] for c in comebacks], cut) :]
        events.failures, events.comebacks = remaining, comebacks
        self._fold_open(name, events, before)

    def _fold_open(self, name: str, events: TransportEvents, before: float) -> None:
        """Failures done before ``before`` with no success since the first open outage began are in that outage
        whatever comes later: keep only their count and users."""
        if not events.failures:
            return
        prefix = self._prefix.get(name)
        start = prefix.start if prefix is not None else events.failures[0][1]
        back = min((c[1] for c in events.comebacks if c[1] > start), default=float("inf"))
        until = min(before, back)
        folded = [e for e in events.failures if e[1] <= until]
        if not folded:
            return
        users = frozenset(e[2] for e in folded)
        if prefix is not None:
            self._prefix[name] = Prefix(start, prefix.failed_turns + len(folded), prefix.users | users)
        else:
            self._prefix[name] = Prefix(start, len(folded), users)
        events.failures = [e for e in events.failures if e[1] > until]
        events.comebacks = [c for c in events.comebacks if c[1] > start]

    def outages(self) -> dict[str, list[Outage]]:
        """Per transport: the settled outages listed, then those still open to change."""
        out: dict[str, list[Outage]] = {}
        names = sorted(set(self.events.by_transport) | set(self._settled) | set(self._prefix))
        for name in names:
            settled = self._settled.get(name)
            listed = list(settled.listed) if settled is not None else []
            found = scan_outages(
                name, self.events.of(name), prefix=self._prefix.get(name), longest=self._longest.get(name, 0.0)
            )
            listed.extend(f.outage for f in found)
            if listed:
                out[name] = listed
        return out

    def to_json(self, run_started_at: float) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
        """(``outages``, ``recovery``, warnings) for summary.json; times from ``run_started_at``."""
        outages: list[dict[str, Any]] = []
        recovery: dict[str, Any] = {}
        warnings: list[str] = []
        for name, listed in self.outages().items():
            settled = self._settled.get(name) or _Settled()
            pending = listed[len(settled.listed) :]
            stats = _Settled(count=settled.count, ended=settled.ended, max_recovery_s=settled.max_recovery_s)
            stats.recovery_us.add(settled.recovery_us)
            for outage in pending:
                stats.add(outage)
            shown = listed[:MAX_LISTED]
            outages.extend(o.to_json(run_started_at) for o in shown)
            if stats.count > len(shown):
                warnings.append(f"{name}: {stats.count} outages, the first {len(shown)} listed in summary.json")
            p50 = stats.recovery_us.quantiles([0.5])[0.5] / 1e6 if stats.ended else None
            recovery[name] = {
                "outages": stats.count,
                "max_s": None if stats.max_recovery_s is None else round(stats.max_recovery_s, 3),
                "p50_s": None if p50 is None else round(p50, 3),
            }
        outages.sort(key=lambda o: (o["start_s"], o["transport"]))
        return outages, recovery, warnings


__all__ = ["MAX_LISTED", "OutageTracker"]
