"""The run folder ``reports/<run-id>/``: everything a report needs, written as the run goes.

- ``intervals.jsonl``: one JSON line per interval of the per-transport aggregate series (latency over time),
  appended when the interval closes (:class:`IntervalLog`): ``{"start", "end", "v", "h", "c"}`` as a
  :class:`~loadgen.metrics.batch.MetricsBatch` wire form, unix seconds. Folders of earlier versions hold
  ``intervals.json`` instead (``{"intervals": [...]}``, the same entries).
- ``summary.json``: see :mod:`loadgen.metrics.summary`; ``histograms.json``: every series' HDR histogram (base64
  compressed HdrHistogram encoding) and counters, so reports and merges can be redone offline exactly. Both are
  rewritten whole, atomically (a temporary file renamed over the old one), at each checkpoint (:func:`write_run`)
  and at the end; their size does not grow with the run's length, so neither does a checkpoint's cost.

A run killed without warning (``kill -9``) leaves the last checkpoint's summary and histograms and every interval
closed before it: it loses at most the seconds since the last checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

from loadgen.errors import ConfigError
from loadgen.load.slo import Objective
from loadgen.metrics.aggregator import IntervalSnapshot, RunAggregator
from loadgen.metrics.batch import Pause
from loadgen.metrics.summary import build_summary, cut_off_turns

SUMMARY_FILE = "summary.json"
HISTOGRAMS_FILE = "histograms.json"
INTERVALS_LOG = "intervals.jsonl"
INTERVALS_FILE = "intervals.json"  # run folders of earlier versions
_RUN_ID_OK = re.compile(r"^[A-Za-z0-9._-]+$")


def new_run_id(label: str = "") -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    suffix = secrets.token_hex(2)
    return f"{stamp}-{label}-{suffix}" if label else f"{stamp}-{suffix}"


def check_run_id(run_id: str, *, what: str = "run id") -> str:
    """``run_id`` if it can name a folder; :class:`ConfigError` (naming ``what``, e.g. the option) if not."""
    if not _RUN_ID_OK.fullmatch(run_id):  # match() would let "$" pass a trailing newline
        raise ConfigError(f"{what} {run_id!r}: use letters, digits, '.', '_' and '-' only")
    return run_id


def _write_json(path: Path, data: Any, *, indent: int | None = 1) -> None:
    # json.dumps without indent runs in C; with it, in Python (readable, for the small summary only)
    text = json.dumps(data, indent=indent, separators=None if indent else (",", ":"))
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.write("\n")
    os.replace(tmp, path)


class IntervalLog:
    """``intervals.jsonl``, appended one whole line per interval (one ``write`` call: a process killed meanwhile
    leaves whole lines). ``fresh``: start the file empty (a new run in a folder that had one)."""

    def __init__(self, run_dir: Path, *, fresh: bool = True) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / INTERVALS_LOG
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if fresh else 0)
        self._fd: int | None = os.open(self.path, flags, 0o644)
        self.lines = 0

    def __call__(self, snapshot: IntervalSnapshot) -> None:
        if self._fd is None:
            return
        line = json.dumps(snapshot.to_json(), separators=(",", ":")) + "\n"
        os.write(self._fd, line.encode("utf-8"))
        self.lines += 1

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def write_run(
    run_dir: Path,
    aggregator: RunAggregator,
    run: dict[str, Any],
    warnings: list[str] | None = None,
    *,
    pause: Pause | None = None,
    sections: dict[str, Any] | None = None,
    slo: tuple[Objective, ...] = (),
) -> dict[str, Any]:
    """Write ``summary.json`` and ``histograms.json`` from the aggregator, held still meanwhile (merges wait);
    ``pause`` is called between groups of series, for a checkpoint written while users run. ``sections`` (faults,
    workers) join the aggregator's own (windows, drift, outages, recovery). Intervals the aggregator kept itself
    (no ``on_interval`` sink: tests, offline use) are written to ``intervals.jsonl`` too. ``slo``: the run's
    ``--slo`` objectives (:func:`~loadgen.metrics.summary.build_summary`)."""
    run_dir.mkdir(parents=True, exist_ok=True)

    def step() -> None:
        if pause is not None:
            pause()

    with aggregator.held():
        own, more_warnings = aggregator.sections()
        step()
        run = {**run, "cut_off_turns": cut_off_turns(aggregator.total)}
        all_warnings = [*(warnings or []), *more_warnings]
        summary = build_summary(
            aggregator.total, run, all_warnings, pause=pause, sections={**own, **(sections or {})}, slo=slo
        )
        histograms = {"schema_version": 1, "unit": "us", **aggregator.total.to_wire(pause=pause)}
        kept = [i.to_json() for i in aggregator.intervals]
    _write_json(run_dir / HISTOGRAMS_FILE, histograms, indent=None)
    if kept:
        text = "".join(json.dumps(i, separators=(",", ":")) + "\n" for i in kept)
        (run_dir / INTERVALS_LOG).write_text(text, encoding="utf-8")
    _write_json(run_dir / SUMMARY_FILE, summary)
    return summary


def load_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)
