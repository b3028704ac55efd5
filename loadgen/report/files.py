"""Write a run's report files into its folder: ``turns.csv``, ``*.hlog`` and ``report.html``."""

from __future__ import annotations

import os
from pathlib import Path

from loadgen.report.csvout import turns_csv
from loadgen.report.hlog import hlog_series, render_hlogs
from loadgen.report.html import render_report
from loadgen.report.rundata import RunData, load_run

TURNS_CSV = "turns.csv"
REPORT_HTML = "report.html"


def write_text(path: Path, text: str) -> Path:
    """Write atomically (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path


def write_reports(run_dir: Path | str, *, html: bool = True, data: RunData | None = None) -> list[Path]:
    """(Re)generate every report file of a finished run folder; returns the files written."""
    data = data or load_run(run_dir)
    out = data.run_dir
    written = [write_text(out / TURNS_CSV, turns_csv(data.summary))]
    if data.has_intervals():
        series = hlog_series(data)
        for (name, _), text in zip(series, render_hlogs(data, [key for _, key in series]), strict=True):
            written.append(write_text(out / name, text))
    if html:
        written.append(write_text(out / REPORT_HTML, render_report(data)))
    return written
