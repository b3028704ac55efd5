"""``loadgen report RUN_DIR``: regenerate a finished run's report files offline and print its table.

Writes ``turns.csv``, one ``.hlog`` per transport x latency metric and ``report.html`` into the run folder
(or ``--out DIR``), prints the per-turn table, and checks thresholds when given (exit 3 on a violation).
The table and CSV are byte-identical to the ones written at the end of the run.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from loadgen.errors import ConfigError
from loadgen.metrics.console import format_table
from loadgen.metrics.rundir import HISTOGRAMS_FILE, INTERVALS_FILE, INTERVALS_LOG, SUMMARY_FILE
from loadgen.option_table import add_options
from loadgen.report import EXIT_BAD_INPUT, EXIT_THRESHOLD_VIOLATED
from loadgen.report.files import write_reports
from loadgen.report.rundata import load_run
from loadgen.report.thresholds import THRESHOLD_OPTIONS, collect_thresholds, evaluate, format_results


def add_threshold_arguments(parser: argparse.ArgumentParser) -> None:
    """``--threshold`` and ``--thresholds-file``, as every command that checks thresholds takes them."""
    add_options(parser, THRESHOLD_OPTIONS)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder, e.g. reports/<run-id>")
    parser.add_argument("--no-html", action="store_true", help="skip report.html (CSV and hlog only)")
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="write the report files into DIR (a copy of the run's JSON files goes there too) instead of RUN_DIR",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="do not print the per-turn table")
    add_threshold_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        thresholds = collect_thresholds(args.threshold, args.thresholds_file)
        run_dir = Path(args.run_dir)
        data = load_run(run_dir)
        if args.out:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            for name in (SUMMARY_FILE, HISTOGRAMS_FILE, INTERVALS_FILE, INTERVALS_LOG):
                if (run_dir / name).exists() and (run_dir / name).resolve() != (out / name).resolve():
                    shutil.copyfile(run_dir / name, out / name)
            data.run_dir = out
        written = write_reports(data.run_dir, html=not args.no_html, data=data)
    except ConfigError as exc:
        sys.stderr.write(f"loadgen report: {exc}\n")
        return EXIT_BAD_INPUT
    if not args.quiet:
        sys.stdout.write(format_table(data.summary) + "\n")
    sys.stdout.write("wrote " + " ".join(sorted(p.name for p in written)) + f" in {data.run_dir}\n")
    if thresholds:
        results = evaluate(data, thresholds)
        sys.stdout.write(format_results(results) + "\n")
        if not all(r.passed for r in results):
            return EXIT_THRESHOLD_VIOLATED
    return 0
