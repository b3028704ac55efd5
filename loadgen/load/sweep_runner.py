"""Running a load sweep: the listed steps, interleaved over the transports, then (``--find``) bisection probes.

The listed steps go in rising load, each load over every transport in turn (rest, grpc, amqp at 10 users, then
at 20, ...), so what else runs on the machine falls on every transport alike. Every transport without a
``--host`` is served by ONE reference server (``loadgen serve`` with a front per transport, started once for the
whole sweep, :func:`start_server`). Each step is a Locust subprocess bounded in time (its length plus
:data:`loadgen.report.transports_runner.STARTUP_MARGIN_S`); a Ctrl-C lets the step under way write its folder,
then the sweep stops and writes what ran. After each step the ``on_step`` callback gets the sweep so far (the
command line rewrites ``sweep.json`` with it).

``--find N``: after the listed steps, up to N more per transport, each at
:func:`loadgen.analysis.knee.next_probe` (geometrically halfway between the highest step that held and the lowest
above it that did not), whole users in the closed model; a transport stops probing once the pair is close.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from loadgen.analysis.knee import Knee, find_knee, next_probe
from loadgen.load.sweep_plan import SweepPlan
from loadgen.load.sweep_step import StepResult, evaluate_step, missing_step
from loadgen.metrics.rundir import SUMMARY_FILE
from loadgen.report.transports_runner import STARTUP_MARGIN_S, _wait
from loadgen.server.launcher import EmbeddedServer, start_server_with_fronts
from loadgen.transports import redact_url


@dataclass
class Sweep:
    """The steps measured so far, per transport."""

    plan: SweepPlan
    steps: dict[str, list[StepResult]] = field(default_factory=dict)
    interrupted: bool = False

    def of(self, transport: str) -> list[StepResult]:
        """``transport``'s steps in rising load."""
        return sorted(self.steps.get(transport, []), key=lambda s: s.load)

    def knee(self, transport: str) -> Knee:
        return find_knee([s.step() for s in self.of(transport)], max_error_rate=self.plan.max_error_rate)

    def add(self, result: StepResult) -> None:
        self.steps.setdefault(result.transport, []).append(result)


def start_server(plan: SweepPlan) -> EmbeddedServer | None:
    """One ``loadgen serve`` with a front for each transport without a ``--host`` (None when all have one)."""
    fronts = {t for t in plan.transports if t not in plan.hosts}
    return start_server_with_fronts(fronts, plan.amqp_url, plan.server_args) if fronts else None


def run_step(plan: SweepPlan, transport: str, load: float, server: EmbeddedServer | None) -> tuple[StepResult, bool]:
    """One step: a headless Locust run of ``load`` over ``transport``, judged; and whether Ctrl-C came."""
    host = plan.hosts.get(transport) or (server.urls[transport] if server is not None else "")
    cmd = plan.locust_command(transport, load, host)
    run_id = plan.run_id(transport, load)
    run_dir = plan.out_dir / run_id
    shown = [redact_url(a) if "://" in a else a for a in cmd[1:]]
    sys.stdout.write(f"== {transport}, {plan.mode} {load:g}: {shlex.join(shown)}\n")
    sys.stdout.flush()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with (plan.out_dir / f"{run_id}.log").open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        rc, interrupted = _wait(proc, plan.warmup_s + plan.step_s + STARTUP_MARGIN_S)
    if not (run_dir / SUMMARY_FILE).exists():
        why = f"no run folder (Locust exit code {rc}); see {run_id}.log"
        return missing_step(transport, load, plan.mode, None, why), interrupted
    result = evaluate_step(
        run_dir,
        transport,
        load,
        plan.mode,
        warmup_s=plan.warmup_s,
        slos=plan.slos if plan.slo_texts else None,
        max_error_rate=plan.max_error_rate,
        lag_limit_ms=plan.lag_limit_ms,
        step_s=plan.step_s,
    )
    held = "holds" if result.holds else "does not hold"
    sys.stdout.write(f"   {result.turns_per_s:.2f} turns/s, error rate {100 * result.error_rate:.2f}%: {held}\n")
    return result, interrupted


def probe_load(plan: SweepPlan, sweep: Sweep, transport: str) -> float | None:
    """The next ``--find`` load for ``transport``, or None when there is none (or it was measured already)."""
    steps = sweep.of(transport)
    probe = next_probe([s.step() for s in steps], max_error_rate=plan.max_error_rate)
    if probe is None:
        return None
    load = float(round(probe)) if plan.mode == "users" else round(probe, 3)
    return None if load <= 0 or any(s.load == load for s in steps) else load


StepRunner = Callable[[SweepPlan, str, float, "EmbeddedServer | None"], tuple[StepResult, bool]]


def run_sweep(
    plan: SweepPlan,
    on_step: Callable[[Sweep], None] | None = None,
    *,
    step_runner: StepRunner = run_step,
) -> Sweep:
    """Every listed step, then the ``--find`` probes; stops after the step under way on Ctrl-C."""
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    sweep = Sweep(plan)
    server = start_server(plan)

    def one(transport: str, load: float) -> bool:
        result, interrupted = step_runner(plan, transport, load, server)
        sweep.add(result)
        sweep.interrupted = interrupted
        if on_step is not None:
            on_step(sweep)
        return interrupted

    try:
        for load in plan.loads:
            for transport in plan.transports:
                if one(transport, load):
                    return sweep
        for _ in range(plan.find_steps):
            probes = [(t, p) for t in plan.transports if (p := probe_load(plan, sweep, t)) is not None]
            if not probes:
                break
            for transport, load in probes:
                if one(transport, load):
                    return sweep
    except KeyboardInterrupt:
        sweep.interrupted = True
        if on_step is not None:
            on_step(sweep)
    finally:
        if server is not None:
            server.stop()
    return sweep


__all__ = ["Sweep", "probe_load", "run_step", "run_sweep", "start_server"]
