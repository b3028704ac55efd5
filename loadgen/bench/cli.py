"""``loadgen bench rest|grpc|amqp|capacity``: side-by-side runs against one reference server.

For a transport: a bare Locust user doing the same streaming calls, then the ConversationUser with no
think time, each in one Locust process (one core) for the same time against the same server (zero step
costs, so the server is never what limits the comparison). Reports turns/s, client CPU per turn (the
Locust process's own CPU time) and the ratio ours/bare in turns per CPU-second; and the server's CPU
per turn. ``capacity``: live conversations one generator process holds at 1-3 s think time before the
generator's lag p99 passes 5 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loadgen.locust_plugin.embedded import EmbeddedServer


ZERO_COST = ["--step-base-us", "0", "--step-per-seq-us", "0", "--prefill-us-per-token", "0", "--max-batch", "4096"]
BARE_FILE = Path(__file__).with_name("bare_users.py")
BARE_CLASSES = {"rest": "BareRestUser", "grpc": "BareGrpcUser", "amqp": "BareAmqpUser"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=["rest", "grpc", "amqp", "capacity"], help="what to benchmark")
    parser.add_argument("-u", "--users", type=int, default=20, help="users per arm (default 20)")
    parser.add_argument("-t", "--seconds", type=int, default=20, help="seconds per arm (default 20)")
    parser.add_argument("--max-tokens", type=int, default=64, help="reply length in tokens (default 64)")
    parser.add_argument("--transport", default="rest", help="transport for `capacity` (default rest)")
    parser.add_argument("--steps", default="250,500,1000,2000", help="user counts tried by `capacity`")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--scenario", default="scenarios/multiturn.py", help="the ConversationUser locustfile")


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _locust(args: list[str], seconds: int, users: int, workdir: Path, host: str) -> dict[str, Any]:
    json_file = workdir / f"stats-{time.monotonic_ns()}"  # Locust appends ".json"
    cmd = [
        sys.executable, "-m", "locust", *args, "--headless", "--only-summary", "--host", host,
        "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--stop-timeout", "5", "--json-file", str(json_file),
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    written = json_file.with_name(json_file.name + ".json")
    stats = json.loads(written.read_text()) if written.exists() else []
    turns = sum(s["num_requests"] for s in stats if s["name"] != "Aggregated")
    failures = sum(s["num_failures"] for s in stats if s["name"] != "Aggregated")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"turns": turns, "failures": failures, "cpu_s": cpu, "rc": proc.returncode, "tail": proc.stderr[-1500:]}


def _arm_row(name: str, r: dict[str, Any], seconds: int) -> str:
    per_turn = r["cpu_s"] / r["turns"] * 1e6 if r["turns"] else float("nan")
    per_cpu = r["turns"] / r["cpu_s"] if r["cpu_s"] else 0.0
    return (
        f"| {name} | {r['turns']} | {r['failures']} | {r['turns'] / seconds:.0f} | {r['cpu_s']:.1f} "
        f"| {per_turn:.0f} | {per_cpu:.0f} |"
    )


def _server(transport: str, args: argparse.Namespace, extra: list[str]) -> EmbeddedServer:
    from loadgen.locust_plugin.embedded import start_embedded_server

    return start_embedded_server(transport, args.amqp_url, [*ZERO_COST, *extra])


def bench_transport(args: argparse.Namespace) -> int:
    transport = args.what
    os.environ["LOADGEN_BENCH_MAX_TOKENS"] = str(args.max_tokens)
    server = _server(transport, args, [])
    host = server.urls[transport]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            s0 = _cpu_of(server.proc.pid)
            bare = _locust(["-f", str(BARE_FILE), BARE_CLASSES[transport]], args.seconds, args.users, work, host)
            s1 = _cpu_of(server.proc.pid)
            ours = _locust(
                ["-f", args.scenario, "--transport", transport, "--think-min", "0", "--think-max", "0",
                 "--max-tokens", str(args.max_tokens), "--reports-dir", str(work / "reports")],
                args.seconds, args.users, work, host,
            )  # fmt: skip
            s2 = _cpu_of(server.proc.pid)
    finally:
        server.stop()
    ratio = (ours["turns"] / ours["cpu_s"]) / (bare["turns"] / bare["cpu_s"]) if bare["turns"] and ours["cpu_s"] else 0
    server_us_bare = (s1 - s0) / bare["turns"] * 1e6 if bare["turns"] else float("nan")
    server_us_ours = (s2 - s1) / ours["turns"] * 1e6 if ours["turns"] else float("nan")
    print(f"### {transport}: {args.users} users, {args.seconds} s per arm, {args.max_tokens} tokens per reply")
    print("| arm | turns | failures | turns/s | client CPU s | client CPU µs/turn | turns per CPU-s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(_arm_row(f"bare Locust user ({transport})", bare, args.seconds))
    print(_arm_row(f"ConversationUser ({transport})", ours, args.seconds))
    print(f"\nratio (ConversationUser / bare, turns per client CPU-second): **{ratio:.2f}x**")
    print(f"server CPU per streamed turn: {server_us_bare:.0f} µs (bare arm), {server_us_ours:.0f} µs (ours)")
    for name, r in (("bare", bare), ("ours", ours)):
        if r["rc"] not in (0, 1) or not r["turns"]:
            print(f"\n{name} arm exited {r['rc']}:\n{r['tail']}", file=sys.stderr)
            return 1
    return 0


def bench_capacity(args: argparse.Namespace) -> int:
    server = _server(args.transport, args, [])
    host = server.urls[args.transport]
    print(f"### capacity: ConversationUser over {args.transport}, think 1-3 s, {args.seconds} s per step")
    print("| users | turns/s | generator lag p50 ms | p99 ms | max ms | e2e p99 ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            for users in (int(u) for u in args.steps.split(",")):
                run_id = f"cap-{users}"
                r = _locust(
                    ["-f", args.scenario, "--transport", args.transport, "--reports-dir", str(work / "reports"),
                     "--run-id", run_id, "--max-tokens", str(args.max_tokens)],
                    args.seconds, users, work, host,
                )  # fmt: skip
                summary = json.loads((work / "reports" / run_id / "summary.json").read_text())
                lag = summary["generator_lag_ms"]
                agg = summary["transports"].get(args.transport, {})
                e2e = agg.get("e2e_ms", {}).get("p99", 0)
                rate = r["turns"] / args.seconds
                print(f"| {users} | {rate:.0f} | {lag['p50']} | {lag['p99']} | {lag['max']} | {e2e} |")
    finally:
        server.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    if args.what == "capacity":
        return bench_capacity(args)
    return bench_transport(args)
