"""The run folder ``reports/<run-id>/``: everything a report needs, written atomically.

- ``summary.json``: see :mod:`loadgen.metrics.summary`.
- ``histograms.json``: every series' HDR histogram (base64 compressed HdrHistogram encoding) and counters,
  so reports and merges can be redone offline exactly.
- ``intervals.json``: interval snapshots of the per-transport aggregate series (latency over time).
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
from loadgen.metrics.aggregator import RunAggregator
from loadgen.metrics.batch import Pause
from loadgen.metrics.summary import build_summary

SUMMARY_FILE = "summary.json"
HISTOGRAMS_FILE = "histograms.json"
INTERVALS_FILE = "intervals.json"
_RUN_ID_OK = re.compile(r"^[A-Za-z0-9._-]+$")


def new_run_id(label: str = "") -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    suffix = secrets.token_hex(2)
    return f"{stamp}-{label}-{suffix}" if label else f"{stamp}-{suffix}"


def check_run_id(run_id: str, *, what: str = "run id") -> str:
    """``run_id`` if it can name a folder; :class:`ConfigError` (naming ``what``, e.g. the option) if not."""
    if not _RUN_ID_OK.match(run_id):
        raise ConfigError(f"{what} {run_id!r}: use letters, digits, '.', '_' and '-' only")
    return run_id


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=False)
        fh.write("\n")
    os.replace(tmp, path)


def write_run(
    run_dir: Path,
    aggregator: RunAggregator,
    run: dict[str, Any],
    warnings: list[str] | None = None,
    *,
    pause: Pause | None = None,
) -> dict[str, Any]:
    """Write the run folder from the aggregator, held still meanwhile (merges wait); ``pause`` is called
    between groups of series, for a checkpoint written while users run."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with aggregator.held():
        summary = build_summary(aggregator.total, run, warnings, pause=pause)
        histograms = {"schema_version": 1, "unit": "us", **aggregator.total.to_wire(pause=pause)}
        intervals = {
            "schema_version": 1,
            "unit": "us",
            "interval_s": aggregator.interval_s,
            "started_at": aggregator.started_at,
            "intervals": [{"start": i.start, "end": i.end, **i.wire} for i in aggregator.intervals],
        }
    _write_json(run_dir / HISTOGRAMS_FILE, histograms)
    _write_json(run_dir / INTERVALS_FILE, intervals)
    _write_json(run_dir / SUMMARY_FILE, summary)
    return summary


def load_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)
