"""A set of histograms and counters keyed by series; the unit of recording, shipping and merging."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from loadgen.metrics.histograms import TrackedHistogram
from loadgen.metrics.keys import SeriesKey

WIRE_VERSION = 1
#: How many histograms a merge or an encoding handles between two calls of its ``pause`` callback.
PAUSE_EVERY = 8

#: Called between groups of histograms in a long merge or encoding (e.g. ``gevent.sleep(0)``), so that a
#: recorder running beside it is never held up for the whole of it.
Pause = Callable[[], None]


class MetricsBatch:
    """Histograms (``SeriesKey`` -> :class:`TrackedHistogram`) and counters (``SeriesKey`` -> number).

    Counter metrics used by the project: ``count`` (turns), ``failures`` (all failed turns, equal to
    Locust's failures), ``failures.transport``, ``failures.retention``, ``retention.checked``,
    ``retention.passed``, ``output_tokens``, ``prompt_tokens``, and ``reason:<kind>:<text>`` per failure reason.
    """

    def __init__(self) -> None:
        self.histograms: dict[SeriesKey, TrackedHistogram] = {}
        self.counters: Counter[SeriesKey] = Counter()
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

    def incr(self, key: SeriesKey, amount: float = 1) -> None:
        self.counters[key] += amount  # type: ignore[assignment]

    def is_empty(self) -> bool:
        return not self.counters and all(h.count == 0 for h in self.histograms.values())

    def reset(self) -> None:
        self.histograms.clear()
        self.counters.clear()
        self.handles.clear()

    def empty_in_place(self) -> None:
        """Zero every histogram and drop the counters, keeping the histograms (and handles to them):
        cheaper than new histograms on every report, which allocate and zero all their counters."""
        for hist in self.histograms.values():
            hist.reset()
        self.counters.clear()

    # --- exact merge -----------------------------------------------------------------------------------
    def to_wire(self, *, pause: Pause | None = None) -> dict[str, Any]:
        """A JSON/msgpack-safe form: HDR histograms base64-encoded (compressed), counters as numbers."""
        encoded: dict[str, list[Any]] = {}
        for i, (k, h) in enumerate(self.histograms.items(), 1):
            if h.count:
                encoded[k.encode()] = [h.encode(), h.above_range, h.below_range, h.value_sum]
            if pause is not None and i % PAUSE_EVERY == 0:
                pause()
        return {"v": WIRE_VERSION, "h": encoded, "c": {k.encode(): v for k, v in self.counters.items()}}

    def merge_wire(self, data: dict[str, Any]) -> None:
        if data.get("v") != WIRE_VERSION:
            raise ValueError(f"metrics wire version {data.get('v')!r} is not {WIRE_VERSION}: mixed versions?")
        for key_text, entry in data["h"].items():
            encoded, above, below = entry[0], entry[1], entry[2]
            value_sum = int(entry[3]) if len(entry) > 3 else 0
            self.histogram(SeriesKey.decode(key_text)).add_encoded(encoded, int(above), int(below), value_sum)
        for key_text, value in data["c"].items():
            self.counters[SeriesKey.decode(key_text)] += value

    def merge(self, other: MetricsBatch, *, dialogue: str | None = None, pause: Pause | None = None) -> None:
        """Add another batch exactly, in place (no encoding); with ``dialogue``, only that dialogue's series."""
        for i, (key, hist) in enumerate(other.histograms.items(), 1):
            if hist.count and (dialogue is None or key.dialogue == dialogue):
                self.histogram(key).add(hist)
            if pause is not None and i % PAUSE_EVERY == 0:
                pause()
        for key, value in other.counters.items():
            if dialogue is None or key.dialogue == dialogue:
                self.counters[key] += value

    def take(self) -> MetricsBatch:
        """Move everything into a new batch and leave this one empty (what a worker ships each report)."""
        out = MetricsBatch()
        out.histograms, self.histograms = self.histograms, {}
        out.counters, self.counters = self.counters, Counter()
        self.handles = {}
        return out
