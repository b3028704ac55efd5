"""``loadgen compare-transports``: the same load over each transport, in interleaved rounds, against one backend.

Every arm (``--transports rest,grpc,amqp``; a second arm of one transport takes a label: ``slow=grpc``) runs
``--repeats`` times in interleaved order (A B C, B C A, ...), each run a headless Locust run of ``-t`` offering the
same load (``-u`` users) to ONE reference server started for the whole comparison with a front per transport
(``--embedded-server-args`` go to it), or to a running service given per arm (``--target grpc=grpc://host:50051``).
The first ``--warmup`` seconds of each run are left out of the figures. Beside each run: the CPU of the Locust
process and of the server, and the transport's timing floor (a bare client, same server, same seconds). Then one
comparison: ``reports/<id>/comparison.{md,csv,json,html}`` (figures with 95% intervals, pairwise verdicts, where
the time goes, every round) and ``rounds.json`` (what was measured beside the runs).

    loadgen compare-transports --transports rest,grpc,amqp -u 20 -t 30s --repeats 5
    loadgen compare-transports -u 20 -t 3m --embedded-server-args '--faults "60s+10s down; 120s+5s stall"'
    loadgen compare-transports --runs reports/a --keep-lagging-rounds       # re-tabulate a comparison
    loadgen compare-transports --runs reports/x-rest,reports/x-grpc --id x   # tabulate finished run folders

A run whose generator lag p99 passed ``--lag-limit-ms`` (5 ms) measured the generator more than the transport: it
is marked and left out of the figures and verdicts unless ``--keep-lagging-rounds``. ``--sweep DIR`` adds each
transport's highest load within the SLO from a sweep's ``sweep.json``.

Exit codes: 0 every run produced its folder (failed turns show in the table), 3 a run broke a threshold
(``--threshold`` passed through to Locust after ``--``), 2 a run produced no folder or bad input, 130 interrupted
(Ctrl-C: the run under way writes its folder, and the tables show what ran).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadgen.errors import ConfigError
from loadgen.metrics.rundir import check_run_id, new_run_id
from loadgen.report import EXIT_BAD_INPUT, EXIT_THRESHOLD_VIOLATED
from loadgen.report.files import write_text
from loadgen.report.transports import Comparison, to_csv, to_json, to_markdown
from loadgen.report.transports_build import Judging, apply_sweep, from_folders, from_rounds_file, read_sweep
from loadgen.report.transports_page import to_html
from loadgen.report.transports_rounds import LAG_LIMIT_MS
from loadgen.report.transports_runner import ROUNDS_FILE, Plan, RunRecord, parse_arms, run_rounds
from loadgen.server.cli_options import add_reference_server_options, reference_amqp_url, reference_server_args

EXIT_INTERRUPTED = 130
#: The warm-up when none is given: this, or a fifth of the run when that is shorter.
DEFAULT_WARMUP_S = 5.0


def configure(parser: argparse.ArgumentParser) -> None:
    _run_options(parser.add_argument)
    _judging_options(parser.add_argument)
    parser.add_argument(
        "locust_args",
        nargs=argparse.REMAINDER,
        help="after --: more arguments for every Locust run, e.g. -- --seed 1 --history server",
    )


def _run_options(add: Callable[..., Any]) -> None:
    """What runs: the arms, the load, the rounds, the backend."""
    add(
        "--transports",
        default="rest,grpc,amqp",
        metavar="[ARM=]TRANSPORT,...",
        help="comma-separated transports to compare (default rest,grpc,amqp): any registered one (`loadgen "
        "transports`) or package.module:Class; ARM=TRANSPORT names an arm, e.g. a second one of one transport",
    )
    add("-u", "--users", type=int, default=20, help="users per run, the same for every arm (default 20)")
    add("-r", "--spawn-rate", type=float, default=None, help="users started per second (default: -u)")
    add("-t", "--run-time", default="30s", help="length of each run, warm-up included, Locust syntax (default 30s)")
    add(
        "--repeats",
        type=int,
        default=1,
        metavar="N",
        help="rounds: every arm runs N times, in interleaved order (A B C, B C A, ...) (default 1)",
    )
    add(
        "--warmup",
        metavar="DURATION",
        help="left out of each run's figures (default 5s, or a fifth of -t when shorter; with --runs: the "
        "comparison's own, none for run folders)",
    )
    add("--id", dest="comparison_id", help="comparison id: runs are <id>[-r<round>]-<arm> (default: time stamp)")
    add("--reports-dir", default="reports", help="where run folders go (default reports)")
    add("-f", "--locustfile", default="scenarios/multiturn.py", help="default scenarios/multiturn.py")
    add(
        "--target",
        action="append",
        default=[],
        metavar="ARM=URL",
        help="use a running service for one arm instead of the reference server (repeatable)",
    )
    add_reference_server_options(
        add,
        "'--fixed --fixed-ttft-ms 20'; with '--faults ...' every run gets a server of its own, so each run sees "
        "the same schedule",
    )


def _judging_options(add: Callable[..., Any]) -> None:
    """What is measured beside the runs, which runs count, and what else the table shows."""
    add(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="do not run the timing floor (a bare client of the same transport) beside each run",
    )
    add(
        "--lag-limit-ms",
        type=float,
        default=LAG_LIMIT_MS,
        help="a run whose generator lag p99 passes this is lagging (default %(default)s)",
    )
    add("--keep-lagging-rounds", action="store_true", help="keep lagging runs in the figures and verdicts")
    add("--sweep", metavar="DIR", help="a sweep's folder: its sweep.json gives max turns/s within the SLO")
    add(
        "--runs",
        help="tabulate instead of running: a comparison's folder (its rounds.json), or comma-separated "
        "finished run folders (one transport given twice: two rounds)",
    )


_TIMESPAN = re.compile(r"^((?P<h>\d+)h)?((?P<m>\d+)m)?((?P<s>\d+)s)?$")


def _seconds(run_time: str) -> float:
    """Locust's run-time syntax: 30s, 5m, 1h30m, or plain seconds (parsed here: importing locust would
    monkey-patch this process)."""
    text = run_time.strip()
    if text.isdigit():
        return float(text)
    m = _TIMESPAN.match(text)
    if not text or not m:
        raise ValueError("expected a duration such as 30s, 5m or 1h30m")
    return float(int(m["h"] or 0) * 3600 + int(m["m"] or 0) * 60 + int(m["s"] or 0))


def _duration(option: str, text: str) -> float:
    try:
        return _seconds(text)
    except ValueError as exc:
        raise ConfigError(f"{option} {text!r}: {exc}") from exc


def build_plan(args: argparse.Namespace, comparison_id: str) -> Plan:
    """Every option of a comparison that runs, checked (:class:`ConfigError` with one line) before any load."""
    arms = parse_arms(str(args.transports), args.target)
    if args.repeats < 1:
        raise ConfigError(f"--repeats {args.repeats}: give 1 or more")
    if args.users < 1:
        raise ConfigError(f"-u {args.users}: give 1 or more users")
    if not Path(args.locustfile).exists():
        raise ConfigError(f"locustfile {args.locustfile} not found: run from the project folder or give -f PATH")
    run_s = _duration("-t", args.run_time)
    warmup_s = min(DEFAULT_WARMUP_S, run_s / 5) if args.warmup is None else _duration("--warmup", args.warmup)
    if warmup_s >= run_s:
        raise ConfigError(f"--warmup {warmup_s:g} s leaves nothing of -t {args.run_time} to measure")
    server_args = reference_server_args(args)
    extra = list(args.locust_args or [])
    return Plan(
        arms=arms,
        repeats=args.repeats,
        users=args.users,
        spawn_rate=args.spawn_rate if args.spawn_rate is not None else float(args.users),
        run_time=str(args.run_time),
        run_s=run_s,
        warmup_s=warmup_s,
        comparison_id=comparison_id,
        reports_dir=Path(args.reports_dir),
        locustfile=args.locustfile,
        server_args=server_args,
        amqp_url=reference_amqp_url(args),
        floor=args.floor,
        locust_args=extra[1:] if extra[:1] == ["--"] else extra,
    )


def _exit_code(records: list[RunRecord]) -> int:
    if any(r.interrupted for r in records):
        return EXIT_INTERRUPTED
    code = 0
    for r in records:
        if not (r.run_dir / "summary.json").exists():
            sys.stdout.write(f"   round {r.round}, {r.arm.label}: no run folder (exit code {r.rc}); see {r.log}\n")
            code = EXIT_BAD_INPUT
        elif r.rc == EXIT_THRESHOLD_VIOLATED and code == 0:
            code = EXIT_THRESHOLD_VIOLATED
    return code


def _tabulate(args: argparse.Namespace, how: Judging) -> tuple[Comparison, Path]:
    folders = [Path(p.strip()) for p in str(args.runs).split(",") if p.strip()]
    if len(folders) == 1 and (folders[0] / ROUNDS_FILE).exists():
        comparison_id = check_run_id(args.comparison_id, what="--id") if args.comparison_id else folders[0].name
        out_dir = Path(args.reports_dir) / comparison_id if args.comparison_id else folders[0]
        return from_rounds_file(folders[0], _title(comparison_id), how), out_dir
    comparison_id = check_run_id(args.comparison_id, what="--id") if args.comparison_id else new_run_id("transports")
    return from_folders(folders, _title(comparison_id), how), Path(args.reports_dir) / comparison_id


def _title(comparison_id: str) -> str:
    return f"chat-loadgen transport comparison {comparison_id}"


def run(args: argparse.Namespace) -> int:
    code = 0
    try:
        sweep = read_sweep(Path(args.sweep)) if args.sweep else None
        how = Judging(None, args.lag_limit_ms, args.keep_lagging_rounds)
        if args.runs:
            warmup_s = _duration("--warmup", args.warmup) if args.warmup is not None else None
            comparison, out_dir = _tabulate(args, Judging(warmup_s, how.lag_limit_ms, how.keep_lagging))
        else:
            comparison_id = (
                check_run_id(args.comparison_id, what="--id") if args.comparison_id else new_run_id("transports")
            )
            plan = build_plan(args, comparison_id)
            out_dir = plan.out_dir
            out_dir.mkdir(parents=True, exist_ok=True)
            code = _exit_code(run_rounds(plan))
            how = Judging(plan.warmup_s, how.lag_limit_ms, how.keep_lagging)
            comparison = from_rounds_file(out_dir, _title(comparison_id), how)
    except (ConfigError, ValueError) as exc:
        sys.stderr.write(f"loadgen compare-transports: {exc}\n")
        return EXIT_BAD_INPUT
    if not any(a.runs for a in comparison.arms):
        sys.stderr.write("loadgen compare-transports: no run produced data: nothing to compare\n")
        return EXIT_BAD_INPUT
    if sweep is not None:
        apply_sweep(comparison, *sweep)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(comparison)
    write_text(out_dir / "comparison.md", markdown)
    write_text(out_dir / "comparison.csv", to_csv(comparison.rows))
    write_text(out_dir / "comparison.json", to_json(comparison))
    write_text(out_dir / "comparison.html", to_html(comparison, out_dir))
    sys.stdout.write(markdown)
    sys.stdout.write(f"wrote comparison.md, comparison.csv, comparison.json, comparison.html in {out_dir}\n")
    return code
