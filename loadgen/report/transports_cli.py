"""``loadgen compare-transports``: the same dialogues, users and duration over each transport in turn.

Each transport gets its own headless Locust run (``python -m locust -f LOCUSTFILE --headless ... --transport X
--run-id <id>-X``), against the embedded reference server (a fresh one per run, same options) or a target
given per transport (``--target grpc=grpc://host:50051``). Then one table compares them:
``reports/<id>/comparison.{md,csv,html}``.

    loadgen compare-transports --transports rest,grpc,amqp -u 20 -t 30s
    loadgen compare-transports -u 20 -t 3m --embedded-server-args '--faults "60s+10s down; 120s+5s stall"'
    loadgen compare-transports --runs reports/a-rest,reports/a-grpc --id a      # re-tabulate finished runs

Under the same fault schedule (``--embedded-server-args '--faults ...'``, given to every run's embedded server),
the table is the seed's: per transport, latency, turns/s, error rate and recovery time (``summary.json``
``recovery``: outages, the longest and the median recovery).

Exit codes: 0 every run produced its folder (failed turns show in the table), 3 a run broke a threshold
(``--threshold`` passed through to Locust after ``--``), 2 a run produced no folder or bad input.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from loadgen.errors import ConfigError
from loadgen.metrics.rundir import check_run_id, new_run_id
from loadgen.report import EXIT_BAD_INPUT, EXIT_THRESHOLD_VIOLATED
from loadgen.report.files import write_text
from loadgen.report.rundata import RunData, load_run
from loadgen.report.transports import comparison_rows, to_csv, to_html, to_markdown
from loadgen.transports import TRANSPORTS

STARTUP_MARGIN_S = 180.0  # server start (a torch engine builds its model) + Locust's stop timeout


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--transports",
        default="rest,grpc,amqp",
        help="comma-separated transports to run in turn (default rest,grpc,amqp; "
        f"known: {','.join(sorted(TRANSPORTS))})",
    )
    parser.add_argument("-u", "--users", type=int, default=20, help="users per run (default 20)")
    parser.add_argument("-r", "--spawn-rate", type=float, default=None, help="users started per second (default: -u)")
    parser.add_argument("-t", "--run-time", default="30s", help="duration of each run, Locust syntax (default 30s)")
    parser.add_argument(
        "--id", dest="comparison_id", help="comparison id: runs are <id>-<transport> (default: time stamp)"
    )
    parser.add_argument("--reports-dir", default="reports", help="where run folders go (default reports)")
    parser.add_argument("-f", "--locustfile", default="scenarios/multiturn.py", help="default scenarios/multiturn.py")
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="TRANSPORT=URL",
        help="use a running service for one transport instead of the embedded server (repeatable)",
    )
    parser.add_argument(
        "--embedded-server-args",
        default="",
        metavar="ARGS",
        help="`loadgen serve` arguments for every run's embedded reference server, e.g. '--faults \"60s+10s down\"' "
        "(the same schedule for each transport)",
    )
    parser.add_argument(
        "--runs",
        help="comma-separated finished run folders to tabulate instead of running (one per transport)",
    )
    parser.add_argument(
        "locust_args",
        nargs=argparse.REMAINDER,
        help="after --: more arguments for every Locust run, e.g. -- --seed 1 --history server",
    )


def _targets(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, url = item.partition("=")
        if not sep or not url or name not in TRANSPORTS:
            raise ConfigError(
                f"--target {item!r}: expected TRANSPORT=URL with TRANSPORT one of {', '.join(sorted(TRANSPORTS))}"
            )
        out[name] = url
    return out


def locust_command(args: argparse.Namespace, transport: str, run_id: str, target: str | None) -> list[str]:
    extra = list(args.locust_args or [])
    if extra and extra[0] == "--":
        extra = extra[1:]
    spawn_rate = args.spawn_rate if args.spawn_rate is not None else args.users
    cmd = [
        sys.executable, "-m", "locust", "-f", args.locustfile, "--headless",
        "-u", str(args.users), "-r", f"{spawn_rate:g}", "-t", str(args.run_time),
        "--transport", transport, "--run-id", run_id, "--reports-dir", str(args.reports_dir), "--only-summary",
    ]  # fmt: skip
    if target:
        cmd += ["--host", target]
    elif getattr(args, "embedded_server_args", ""):
        cmd += ["--embedded-server-args", args.embedded_server_args]
    return cmd + extra


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


def _run_all(args: argparse.Namespace, comparison_id: str, out_dir: Path) -> tuple[list[tuple[str, Path]], int]:
    transports = [t.strip() for t in str(args.transports).split(",") if t.strip()]
    unknown = [t for t in transports if t not in TRANSPORTS]
    if not transports or unknown:
        raise ConfigError(
            f"--transports {args.transports!r}: choose from {', '.join(sorted(TRANSPORTS))}, comma-separated"
        )
    if not Path(args.locustfile).exists():
        raise ConfigError(f"locustfile {args.locustfile} not found: run from the project folder or give -f PATH")
    try:
        timeout = _seconds(args.run_time) + STARTUP_MARGIN_S
    except ValueError as exc:
        raise ConfigError(f"-t {args.run_time!r}: {exc}") from exc
    targets = _targets(args.target)
    code = 0
    runs: list[tuple[str, Path]] = []
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for transport in transports:
        run_id = check_run_id(f"{comparison_id}-{transport}")
        cmd = locust_command(args, transport, run_id, targets.get(transport))
        log_path = out_dir / f"{transport}.log"
        sys.stdout.write(f"== {transport}: {' '.join(cmd[1:])}\n")
        sys.stdout.flush()
        with log_path.open("w", encoding="utf-8") as log:
            try:
                proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, env=env, check=False)
                rc = proc.returncode
            except subprocess.TimeoutExpired:
                rc = -1
        run_dir = Path(args.reports_dir) / run_id
        if not (run_dir / "summary.json").exists():
            sys.stdout.write(f"   {transport}: no run folder (exit code {rc}); see {log_path}\n")
            code = EXIT_BAD_INPUT
            continue
        sys.stdout.write(f"   {transport}: exit code {rc}, run folder {run_dir}\n")
        if rc == EXIT_THRESHOLD_VIOLATED and code == 0:
            code = EXIT_THRESHOLD_VIOLATED
        runs.append((transport, run_dir))
    return runs, code


def _notes(runs: list[tuple[str, RunData]]) -> list[str]:
    notes = []
    for transport, data in runs:
        run = data.summary.get("run", {})
        notes.append(
            f"{transport}: run {data.run_id}, {run.get('users')} users, {run.get('duration_s')} s, "
            f"target {run.get('target')}"
        )
        faults = [str(f.get("fault") or f.get("kind")) for f in data.summary.get("faults") or []]
        if faults:
            notes.append(f"{transport}: server faults injected: {'; '.join(faults)}")
        notes.extend(f"{transport}: WARNING {w}" for w in data.summary.get("warnings", []))
    return notes


def run(args: argparse.Namespace) -> int:
    try:
        comparison_id = check_run_id(args.comparison_id) if args.comparison_id else new_run_id("transports")
        out_dir = Path(args.reports_dir) / comparison_id
        out_dir.mkdir(parents=True, exist_ok=True)
        if args.runs:
            folders = [Path(p.strip()) for p in str(args.runs).split(",") if p.strip()]
            loaded = [load_run(p) for p in folders]
            runs = [(t, d) for d in loaded for t in (d.transports() or [d.run_id])]
            code = 0
        else:
            paths, code = _run_all(args, comparison_id, out_dir)
            runs = [(t, load_run(p)) for t, p in paths]
    except (ConfigError, ValueError) as exc:
        sys.stderr.write(f"loadgen compare-transports: {exc}\n")
        return EXIT_BAD_INPUT
    if not runs:
        sys.stderr.write("loadgen compare-transports: no run produced data: nothing to compare\n")
        return EXIT_BAD_INPUT
    rows = comparison_rows(runs)
    title = f"chat-loadgen transport comparison {comparison_id}"
    notes = _notes(runs)
    markdown = to_markdown(rows, title, notes)
    write_text(out_dir / "comparison.md", markdown)
    write_text(out_dir / "comparison.csv", to_csv(rows))
    write_text(out_dir / "comparison.html", to_html(runs, rows, title, notes))
    sys.stdout.write(markdown)
    sys.stdout.write(f"wrote comparison.md, comparison.csv, comparison.html in {out_dir}\n")
    return code
