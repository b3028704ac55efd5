"""A finished run folder loaded back: the summary, every HDR histogram, and the interval snapshots.

Also the small vocabulary reports share: which transports a run has, and one histogram (or counter sum)
for a *scope* (transport x dialogue x turn, each optional), merged exactly from the saved histograms.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen.errors import ConfigError
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.histograms import Metric, TrackedHistogram
from loadgen.metrics.keys import ALL, CONTEXT_BUCKET_ORDER, Count, SeriesKey, Total, is_total
from loadgen.metrics.rundir import HISTOGRAMS_FILE, INTERVALS_FILE, INTERVALS_LOG, SUMMARY_FILE

__all__ = ["CONTEXT_BUCKET_ORDER", "LATENCY_METRICS", "Interval", "RunData", "load_batch", "load_run"]
#: The latency metrics (microsecond histograms) a report and a threshold can name.
LATENCY_METRICS: tuple[str, ...] = (Metric.E2E, Metric.TTFT, Metric.ITL, Metric.SCHEDULE_LAG)


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
    intervals: list[Interval] = field(default_factory=list)
    started_at: float | None = None

    @property
    def run_id(self) -> str:
        return str(self.summary.get("run", {}).get("id") or self.run_dir.name)

    @property
    def duration_s(self) -> float:
        return float(self.summary.get("run", {}).get("duration_s") or 0.0)

    def transports(self) -> list[str]:
        """Transports with data, in a stable order."""
        names = {k.transport for k in self.batch.series_keys() if k.transport != ALL}
        names.update(self.summary.get("transports", {}))
        return sorted(names)

    def turn_keys(self) -> list[tuple[str, str, int]]:
        """(transport, dialogue, turn) of every per-turn series, sorted."""
        keys = {k.turn_key() for k in self.batch.series_keys()}
        return sorted(k for k in keys if k[0] != ALL and k[1] != ALL)

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


def _read_lines(path: Path) -> list[dict[str, Any]]:
    """``intervals.jsonl``: one object a line; a last line cut short (a killed run) is left out."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for n, line in enumerate(lines, 1):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if n == len(lines):
                break
            raise ConfigError(f"{path}:{n}: not valid JSON ({exc})") from exc
    return out


def load_batch(wire: dict[str, Any], where: str) -> MetricsBatch:
    batch = MetricsBatch()
    try:
        batch.merge_wire(wire)
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: cannot read its histograms ({exc})") from exc
    return batch


def load_run(run_dir: Path | str, *, need_intervals: bool = True) -> RunData:
    """Read ``summary.json``, ``histograms.json`` and (when present) ``intervals.jsonl``, or the ``intervals.json``
    of an older folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: not a folder; give a run folder such as reports/<run-id>")
    summary = _read_json(run_dir / SUMMARY_FILE)
    if not isinstance(summary, dict) or "turns" not in summary:
        raise ConfigError(f"{run_dir / SUMMARY_FILE}: not a chat-loadgen summary (no 'turns')")
    hist_path = run_dir / HISTOGRAMS_FILE
    batch = load_batch(_read_json(hist_path), str(hist_path))
    intervals: list[Interval] = []
    started_at: float | None = summary.get("run", {}).get("started_at")
    int_path = run_dir / INTERVALS_FILE
    log_path = run_dir / INTERVALS_LOG
    items: list[dict[str, Any]] = []
    if need_intervals and log_path.exists():
        items, int_path = _read_lines(log_path), log_path
    elif need_intervals and int_path.exists():
        data = _read_json(int_path)
        started_at = data.get("started_at", started_at)
        items = data.get("intervals", [])
    for i, item in enumerate(items):
        wire = {"v": item.get("v"), "h": item.get("h", {}), "c": item.get("c", {})}
        intervals.append(
            Interval(float(item["start"]), float(item["end"]), load_batch(wire, f"{int_path} interval {i}"))
        )
    return RunData(run_dir=run_dir, summary=summary, batch=batch, intervals=intervals, started_at=started_at)
