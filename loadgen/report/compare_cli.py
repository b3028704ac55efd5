"""``loadgen compare BASELINE_DIR CURRENT_DIR``: per-turn deltas between two runs; exit 3 past the limits.

The night-over-night check of a soak job::

    loadgen compare reports/nightly-2026-11-01 reports/nightly-2026-11-02 --max-regression 10% \\
        --threshold 'retention >= 99%' --threshold 'drift.ttft.p99 < 10%/h'

With no option at all it already fails (exit 3) when the current run has no successful turn, when a row of
the baseline is gone, when a row's error rate rose by more than 1 percentage point or its retention fell by more
than 1 (:mod:`loadgen.report.compare`); each limit can be loosened (``--max-error-increase 5%``, ``off``). Runs
that differ in shape (users, duration, transports, target, dialogues, history mode, streaming, processes) get a
loud warning, and fail with ``--strict-shape``.

Exit codes: 0 no regression, 3 a regression or a broken threshold, 2 bad input (missing folder, bad option).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from loadgen.errors import ConfigError
from loadgen.report import EXIT_BAD_INPUT, EXIT_THRESHOLD_VIOLATED
from loadgen.report.cli import add_threshold_arguments
from loadgen.report.compare import (
    DEFAULT_MAX_ERROR_INCREASE,
    DEFAULT_MAX_RETENTION_DROP,
    DEFAULT_MIN_COUNT,
    RegressionRules,
    compare_summaries,
    comparison_stats,
    parse_limit,
    parse_percent,
    verdict_lines,
)
from loadgen.report.compare_out import to_csv, to_json, to_markdown, to_text
from loadgen.report.rundata import load_run
from loadgen.report.thresholds import collect_thresholds, evaluate, format_results, results_json


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("baseline", metavar="BASELINE_DIR", help="the reference run folder")
    parser.add_argument("current", metavar="CURRENT_DIR", help="the run folder to judge")
    parser.add_argument(
        "--max-regression",
        metavar="PCT",
        help="fail when a latency statistic (--stat, default p99) of any turn or transport is more than PCT "
        "slower than the baseline, e.g. 10%%",
    )
    parser.add_argument(
        "--stat",
        default="p99",
        help="comma-separated statistics --max-regression applies to: p50, p95, p99, max, mean (default p99)",
    )
    parser.add_argument(
        "--metrics",
        default="e2e,ttft,itl",
        help="comma-separated latency metrics --max-regression applies to (default e2e,ttft,itl)",
    )
    parser.add_argument(
        "--min-count",
        type=int,
        default=DEFAULT_MIN_COUNT,
        help="rows with fewer turns than this in either run are shown but not judged (default %(default)s)",
    )
    parser.add_argument(
        "--min-delta-ms",
        type=float,
        default=0.0,
        help="ignore latency regressions smaller than this many ms (noise floor; default 0)",
    )
    _add_rate_limits(parser)
    parser.add_argument(
        "--format", choices=("text", "markdown", "csv", "json"), default="text", help="output format (default text)"
    )
    add_threshold_arguments(parser)
    parser.epilog = "Thresholds (--threshold, --thresholds-file) are checked against CURRENT_DIR."


def _add_rate_limits(parser: argparse.ArgumentParser) -> None:
    """The limits judged with defaults: error rate and retention per row, gone rows, the runs' shape."""
    parser.add_argument(
        "--max-error-increase",
        metavar="PP",
        default=f"{100 * DEFAULT_MAX_ERROR_INCREASE:g}%",
        help="fail when a row's error rate rises by more than PP percentage points (default %(default)s; "
        "'off' does not judge it)",
    )
    parser.add_argument(
        "--max-retention-drop",
        metavar="PP",
        default=f"{100 * DEFAULT_MAX_RETENTION_DROP:g}%",
        help="fail when a row's retention rate falls by more than PP percentage points (default %(default)s; "
        "'off' does not judge it)",
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="a row of the baseline that is gone from the current run is a note, not a regression",
    )
    parser.add_argument(
        "--strict-shape",
        action="store_true",
        help="fail when the runs differ in shape (users, duration, transports, target, dialogues, history mode, "
        "streaming, processes); without it they only warn",
    )


def _rules(args: argparse.Namespace) -> RegressionRules:
    metrics = tuple(m.strip() for m in str(args.metrics).split(",") if m.strip())
    bad = [m for m in metrics if m not in ("e2e", "ttft", "itl", "schedule_lag")]
    if bad:
        raise ValueError(f"--metrics {bad[0]!r}: choose from e2e, ttft, itl, schedule_lag")
    return RegressionRules(
        max_regression=parse_percent(args.max_regression, "--max-regression") if args.max_regression else None,
        stats=comparison_stats([s.strip() for s in str(args.stat).split(",") if s.strip()]),
        metrics=metrics,
        min_count=max(0, int(args.min_count)),
        min_delta_ms=float(args.min_delta_ms),
        max_error_increase=parse_limit(str(args.max_error_increase), "--max-error-increase"),
        max_retention_drop=parse_limit(str(args.max_retention_drop), "--max-retention-drop"),
        allow_missing=bool(args.allow_missing),
        strict_shape=bool(args.strict_shape),
    )


def run(args: argparse.Namespace) -> int:
    try:
        rules = _rules(args)
        thresholds = collect_thresholds(args.threshold, args.thresholds_file)
        base = load_run(Path(args.baseline), need_intervals=False)
        cur = load_run(Path(args.current), need_intervals=False)
    except (ConfigError, ValueError) as exc:
        sys.stderr.write(f"loadgen compare: {exc}\n")
        return EXIT_BAD_INPUT
    comparison = compare_summaries(base.summary, cur.summary, rules)
    results = evaluate(cur, thresholds) if thresholds else []
    title = f"{cur.run_id} vs baseline {base.run_id}"
    if args.format == "csv":
        sys.stdout.write(to_csv(comparison))
    elif args.format == "json":
        data = json.loads(to_json(comparison))
        data["thresholds"] = results_json(results)
        sys.stdout.write(json.dumps(data, indent=1, sort_keys=True) + "\n")
    else:
        table = to_markdown(comparison, title) if args.format == "markdown" else to_text(comparison, title)
        sys.stdout.write(table + "\n")
    failed = bool(comparison.violations) or any(not r.passed for r in results)
    notes = verdict_lines(comparison, rules)
    if results:
        notes.append(format_results(results))
    notes.append("compare: FAILED (exit 3)" if failed else "compare: no regression past the given limits")
    # machine formats keep stdout clean; the verdict goes to stderr there
    verdict_out = sys.stderr if args.format in ("csv", "json") else sys.stdout
    verdict_out.write("\n".join(notes) + "\n")
    return EXIT_THRESHOLD_VIOLATED if failed else 0
