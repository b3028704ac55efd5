"""Running a transport comparison: interleaved rounds of headless Locust runs against one backend.

Each *arm* is a transport under a label (``grpc``, or ``slow=grpc`` for a second arm of one transport). The runs
go in interleaved order (:func:`loadgen.analysis.bootstrap.interleaved_order`: A B C, B C A, C A B, ...), so what
else runs on the machine falls on every arm alike. Every run of every arm offers the same load
(:func:`offered_load`: the same users, spawn rate and duration) to the same backend: ONE reference server process
(``loadgen serve`` with a front per compared transport, started once for the whole comparison), or the running
service given per arm (``--target``). A server fault schedule (``--faults`` in the server's arguments) is timed
from the server's start, so with one every run gets a server of its own, started just before it.

Each run is ``python -m locust -f LOCUSTFILE --headless ... --transport T --host URL --run-id <id>[-r<k>]-<arm>``;
beside it the comparison samples the CPU of the Locust process and of the server (:class:`CpuSampler`) and runs
the timing floor (a bare client, :func:`start_floor`). What it measured is kept in ``rounds.json`` in the
comparison's folder, one entry per run, written after each run (a comparison cut short keeps what it ran).

The warm-up is not measured: runs are cut at the warm-up's end when read back (:mod:`.transports_rounds`), and
the runs record interval snapshots of at most :data:`MAX_INTERVAL_S` for that (``--interval``, unless given).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen.analysis.bootstrap import interleaved_order
from loadgen.errors import ConfigError
from loadgen.metrics.rundir import check_run_id
from loadgen.report.files import write_text
from loadgen.report.transports_probe import CpuSampler, finish_floor, start_floor
from loadgen.report.transports_rounds import Beside
from loadgen.server.launcher import SERVED_TRANSPORTS, EmbeddedServer, start_server_with_fronts
from loadgen.transports import check_name, redact_url

ROUNDS_FILE = "rounds.json"
#: Server start (a torch engine builds its model) + Locust's start and stop, on top of a run's own length.
STARTUP_MARGIN_S = 180.0
#: Seconds a Locust run takes to start its users (imports, the first spawn): the floor starts after them.
LOCUST_START_S = 3.0
#: Interval snapshots are at most this long (and at least 1 s; a fifth of the warm-up): the warm-up cut's grain.
MAX_INTERVAL_S = 5.0
#: How long an interrupted run gets to write its folder before it is stopped.
STOP_GRACE_S = 30.0
#: How long the floor may take past its window before it is given up.
FLOOR_GRACE_S = 20.0


@dataclass(frozen=True)
class Arm:
    label: str  # names the arm in tables and run ids
    transport: str  # what --transport is given
    target: str | None = None  # a running service; None: the comparison's reference server


def parse_arms(text: str, targets: Sequence[str]) -> list[Arm]:
    """``[LABEL=]TRANSPORT,...`` and ``--target LABEL=URL`` items into arms (:class:`ConfigError` on bad input)."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ConfigError(f"--transports {text!r}: name at least one transport, comma-separated")
    arms: list[tuple[str, str]] = []
    for item in items:
        label, sep, transport = item.rpartition("=") if "=" in item else ("", "", item)
        transport = check_name(transport.strip(), what="--transports")
        label = label.strip() if sep else transport.rpartition(":")[2].rpartition(".")[2]
        check_run_id(label, what=f"--transports {item!r}: the arm's label")
        if any(label == known for known, _ in arms):
            raise ConfigError(
                f"--transports: {label!r} comes twice; give the second a label of its own: NAME={transport}"
            )
        arms.append((label, transport))
    urls: dict[str, str] = {}
    for item in targets:
        label, sep, url = item.partition("=")
        if not sep or not url or label not in {a for a, _ in arms}:
            known = ", ".join(a for a, _ in arms)
            raise ConfigError(f"--target {item!r}: expected ARM=URL with ARM one of the compared arms ({known})")
        urls[label] = url
    out = [Arm(label, transport, urls.get(label)) for label, transport in arms]
    for arm in out:
        if arm.target is None and arm.transport not in SERVED_TRANSPORTS:
            raise ConfigError(
                f"--transports: the reference server has no front for {arm.transport!r}; "
                f"give the service to test with --target {arm.label}=URL"
            )
    return out


@dataclass
class Plan:
    """Everything the runs of one comparison share."""

    arms: list[Arm]
    repeats: int
    users: int
    spawn_rate: float
    run_time: str  # Locust syntax, warm-up included
    run_s: float
    warmup_s: float
    comparison_id: str
    reports_dir: Path
    locustfile: str
    server_args: list[str] = field(default_factory=list)
    amqp_url: str = ""
    floor: bool = True
    locust_args: list[str] = field(default_factory=list)

    @property
    def out_dir(self) -> Path:
        return self.reports_dir / self.comparison_id

    def run_id(self, round_no: int, arm: Arm) -> str:
        return check_run_id(
            f"{self.comparison_id}-{arm.label}"
            if self.repeats == 1
            else f"{self.comparison_id}-r{round_no}-{arm.label}"
        )

    @property
    def server_per_run(self) -> bool:
        """A fault schedule is timed from the server's start: then each run gets a server of its own."""
        return "--faults" in self.server_args


def offered_load(plan: Plan) -> list[str]:
    """The load every run offers: the closed model, the same users at the same spawn rate for the same time.

    The open model (an arrival rate of new conversations, the same rate for every arm) goes here once Locust
    runs take ``--arrival-rate``: add it to :class:`Plan` and return its arguments instead of ``-u``/``-r``.
    """
    return ["-u", str(plan.users), "-r", f"{plan.spawn_rate:g}", "-t", plan.run_time]


def interval_s(warmup_s: float) -> float:
    return min(MAX_INTERVAL_S, max(1.0, warmup_s / 5.0))


def locust_command(plan: Plan, arm: Arm, run_id: str, host: str) -> list[str]:
    extra = list(plan.locust_args)
    cmd = [
        sys.executable, "-m", "locust", "-f", plan.locustfile, "--headless", *offered_load(plan),
        "--transport", arm.transport, "--host", host, "--run-id", run_id, "--reports-dir", str(plan.reports_dir),
        "--only-summary",
    ]  # fmt: skip
    if not any(a == "--interval" or a.startswith("--interval=") for a in extra):
        cmd += ["--interval", f"{interval_s(plan.warmup_s):g}"]
    return cmd + extra


def start_server(plan: Plan, arms: Sequence[Arm]) -> EmbeddedServer:
    """One ``loadgen serve`` with a front for each arm's transport (and REST always: its /stats counts requests)."""
    fronts = {a.transport for a in arms if a.target is None}
    return start_server_with_fronts(fronts, plan.amqp_url, plan.server_args)


@dataclass
class RunRecord:
    round: int
    arm: Arm
    run_id: str
    run_dir: Path
    rc: int
    log: Path
    beside: Beside
    interrupted: bool = False  # Ctrl-C during this run: the comparison stops after it

    def to_json(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "arm": self.arm.label,
            "transport": self.arm.transport,
            "target": redact_url(self.arm.target) if self.arm.target else None,
            "run_id": self.run_id,
            "run_dir": self.run_dir.name,
            "exit_code": self.rc,
            "log": self.log.name,
            "interrupted": self.interrupted,
            **self.beside.to_json(),
        }


def run_one(plan: Plan, arm: Arm, round_no: int, server: EmbeddedServer | None) -> RunRecord:
    """One headless Locust run of ``arm``, with the CPU sampler and the floor beside it."""
    run_id = plan.run_id(round_no, arm)
    host = arm.target or (server.urls[arm.transport] if server is not None else "")
    cmd = locust_command(plan, arm, run_id, host)
    log = plan.out_dir / (f"{arm.label}.log" if plan.repeats == 1 else f"r{round_no}-{arm.label}.log")
    shown = [redact_url(a) if "://" in a else a for a in cmd[1:]]
    sys.stdout.write(f"== round {round_no}, {arm.label}: {shlex.join(shown)}\n")
    sys.stdout.flush()
    beside = Beside()
    measured_s = plan.run_s - plan.warmup_s - LOCUST_START_S
    floor = (
        start_floor(arm.transport, host, delay_s=plan.warmup_s + LOCUST_START_S, duration_s=measured_s)
        if plan.floor
        else None
    )
    stats = f"{server.urls['rest']}/stats" if server is not None and arm.target is None else None
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        server_pid = server.proc.pid if server is not None and arm.target is None else None
        with CpuSampler(proc.pid, server_pid, stats) as sampler:
            rc, interrupted = _wait(proc, plan.run_s + STARTUP_MARGIN_S)
        beside.samples = sampler.samples
    finish_floor(floor, beside, timeout_s=FLOOR_GRACE_S)
    return RunRecord(round_no, arm, run_id, plan.reports_dir / run_id, rc, log, beside, interrupted)


def _wait(proc: subprocess.Popen[bytes], timeout_s: float) -> tuple[int, bool]:
    """The run's exit code, and whether Ctrl-C came meanwhile. A Ctrl-C at a terminal reaches Locust too, which
    stops and writes its folder: it gets :data:`STOP_GRACE_S` for that, then SIGTERM, then SIGKILL."""
    try:
        return proc.wait(timeout=timeout_s), False
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(), False
    except KeyboardInterrupt:
        sys.stdout.write("   interrupted: waiting for the run to write its folder (Ctrl-C again to give up)\n")
        for stop in (proc.terminate, proc.kill):
            try:
                return proc.wait(timeout=STOP_GRACE_S), True
            except subprocess.TimeoutExpired:
                stop()
        return proc.wait(), True


def run_rounds(plan: Plan) -> list[RunRecord]:
    """Every arm ``plan.repeats`` times in interleaved order; ``rounds.json`` rewritten after each run."""
    order = interleaved_order([a.label for a in plan.arms], plan.repeats)
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    by_label = {a.label: a for a in plan.arms}
    need_server = any(a.target is None for a in plan.arms)
    shared = start_server(plan, plan.arms) if need_server and not plan.server_per_run else None
    records: list[RunRecord] = []
    try:
        for round_no, labels in enumerate(order, start=1):
            for label in labels:
                arm = by_label[label]
                own = start_server(plan, [arm]) if arm.target is None and plan.server_per_run else None
                try:
                    records.append(run_one(plan, arm, round_no, own or shared))
                finally:
                    if own is not None:
                        own.stop()
                write_rounds(plan, order, records)
                if records[-1].interrupted:
                    return records
    finally:
        if shared is not None:
            shared.stop()
    return records


def write_rounds(plan: Plan, order: list[list[str]], records: Sequence[RunRecord]) -> None:
    data = {
        "schema_version": 1,
        "id": plan.comparison_id,
        "arms": [
            {"arm": a.label, "transport": a.transport, "target": redact_url(a.target) if a.target else None}
            for a in plan.arms
        ],
        "order": order,
        "repeats": plan.repeats,
        "warmup_s": plan.warmup_s,
        "users": plan.users,
        "run_time": plan.run_time,
        "server_args": [redact_url(a) if "://" in a else a for a in plan.server_args],
        "interrupted": any(r.interrupted for r in records),
        "runs": [r.to_json() for r in records],
    }
    write_text(plan.out_dir / ROUNDS_FILE, json.dumps(data, indent=1) + "\n")


__all__ = [
    "ROUNDS_FILE",
    "Arm",
    "Plan",
    "RunRecord",
    "interval_s",
    "locust_command",
    "offered_load",
    "parse_arms",
    "run_one",
    "run_rounds",
    "start_server",
    "write_rounds",
]
