"""``loadgen bench rest|grpc|amqp|capacity|floor|transports``: runs against one reference server, measured by a probe.

For a transport: a bare Locust user doing the same streaming calls and the ConversationUser with no think
time, at the same time (``--apart``: one after the other), each in one Locust process (one core) against the
same server (zero step costs, so the server is never what limits the comparison), over ``--rounds`` rounds.
Reports turns/s, client CPU per turn (each process's own CPU time in a steady-state window) and the ratio
ours/bare in turns per CPU-second, and the server's CPU per turn. ``capacity``: live conversations one
generator process holds at 1-3 s think time, against a server paced like a model (fixed time to first token
and per token), step by step, with the generator's own lag at each step (its p99 should stay under 5 ms).
``transports``: the ConversationUser over several transports at once, client CPU per turn and its ratio to
REST's (:mod:`loadgen.bench.transports_cost`). ``floor``: the TTFT the ConversationUser adds over a bare
blocking-socket client timing the same exact-timing server in the same seconds, per transport
(:mod:`loadgen.bench.floor_probe`).

An arm that recorded nothing (its process failed, its probe never reached the end of its measured window, no
turn in the window, or every turn failed) never becomes a ratio: :func:`arm_problem` says why, the round is run
again (up to :data:`TRIES` times), and a round that never measures both arms fails the bench with that reason
(exit 1), with no ratio printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadgen.bench import floor_probe
from loadgen.errors import ConfigError
from loadgen.server.config import LOCAL_AMQP_URL

if TYPE_CHECKING:
    from loadgen.locust_plugin.embedded import EmbeddedServer


ZERO_COST = ["--step-base-us", "0", "--step-per-seq-us", "0", "--prefill-us-per-token", "0", "--max-batch", "4096"]
BARE_FILE = Path(__file__).with_name("bare_users.py")
PROBE_FILE = Path(__file__).with_name("probe.py")
DEFAULT_SCENARIO = Path("scenarios") / "multiturn.py"
WARMUP_S = 3
CAPACITY_WARMUP_S = 10  # think time bunches the first turns of users that all started together
BARE_CLASSES = {"rest": "BareRestUser", "grpc": "BareGrpcUser", "amqp": "BareAmqpUser"}
#: Seconds a run goes on past warm-up + measured window (+ spawning): the probe's window must close before it.
RUN_MARGIN_S = 5
#: Tries of a round whose arms did not both measure something.
TRIES = 3


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "what", choices=["rest", "grpc", "amqp", "capacity", "floor", "transports"], help="what to benchmark"
    )
    parser.add_argument("-u", "--users", type=int, default=None, help="users per arm (default 20; 10 for `floor`)")
    parser.add_argument(
        "-t", "--seconds", type=int, default=None, help="measured seconds per arm (default 15; 20 for `floor`)"
    )
    parser.add_argument(
        "--max-tokens", type=int, default=None, help="reply length in tokens (default 64; 20 for `floor`)"
    )
    parser.add_argument(
        "--transports",
        default=",".join(floor_probe.TRANSPORTS),
        help="transports `floor` probes, or `transports` runs side by side (REST always, as the baseline), "
        "comma-separated (default %(default)s)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="bare/ours alternations per transport (default 3)")
    parser.add_argument(
        "--apart",
        action="store_true",
        help="run the two arms one after the other in each round, not at the same time (the default, "
        "which lets whatever else runs on a shared machine hit both arms alike)",
    )
    parser.add_argument("--transport", default="rest", help="transport for `capacity` (default rest)")
    parser.add_argument(
        "--steps", default="500,1000,1500,2000,3000", help="user counts tried by `capacity` (comma-separated)"
    )
    parser.add_argument(
        "--ttft-ms",
        type=float,
        default=None,
        help="pace the server like a model: its time to first token (default: 0 for a transport, whose replies "
        "then come as fast as the server can send them; 200 for `capacity`)",
    )
    parser.add_argument(
        "--itl-ms",
        type=float,
        default=None,
        help="pace the server: its time per token after the first (default: 0 for a transport; 20 for `capacity`)",
    )
    parser.add_argument(
        "--amqp-url", default=LOCAL_AMQP_URL, help="broker of the server's AMQP front (default %(default)s)"
    )
    parser.add_argument(
        "--scenario",
        default=None,
        help="the ConversationUser locustfile (default: the project's "
        "scenarios/multiturn.py, from the current folder or beside the installed package)",
    )


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


@dataclass
class _Arm:
    proc: subprocess.Popen[bytes]
    json_file: Path
    probe_out: Path
    stderr_file: Path
    deadline: float


def _start_locust(
    args: list[str],
    seconds: int,
    users: int,
    workdir: Path,
    host: str,
    server_pid: int | None = None,
    *,
    warmup_s: int = WARMUP_S,
    spawn_rate: int | None = None,
) -> _Arm:
    """Start one headless Locust process with the probe beside its locustfile: ``seconds`` of measured
    steady state after a warm-up."""
    stamp = time.monotonic_ns()
    json_file = workdir / f"stats-{stamp}"  # Locust appends ".json"
    probe_out = workdir / f"probe-{stamp}.json"
    stderr_file = workdir / f"stderr-{stamp}.txt"
    files = f"{args[1]},{PROBE_FILE}"
    run_time = warmup_s + seconds + RUN_MARGIN_S + users // (spawn_rate or users)
    cmd = [
        sys.executable, "-m", "locust", "-f", files, *args[2:], "--headless", "--only-summary", "--host", host,
        "-u", str(users), "-r", str(spawn_rate or users), "-t", f"{run_time}s", "--stop-timeout", "5",
        "--json-file", str(json_file),
    ]  # fmt: skip
    env = dict(
        os.environ,
        LOADGEN_BENCH_PROBE_OUT=str(probe_out),
        LOADGEN_BENCH_WARMUP_S=str(warmup_s),
        LOADGEN_BENCH_MEASURE_S=str(seconds),
        LOADGEN_BENCH_SERVER_PID=str(server_pid or ""),
    )
    with stderr_file.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
    return _Arm(proc, json_file, probe_out, stderr_file, time.monotonic() + run_time + 120)


def _finish_locust(arm: _Arm) -> dict[str, Any]:
    """Wait for the arm; its window's figures plus the whole process's, for reference."""
    try:
        arm.proc.wait(timeout=max(1.0, arm.deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        arm.proc.kill()
        arm.proc.wait()
    written = arm.json_file.with_name(arm.json_file.name + ".json")
    stats = json.loads(written.read_text()) if written.exists() else []
    window = json.loads(arm.probe_out.read_text()) if arm.probe_out.exists() else {}
    return {
        "window": bool(window.get("wall_s")),
        "turns": window.get("requests", 0),
        "failures": window.get("failures", 0),
        "cpu_s": window.get("cpu_s", 0.0),
        "wall_s": window.get("wall_s", 0.0),
        "server_cpu_s": window.get("server_cpu_s"),
        "generator_lag_ms": window.get("generator_lag_ms"),
        "whole_turns": sum(s["num_requests"] for s in stats if s["name"] != "Aggregated"),
        "whole_cpu_s": window.get("whole_cpu_s", 0.0),
        "rc": arm.proc.returncode,
        "tail": arm.stderr_file.read_text(errors="replace")[-1500:],
    }


def arm_problem(r: dict[str, Any]) -> str | None:
    """Why an arm's figures cannot make a ratio, or None when they can."""
    if r.get("rc") not in (0, 1):
        return f"its Locust process exited with code {r.get('rc')}"
    if not r.get("window"):
        return (
            "its probe recorded no steady-state window: the run ended before warm-up plus the measured seconds had "
            "passed after the users spawned (a slow start on a busy machine?)"
        )
    if not r.get("turns"):
        return "no turn finished in its measured window"
    if r.get("failures", 0) >= r["turns"]:
        return f"every one of its {r['turns']} turns in the window failed"
    if not r.get("cpu_s"):
        return "no CPU time was measured in its window"
    return None


def measure_rounds(
    rounds: int, run_round: Callable[[], tuple[dict[str, Any], dict[str, Any]]], tries: int = TRIES
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str | None]:
    """(bare runs, our runs, None), or the reason the bench failed: a round is run again while an arm recorded
    nothing, up to ``tries`` times; each retry is said on stderr."""
    bare_runs: list[dict[str, Any]] = []
    our_runs: list[dict[str, Any]] = []
    for n in range(1, rounds + 1):
        for attempt in range(1, tries + 1):
            bare, ours = run_round()
            problems = [f"{name} arm: {p}" for name, r in (("bare", bare), ("ours", ours)) if (p := arm_problem(r))]
            if not problems:
                bare_runs.append(bare)
                our_runs.append(ours)
                break
            sys.stderr.write(f"round {n}, try {attempt} of {tries}: {'; '.join(problems)}\n")
            if attempt == tries:
                tail = (bare if arm_problem(bare) else ours)["tail"]
                why = "; ".join(problems)
                return bare_runs, our_runs, f"round {n} measured nothing in {tries} tries: {why}\n{tail}"
    return bare_runs, our_runs, None


def _locust(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return _finish_locust(_start_locust(*args, **kwargs))


def _per_cpu(turns: float, cpu_s: float) -> float:
    return turns / cpu_s if cpu_s else 0.0


def _arm_row(name: str, r: dict[str, Any], server_turns: int | None = None) -> str:
    """One arm's row; the server's CPU is spread over ``server_turns`` (both arms' turns when they ran at
    the same time against the one server), by default this arm's."""
    per_turn = r["cpu_s"] / r["turns"] * 1e6 if r["turns"] else float("nan")
    turns = server_turns or r["turns"]
    server = r["server_cpu_s"] / turns * 1e6 if turns and r["server_cpu_s"] is not None else float("nan")
    rate = r["turns"] / r["wall_s"] if r["wall_s"] else 0.0
    return (
        f"| {name} | {r['turns']} | {r['failures']} | {rate:.0f} | {r['cpu_s']:.2f} "
        f"| {per_turn:.0f} | {_per_cpu(r['turns'], r['cpu_s']):.0f} | {server:.0f} "
        f"| {_per_cpu(r['whole_turns'], r['whole_cpu_s']):.0f} |"
    )


def _server(transport: str, args: argparse.Namespace, extra: list[str]) -> EmbeddedServer:
    from loadgen.locust_plugin.embedded import start_embedded_server

    return start_embedded_server(transport, args.amqp_url, [*ZERO_COST, *extra])


def _sum_arms(runs: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {"rc": max(r["rc"] for r in runs), "tail": runs[-1]["tail"]}
    for key in ("turns", "failures", "cpu_s", "wall_s", "whole_turns", "whole_cpu_s"):
        total[key] = sum(r[key] for r in runs)
    server = [r["server_cpu_s"] for r in runs]
    total["server_cpu_s"] = sum(server) if None not in server else None
    return total


def bench_transport(args: argparse.Namespace) -> int:
    """Bare and ConversationUser arms, alternated ``--rounds`` times so that a noisy neighbour on a shared
    machine hits both arms alike; the ratio is taken over the sums, the per-round ratios show the spread."""
    transport = args.what
    resolve_defaults(args)
    os.environ["LOADGEN_BENCH_MAX_TOKENS"] = str(args.max_tokens)
    server = _server(transport, args, _pacing(args, 0.0, 0.0))
    host = server.urls[transport]
    pid = server.proc.pid
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            bare_args = ["-f", str(BARE_FILE), BARE_CLASSES[transport]]
            our_args = [
                "-f", args.scenario, "--transport", transport, "--think-min", "0", "--think-max", "0",
                "--max-tokens", str(args.max_tokens), "--reports-dir", str(work / "reports"),
            ]  # fmt: skip

            def run_round() -> tuple[dict[str, Any], dict[str, Any]]:
                if not args.apart:  # both arms at once: whatever else runs on the machine hits both alike
                    arms = [_start_locust(a, args.seconds, args.users, work, host, pid) for a in (bare_args, our_args)]
                    return _finish_locust(arms[0]), _finish_locust(arms[1])
                bare = _locust(bare_args, args.seconds, args.users, work, host, pid)
                return bare, _locust(our_args, args.seconds, args.users, work, host, pid)

            bare_runs, our_runs, failure = measure_rounds(args.rounds, run_round)
    finally:
        server.stop()
    if failure is not None:
        print(f"bench {transport}: FAILED, no ratio: {failure}", file=sys.stderr)
        return 1
    return _print_transport_bench(args, bare_runs, our_runs)


def _print_transport_bench(
    args: argparse.Namespace, bare_runs: list[dict[str, Any]], our_runs: list[dict[str, Any]]
) -> int:
    """The table of a transport bench, the ratio over the sums and per round (every arm measured something:
    :func:`measure_rounds`)."""
    transport = args.what
    bare, ours = _sum_arms(bare_runs), _sum_arms(our_runs)
    ratio = _per_cpu(ours["turns"], ours["cpu_s"]) / _per_cpu(bare["turns"], bare["cpu_s"])
    rounds = [
        _per_cpu(o["turns"], o["cpu_s"]) / _per_cpu(b["turns"], b["cpu_s"])
        for b, o in zip(bare_runs, our_runs, strict=True)
    ]
    rates = [_per_cpu(r["whole_turns"], r["whole_cpu_s"]) for r in (bare, ours)]
    whole = f"{rates[1] / rates[0]:.2f}x" if all(rates) else "not measured (a process wrote no stats file)"
    how = "bare then ours" if args.apart else "bare and ours at the same time"
    paced = (
        f"paced {args.ttft_ms:g} ms to the first token then {args.itl_ms:g} ms per token"
        if args.ttft_ms or args.itl_ms
        else "as fast as the server sends them"
    )
    print(
        f"### {transport}: {args.users} users per arm, {args.max_tokens}-token replies {paced}; {args.rounds} "
        f"rounds of {how}, each {WARMUP_S} s warm-up then {args.seconds} s measured (sums below)"
    )
    print(
        "| arm | turns | failures | turns/s | client CPU s | client CPU µs/turn | turns per CPU-s "
        "| server CPU µs/turn | whole process: turns per CPU-s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    both = None if args.apart else bare["turns"] + ours["turns"]
    print(_arm_row(f"bare Locust user ({transport})", bare, both))
    print(_arm_row(f"ConversationUser ({transport})", ours, both))
    print(f"\nratio (ConversationUser / bare, turns per client CPU-second, steady state): **{ratio:.2f}x**")
    print("per round: " + ", ".join(f"{r:.2f}x" for r in rounds))
    print(f"whole processes (start-up and end-of-run reports included): {whole}")
    return 0


def _pacing(args: argparse.Namespace, ttft_ms: float, itl_ms: float) -> list[str]:
    """Server options for the pacing asked for (mode defaults where not given): fixed timing, or none."""
    args.ttft_ms = ttft_ms if args.ttft_ms is None else args.ttft_ms
    args.itl_ms = itl_ms if args.itl_ms is None else args.itl_ms
    if not (args.ttft_ms or args.itl_ms):
        return []
    return ["--fixed", "--fixed-ttft-ms", str(args.ttft_ms), "--fixed-itl-ms", str(args.itl_ms)]


def bench_capacity(args: argparse.Namespace) -> int:
    resolve_defaults(args)
    server = _server(args.transport, args, _pacing(args, 200.0, 20.0))
    host = server.urls[args.transport]
    print(
        f"### capacity: ConversationUser over {args.transport}, think 1-3 s, {args.max_tokens}-token replies paced "
        f"{args.ttft_ms:g} ms to the first token then {args.itl_ms:g} ms per token, {CAPACITY_WARMUP_S} s warm-up "
        f"then {args.seconds} s measured per step, one generator process"
    )
    print("| users | turns/s | client CPU % | generator lag p50 ms | p99 ms | max ms | e2e p99 ms | failures "
          "| checkpoint CPU ms (% of a core) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            for users in (int(u) for u in args.steps.split(",")):
                run_id = f"cap-{users}"
                r = _locust(
                    ["-f", args.scenario, "--transport", args.transport, "--reports-dir", str(work / "reports"),
                     "--run-id", run_id, "--max-tokens", str(args.max_tokens)],
                    args.seconds, users, work, host, server.proc.pid,
                    warmup_s=CAPACITY_WARMUP_S, spawn_rate=max(50, users // 5),
                )  # fmt: skip
                summary = json.loads((work / "reports" / run_id / "summary.json").read_text())
                agg = summary["transports"].get(args.transport, {})
                e2e = agg.get("e2e_ms", {}).get("p99", 0)
                lag = r["generator_lag_ms"] or {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
                wall = r["wall_s"] or float("nan")
                print(
                    f"| {users} | {r['turns'] / wall:.0f} | {100 * r['cpu_s'] / wall:.0f} | {lag['p50']:.2f} "
                    f"| {lag['p99']:.2f} | {lag['max']:.2f} | {e2e} | {r['failures']} "
                    f"| {checkpoint_cost(summary['run'].get('checkpoints') or {})} |"
                )
    finally:
        server.stop()
    return 0


def checkpoint_cost(checkpoints: dict[str, Any]) -> str:
    """A run's checkpoints (summary.json's ``run.checkpoints``): their mean CPU per write, and that as a share of a
    core at their interval; ``-`` when none was written."""
    cpu_ms, interval_s = checkpoints.get("cpu_mean_ms"), checkpoints.get("interval_s")
    if cpu_ms is None or not interval_s:
        return "-"
    return f"{cpu_ms:.1f} ({cpu_ms / (10.0 * interval_s):.1f}%)"


def resolve_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill in ``-u``, ``-t`` and ``--max-tokens`` where not given, by mode (``floor`` has its own)."""
    floor = args.what == "floor"
    if args.users is None:
        args.users = floor_probe.USERS if floor else 20
    if args.seconds is None:
        args.seconds = floor_probe.SECONDS if floor else 15
    if args.max_tokens is None:
        args.max_tokens = floor_probe.MAX_TOKENS if floor else 64
    args.scenario = str(scenario_path(args.scenario))
    return args


def scenario_path(given: str | None) -> Path:
    """The locustfile the ConversationUser arms run: ``--scenario``, or the project's ``scenarios/multiturn.py`` in
    the current folder or beside the package (an editable install); a ConfigError (one line) before anything
    starts when there is none."""
    if given is not None:
        path = Path(given)
        if not path.is_file():
            raise ConfigError(f"--scenario {given}: no such file; give the path of a locustfile")
        return path.resolve()
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = root / DEFAULT_SCENARIO
        if candidate.is_file():
            return candidate
    raise ConfigError(f"no {DEFAULT_SCENARIO} here or beside the package: run from the project's folder or give "
                      "--scenario PATH")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    resolve_defaults(args)
    if args.what == "floor":
        return floor_probe.run_floor(args)
    if args.what == "capacity":
        return bench_capacity(args)
    if args.what == "transports":
        from loadgen.bench import transports_cost

        return transports_cost.run(args)
    return bench_transport(args)
