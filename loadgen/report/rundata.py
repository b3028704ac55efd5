"""A finished run folder loaded back: the summary, every HDR histogram, and the interval snapshots.

Also the small vocabulary reports share: which transports a run has, and one histogram (or counter sum)
for a *scope* (transport x dialogue x turn, each optional), merged exactly from the saved histograms.

Interval snapshots are read from ``intervals.jsonl`` (one JSON object per interval, appended as the run goes)
or, in a folder written by an earlier version, ``intervals.json`` (one document with an ``intervals`` list).
They are streamed (:meth:`RunData.iter_raw_intervals`), never all decoded at once: an 8-hour run has thousands.
A last ``intervals.jsonl`` line cut short (a crash in the middle of an append) is left out; a bad line
anywhere else is a :class:`ConfigError` naming the file and line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen.errors import ConfigError
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.histograms import Metric, TrackedHistogram
from loadgen.metrics.keys import ALL, CONTEXT_BUCKET_ORDER, Count, SeriesKey, Total, is_total
from loadgen.metrics.rundir import HISTOGRAMS_FILE, SUMMARY_FILE
from loadgen.metrics.summary import figures_duration_s

__all__ = [
    "CONTEXT_BUCKET_ORDER",
    "INTERVAL_FILES",
    "LATENCY_METRICS",
    "Interval",
    "RunData",
    "load_batch",
    "load_run",
]
#: The latency metrics (microsecond histograms) a report and a threshold can name.
LATENCY_METRICS: tuple[str, ...] = (
    Metric.E2E,
    Metric.TTFT,
    Metric.ITL,
    Metric.TPOT,
    Metric.E2E_FROM_INTENDED,
    Metric.SCHEDULE_LAG,
)
INTERVALS_JSONL = "intervals.jsonl"
LEGACY_INTERVALS = "intervals.json"
#: The interval files a run folder may hold, the one read first first.
INTERVAL_FILES: tuple[str, ...] = (INTERVALS_JSONL, LEGACY_INTERVALS)


@dataclass(frozen=True)
class Interval:
    start: float  # unix seconds
    end: float
    batch: MetricsBatch  # the aggregate series (dialogue "*") recorded in [start, end)

    @property
    def length_s(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass
class RunData:
    run_dir: Path
    summary: dict[str, Any]
    batch: MetricsBatch
    started_at: float | None = None
    #: where the interval snapshots are (None: the folder has none); read on demand
    interval_path: Path | None = None
    _legacy_items: list[dict[str, Any]] | None = field(default=None, repr=False)
    _intervals: list[Interval] | None = field(default=None, repr=False)

    @property
    def run_id(self) -> str:
        return str(self.summary.get("run", {}).get("id") or self.run_dir.name)

    @property
    def duration_s(self) -> float:
        """The seconds rates are over: the steady state's (the run less its warm-up and cool-down) when recorded."""
        return figures_duration_s(self.summary.get("run", {}))

    def transports(self) -> list[str]:
        """Transports with data, in a stable order."""
        names = {k.transport for k in self.batch.series_keys() if k.transport != ALL}
        names.update(self.summary.get("transports", {}))
        return sorted(names)

    def turn_keys(self) -> list[tuple[str, str, int]]:
        """(transport, dialogue, turn) of every per-turn series, sorted."""
        keys = {k.turn_key() for k in self.batch.series_keys()}
        return sorted(k for k in keys if k[0] != ALL and k[1] != ALL)

    # --- intervals ----------------------------------------------------------------------------------------
    def iter_raw_intervals(self) -> Iterator[dict[str, Any]]:
        """Each interval as saved (``start``, ``end``, ``v``, ``h``, ``c``), in order, one at a time."""
        if self._legacy_items is not None:
            yield from self._legacy_items
        elif self.interval_path is not None:
            yield from _jsonl_items(self.interval_path)

    def iter_intervals(self) -> Iterator[Interval]:
        """Each interval decoded whole (every series), one at a time."""
        where = str(self.interval_path)
        for i, item in enumerate(self.iter_raw_intervals()):
            yield decode_interval(item, f"{where} interval {i}")

    @property
    def intervals(self) -> list[Interval]:
        """Every interval decoded, kept (a short run's; long runs stream with :meth:`iter_intervals`)."""
        if self._intervals is None:
            self._intervals = list(self.iter_intervals())
        return self._intervals

    def has_intervals(self) -> bool:
        return next(self.iter_raw_intervals(), None) is not None

    def time_origin(self) -> float:
        """The run's start (unix seconds): x = 0 of the over-time plots and the hlog base time."""
        if self.started_at is not None:
            return float(self.started_at)
        first = next(self.iter_raw_intervals(), None)
        return float(first["start"]) if first is not None else 0.0

    # --- scopes -----------------------------------------------------------------------------------------
    def _matching(
        self, keys: Iterable[SeriesKey], metric: str, transport: str | None, dialogue: str | None, turn: int | None
    ) -> list[SeriesKey]:
        out = []
        aggregate = dialogue is None and turn is None
        for key in keys:
            if key.metric != metric or key.transport == ALL:
                continue
            if transport is not None and key.transport != transport:
                continue
            if aggregate:
                if key.dialogue == ALL and key.turn == 0:
                    out.append(key)
                continue
            if key.dialogue == ALL:
                continue
            if dialogue is not None and key.dialogue != dialogue:
                continue
            if turn is not None and key.turn != turn:
                continue
            out.append(key)
        return sorted(out)

    def histogram(
        self, metric: str, transport: str | None = None, dialogue: str | None = None, turn: int | None = None
    ) -> TrackedHistogram:
        """One histogram of ``metric`` over a scope, merged exactly.

        No dialogue and no turn: the per-transport aggregate series (all transports merged when ``transport``
        is None). Otherwise the per-turn series that match, merged (e.g. turn 5 of every dialogue).
        """
        if metric == Metric.GENERATOR_LAG:
            found = self.batch.histograms.get(SeriesKey(ALL, ALL, 0, metric))
            out = TrackedHistogram(metric)
            if found is not None:
                out.add(found)
            return out
        keys = self._matching(self.batch.histograms, metric, transport, dialogue, turn)
        out = TrackedHistogram(metric)
        for key in keys:
            out.add(self.batch.histograms[key])
        return out

    def counter(
        self, name: Count | Total, transport: str | None = None, dialogue: str | None = None, turn: int | None = None
    ) -> float:
        counters = self.batch.totals if is_total(name) else self.batch.counts
        keys = self._matching(counters, name, transport, dialogue, turn)
        return float(sum(counters[k] for k in keys))

    def has_scope(self, transport: str | None, dialogue: str | None, turn: int | None) -> bool:
        return bool(self._matching(self.batch.counts, Count.TURNS, transport, dialogue, turn))


def _read_json(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; is {path.parent} a finished chat-loadgen run folder?") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from exc


def _jsonl_items(path: Path) -> Iterator[dict[str, Any]]:
    """The interval objects of an ``intervals.jsonl`` file; lines without ``start`` (a header) are skipped."""
    bad: tuple[int, str] | None = None
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            if bad is not None:  # a bad line that was not the last one
                raise ConfigError(f"{path}, line {bad[0]}: not valid JSON ({bad[1]})")
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                bad = (lineno, str(exc))
                continue
            if isinstance(item, dict) and "start" in item and "end" in item:
                yield item


def _jsonl_header(path: Path) -> dict[str, Any]:
    """A first line that is not an interval (e.g. ``{"started_at": ...}``), or {}."""
    with path.open(encoding="utf-8") as fh:
        first = fh.readline()
    try:
        item = json.loads(first) if first.strip() else {}
    except json.JSONDecodeError:
        return {}
    return item if isinstance(item, dict) and "start" not in item else {}


def load_batch(wire: dict[str, Any], where: str) -> MetricsBatch:
    batch = MetricsBatch()
    try:
        batch.merge_wire(wire)
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: cannot read its histograms ({exc})") from exc
    return batch


def decode_interval(item: dict[str, Any], where: str) -> Interval:
    wire = {"v": item.get("v"), "h": item.get("h", {}), "c": item.get("c", {})}
    return Interval(float(item["start"]), float(item["end"]), load_batch(wire, where))


def load_run(run_dir: Path | str, *, need_intervals: bool = True) -> RunData:
    """Read ``summary.json`` and ``histograms.json`` of a run folder, and find its interval snapshots
    (``intervals.jsonl``, or ``intervals.json`` in an older folder), which are read when used."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: not a folder; give a run folder such as reports/<run-id>")
    summary = _read_json(run_dir / SUMMARY_FILE)
    if not isinstance(summary, dict) or "turns" not in summary:
        raise ConfigError(f"{run_dir / SUMMARY_FILE}: not a chat-loadgen summary (no 'turns')")
    hist_path = run_dir / HISTOGRAMS_FILE
    batch = load_batch(_read_json(hist_path), str(hist_path))
    data = RunData(run_dir=run_dir, summary=summary, batch=batch, started_at=summary.get("run", {}).get("started_at"))
    if not need_intervals:
        return data
    jsonl, legacy = run_dir / INTERVALS_JSONL, run_dir / LEGACY_INTERVALS
    if jsonl.exists():
        data.interval_path = jsonl
        header = _jsonl_header(jsonl)
        if data.started_at is None and header.get("started_at") is not None:
            data.started_at = float(header["started_at"])
    elif legacy.exists():
        old = _read_json(legacy)
        data.interval_path = legacy
        data._legacy_items = list(old.get("intervals", []))
        data.started_at = old.get("started_at", data.started_at)
    return data
