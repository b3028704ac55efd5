"""``loadgen sweep``: measured steps of rising load per transport, and the knee: the highest load whose SLOs held.

Each step is a headless Locust run offering one load (``--users 10,20,40``: the closed model, N users; or ``--rates
1,2,4``: the open model, R new conversations per second) to one transport for ``--warmup`` + ``--step`` seconds; the
warm-up is left out of its figures. Every transport without a ``--host`` is served by ONE reference server started
for the whole sweep (``--embedded-server-args`` go to it). A step holds when every ``--slo`` held on its steady
state, its error rate stayed within ``--max-error-rate`` and the generator's lag p99 stayed under 5 ms
(``--lag-limit-ms``). ``--find`` then bisects between the highest step that held and the lowest that did not, up to
``--find-steps`` more steps per transport. Writes ``<reports-dir>/<run-id>/sweep.{json,md,html}`` and a run folder
per step.

    loadgen sweep --transport rest,grpc,amqp --users 10,20,40,80 --step 60s --slo 'ttft.p99 < 500ms'
    loadgen sweep --transport grpc --host grpc://10.0.0.5:50051 --rates 1,2,4,8 --find --slo 'e2e.p99 < 2s'
    loadgen sweep --users 1,2,4,8 --step 20s --embedded-server-args '--max-batch 4 --queue-limit 8'

Exit codes: 0 the sweep ran and some step of every transport held, 3 no step of some transport held (its knee is
below the lowest step: sweep lower), 2 bad input or no step produced a run folder, 130 interrupted (Ctrl-C: the step
under way writes its folder, and the sweep's files show what ran).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadgen.analysis.knee import GENERATOR_LAG_LIMIT_MS
from loadgen.errors import ConfigError
from loadgen.load.sweep_out import SWEEP_HTML, SWEEP_JSON, SWEEP_MD, to_json, to_markdown
from loadgen.load.sweep_page import to_html
from loadgen.load.sweep_plan import (
    SweepPlan,
    parse_error_rate,
    parse_hosts,
    parse_loads,
    parse_slos,
    parse_transports,
)
from loadgen.load.sweep_runner import Sweep, run_sweep
from loadgen.metrics.rundir import check_run_id, new_run_id
from loadgen.option_table import duration
from loadgen.report import EXIT_BAD_INPUT, EXIT_THRESHOLD_VIOLATED
from loadgen.report.files import write_text
from loadgen.server.cli_options import add_reference_server_options, reference_amqp_url, reference_server_args

EXIT_INTERRUPTED = 130
#: How long asking which options the Locust plug-in takes may take.
HELP_TIMEOUT_S = 60.0
#: The options a step passes on to Locust when its plug-in takes them.
PASSED_ON = ("--warmup", "--slo", "--arrival-rate")


def configure(parser: argparse.ArgumentParser) -> None:
    _load_options(parser.add_argument, parser)
    _judging_options(parser.add_argument)
    parser.add_argument(
        "locust_args",
        nargs=argparse.REMAINDER,
        help="after --: more arguments for every Locust run, e.g. -- --seed 1 --think-min 0.5",
    )


def _load_options(add: Callable[..., Any], parser: argparse.ArgumentParser) -> None:
    add(
        "--transport",
        default="rest,grpc,amqp",
        metavar="NAME,...",
        help="comma-separated transports to sweep (default rest,grpc,amqp)",
    )
    add(
        "--host",
        action="append",
        default=[],
        metavar="[TRANSPORT=]URL",
        help="a running service instead of the reference server (repeatable; TRANSPORT= when sweeping several)",
    )
    loads = parser.add_mutually_exclusive_group()
    loads.add_argument("--users", metavar="N,...", help="closed model: the users of each step, e.g. 10,20,40")
    loads.add_argument("--rates", metavar="R,...", help="open model: new conversations/s of each step, e.g. 1,2,4")
    add("--step", default="60s", metavar="DURATION", help="measured time of each step (default %(default)s)")
    add(
        "--warmup", default="10s", metavar="DURATION", help="run before each step's measured time (default %(default)s)"
    )
    add(
        "--max-in-flight",
        type=int,
        default=100,
        metavar="N",
        help="open model: conversation slots of each step (Locust's -u; default %(default)s)",
    )
    add("--run-id", help="the sweep's folder name under --reports-dir (default: time stamp)")
    add("--reports-dir", default="reports", help="where the sweep's folder goes (default %(default)s)")
    add("-f", "--locustfile", default="scenarios/multiturn.py", help="default %(default)s")
    add_reference_server_options(add, "'--max-batch 4 --queue-limit 8'")


def _judging_options(add: Callable[..., Any]) -> None:
    add(
        "--slo",
        action="append",
        default=[],
        metavar="EXPR",
        help="an objective each step must hold, threshold grammar, e.g. 'ttft.p99 < 500ms' (repeatable)",
    )
    add("--max-error-rate", default="1%", help="a step holds only with at most this error rate (default 1%%)")
    add(
        "--lag-limit-ms",
        type=float,
        default=GENERATOR_LAG_LIMIT_MS,
        help="a step whose generator lag p99 passes this does not hold: the generator, not the service, fell "
        "behind (default %(default)s)",
    )
    add(
        "--find",
        action="store_true",
        help="after the listed steps, bisect between the highest step that held and the lowest that did not",
    )
    add("--find-steps", type=int, default=4, metavar="N", help="--find: at most N more steps per transport (default 4)")


def _seconds(option: str, text: str) -> float:
    try:
        return duration(text)
    except argparse.ArgumentTypeError as exc:
        raise ConfigError(f"{option}: {exc}") from None


def build_plan(args: argparse.Namespace) -> SweepPlan:
    """Every option checked (:class:`ConfigError` with one line) before any load."""
    transports = parse_transports(str(args.transport))
    hosts = parse_hosts(args.host, transports)
    if args.users is None and args.rates is None:
        raise ConfigError("give the steps: --users 10,20,40 (closed model) or --rates 1,2,4 (open model)")
    mode = "users" if args.users is not None else "rate"
    loads = (
        parse_loads("--users", args.users, whole=True)
        if mode == "users"
        else parse_loads("--rates", args.rates, whole=False)
    )
    step_s = _seconds("--step", args.step)
    if step_s < 1:
        raise ConfigError(f"--step {args.step!r}: give at least 1s of measured time per step")
    warmup_s = _seconds("--warmup", args.warmup)
    if args.find_steps < 1:
        raise ConfigError(f"--find-steps {args.find_steps}: give 1 or more bisection steps")
    if args.max_in_flight < 1:
        raise ConfigError(f"--max-in-flight {args.max_in_flight}: give 1 or more conversation slots")
    if not Path(args.locustfile).exists():
        raise ConfigError(f"locustfile {args.locustfile} not found: run from the project folder or give -f PATH")
    server_args = reference_server_args(args)
    if args.lag_limit_ms <= 0:
        raise ConfigError(f"--lag-limit-ms {args.lag_limit_ms:g}: give a limit above 0")
    slos = parse_slos(args.slo)
    sweep_id = check_run_id(args.run_id, what="--run-id") if args.run_id else new_run_id("sweep")
    extra = list(args.locust_args or [])
    return SweepPlan(
        transports=transports,
        hosts=hosts,
        mode=mode,
        loads=loads,
        step_s=step_s,
        warmup_s=warmup_s,
        sweep_id=sweep_id,
        reports_dir=Path(args.reports_dir),
        locustfile=args.locustfile,
        slos=slos,
        slo_texts=[s.text for s in slos],
        max_error_rate=parse_error_rate(str(args.max_error_rate)),
        lag_limit_ms=args.lag_limit_ms,
        find_steps=args.find_steps if args.find else 0,
        max_in_flight=args.max_in_flight,
        server_args=server_args,
        amqp_url=reference_amqp_url(args),
        locust_args=extra[1:] if extra[:1] == ["--"] else extra,
    )


#: Run in a subprocess: load the locustfile (its plug-in registers its options), build Locust's parser, print the
#: flags. ``locust --help`` cannot tell: it answers before it loads the locustfile.
_FLAGS_SCRIPT = """
import sys
from locust.argument_parser import get_parser
from locust.util.load_locustfile import load_locustfile
load_locustfile(sys.argv[1])
print(" ".join(f for action in get_parser()._actions for f in action.option_strings))
"""


def plugin_flags(locustfile: str) -> frozenset[str]:
    """Which of :data:`PASSED_ON` the Locust plug-in takes (asked in a subprocess: importing Locust here would
    monkey-patch this process); none when it cannot tell."""
    cmd = [sys.executable, "-c", _FLAGS_SCRIPT, locustfile]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=HELP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    found = set(done.stdout.split()) if done.returncode == 0 else set()
    return frozenset(f for f in PASSED_ON if f in found)


def write_outputs(sweep: Sweep) -> None:
    out = sweep.plan.out_dir
    write_text(out / SWEEP_JSON, to_json(sweep))
    write_text(out / SWEEP_MD, to_markdown(sweep))
    write_text(out / SWEEP_HTML, to_html(sweep))


def exit_code(sweep: Sweep) -> int:
    if sweep.interrupted:
        return EXIT_INTERRUPTED
    ran = [s for steps in sweep.steps.values() for s in steps]
    if not ran or all(s.run_dir is None for s in ran):
        return EXIT_BAD_INPUT
    if any(sweep.knee(t).knee is None for t in sweep.plan.transports):
        return EXIT_THRESHOLD_VIOLATED
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        plan = build_plan(args)
        if plan.mode == "rate" or plan.slo_texts or plan.warmup_s:
            plan.plugin_options = plugin_flags(plan.locustfile)
        if plan.mode == "rate" and "--arrival-rate" not in plan.plugin_options:
            raise ConfigError("--rates: this Locust plug-in has no --arrival-rate (open model); sweep --users instead")
        plan.out_dir.mkdir(parents=True, exist_ok=True)
        sweep = run_sweep(plan, write_outputs)
    except (ConfigError, ValueError) as exc:
        sys.stderr.write(f"loadgen sweep: {exc}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # before the first step (a step's Ctrl-C is the sweep's to handle)
        sys.stderr.write("loadgen sweep: interrupted before any step ran\n")
        return EXIT_INTERRUPTED
    write_outputs(sweep)
    sys.stdout.write(to_markdown(sweep))
    sys.stdout.write(f"wrote {SWEEP_JSON}, {SWEEP_MD}, {SWEEP_HTML} in {plan.out_dir}\n")
    code = exit_code(sweep)
    if code == EXIT_THRESHOLD_VIOLATED:
        held_none = [t for t in plan.transports if sweep.knee(t).knee is None]
        sys.stdout.write(f"no step held for {', '.join(held_none)}: the knee is below the lowest step\n")
    return code
