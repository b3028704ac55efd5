"""A set of histograms and counters keyed by series; the unit of recording, shipping and merging.

Counters are typed as what they hold: :attr:`MetricsBatch.counts` the integer ones (:class:`~loadgen.metrics.keys.Count`
and :class:`~loadgen.metrics.keys.FailureReason` names), :attr:`MetricsBatch.totals` the sums that may hold
fractions (:class:`~loadgen.metrics.keys.Total`). On the wire both are one map of counter name -> number, as
run folders have always held them; :func:`~loadgen.metrics.keys.is_total` sorts them back on reading.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from loadgen.metrics.histograms import TrackedHistogram
from loadgen.metrics.keys import SeriesKey, is_total

WIRE_VERSION = 1
#: How many histograms a merge or an encoding handles between two calls of its ``pause`` callback (an add or an
#: encoding of a latency histogram takes ~0.1-0.3 ms).
PAUSE_EVERY = 2

#: Called between groups of histograms in a long merge or encoding (e.g. ``gevent.sleep(0)``), so that a
#: recorder running beside it is never held up for the whole of it.
Pause = Callable[[], None]


class MetricsBatch:
    """Histograms (``SeriesKey`` -> :class:`TrackedHistogram`), integer counts and fractional totals (see the
    module doc and :mod:`loadgen.metrics.keys` for the names)."""

    def __init__(self) -> None:
        self.histograms: dict[SeriesKey, TrackedHistogram] = {}
        self.counts: Counter[SeriesKey] = Counter()
        self.totals: defaultdict[SeriesKey, float] = defaultdict(float)
        #: Per-series handles a recorder caches (direct histogram references, prebuilt keys): valid while
        #: the histograms are; dropped by :meth:`reset` and :meth:`take`, kept by :meth:`empty_in_place`.
        self.handles: dict[object, Any] = {}

    def histogram(self, key: SeriesKey) -> TrackedHistogram:
        hist = self.histograms.get(key)
        if hist is None:
            hist = self.histograms[key] = TrackedHistogram(key.metric)
        return hist

    def record(self, key: SeriesKey, value: int, count: int = 1) -> None:
        self.histogram(key).record(value, count)

    def counter(self, key: SeriesKey) -> float:
        """The value of a count or a total (0 when never counted)."""
        return self.totals.get(key, 0.0) if is_total(key.metric) else self.counts.get(key, 0)

    def series_keys(self) -> Iterator[SeriesKey]:
        """The key of every histogram and counter (a key may come more than once)."""
        yield from self.histograms
        yield from self.counts
        yield from self.totals

    def is_empty(self) -> bool:
        return not self.counts and not self.totals and all(h.count == 0 for h in self.histograms.values())

    def reset(self) -> None:
        self.histograms.clear()
        self._clear_counters()
        self.handles.clear()

    def _clear_counters(self) -> None:
        self.counts.clear()
        self.totals.clear()

    def empty_in_place(self) -> None:
        """Zero every histogram and drop the counters, keeping the histograms (and handles to them):
        cheaper than new histograms on every report, which allocate and zero all their counters."""
        for hist in self.histograms.values():
            hist.reset()
        self._clear_counters()

    # --- exact merge -----------------------------------------------------------------------------------
    def to_wire(self, *, pause: Pause | None = None) -> dict[str, Any]:
        """A JSON/msgpack-safe form: HDR histograms base64-encoded (compressed), counters as numbers."""
        encoded: dict[str, list[Any]] = {}
        for i, (k, h) in enumerate(self.histograms.items(), 1):
            if h.count:
                encoded[k.encode()] = [h.encode(), h.above_range, h.below_range, h.value_sum]
            if pause is not None and i % PAUSE_EVERY == 0:
                pause()
        counters: dict[str, float] = {k.encode(): v for k, v in self.counts.items()}
        counters.update((k.encode(), v) for k, v in self.totals.items())
        return {"v": WIRE_VERSION, "h": encoded, "c": counters}

    def merge_wire(self, data: dict[str, Any]) -> None:
        if data.get("v") != WIRE_VERSION:
            raise ValueError(f"metrics wire version {data.get('v')!r} is not {WIRE_VERSION}: mixed versions?")
        for key_text, entry in data["h"].items():
            encoded, above, below = entry[0], entry[1], entry[2]
            value_sum = int(entry[3]) if len(entry) > 3 else 0
            self.histogram(SeriesKey.decode(key_text)).add_encoded(encoded, int(above), int(below), value_sum)
        for key_text, value in data["c"].items():
            key = SeriesKey.decode(key_text)
            if is_total(key.metric):
                self.totals[key] += float(value)
            else:
                self.counts[key] += int(value)

    def merge(self, other: MetricsBatch, *, dialogue: str | None = None, pause: Pause | None = None) -> None:
        """Add another batch exactly, in place (no encoding); with ``dialogue``, only that dialogue's series."""
        for i, (key, hist) in enumerate(other.histograms.items(), 1):
            if hist.count and (dialogue is None or key.dialogue == dialogue):
                self.histogram(key).add(hist)
            if pause is not None and i % PAUSE_EVERY == 0:
                pause()
        for key, count in other.counts.items():
            if dialogue is None or key.dialogue == dialogue:
                self.counts[key] += count
        for key, total in other.totals.items():
            if dialogue is None or key.dialogue == dialogue:
                self.totals[key] += total

    def take(self) -> MetricsBatch:
        """Move everything into a new batch and leave this one empty (what a worker ships each report)."""
        out = MetricsBatch()
        out.histograms, self.histograms = self.histograms, {}
        out.counts, self.counts = self.counts, Counter()
        out.totals, self.totals = self.totals, defaultdict(float)
        self.handles = {}
        return out
