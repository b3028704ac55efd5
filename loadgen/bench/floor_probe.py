"""``loadgen bench floor``: what chat-loadgen adds to TTFT over the timing floor, per transport.

Against one exact-timing reference server (``--fixed``: first token 50 ms after it received the request, then
one every 10 ms), the ConversationUser (``--users``, 10 by default, with its dialogues' own think time) and the
bare timing floor (:mod:`loadgen.bench.floor`: a blocking socket for REST, plain grpcio for gRPC, aio-pika on a
bare loop for AMQP, one turn at a time in a process of its own) run at the same time, so the way back and
whatever else runs on the machine are in both figures. Ours is read from the run's ``summary.json`` (turns
after the warm-up), the floor's from its samples after the same warm-up; the added TTFT is ours - floor at p50,
against the target of :data:`TARGET_ADDED_MS`.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadgen.errors import ConfigError

TRANSPORTS = ("rest", "grpc", "amqp")
FIXED_TTFT_MS = 50.0
FIXED_ITL_MS = 10.0
FIXED_SERVER = ["--fixed", "--fixed-ttft-ms", f"{FIXED_TTFT_MS:g}", "--fixed-itl-ms", f"{FIXED_ITL_MS:g}"]
#: Issue 13's target: the TTFT p50 chat-loadgen adds over the floor, in milliseconds.
TARGET_ADDED_MS = 0.3
#: Defaults of this mode (``-u``, ``-t``, ``--max-tokens`` not given).
USERS = 10
SECONDS = 20
MAX_TOKENS = 20


def parse_transports(text: str) -> tuple[str, ...]:
    """``--transports`` as a tuple (order kept, repeats dropped); a ConfigError naming what is allowed."""
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in TRANSPORTS]
    if not names or unknown:
        given = ", ".join(unknown) if unknown else "nothing"
        raise ConfigError(
            f"--transports {text!r}: {given} is not a transport of the floor probe; name one or more of "
            f"{', '.join(TRANSPORTS)}, comma-separated"
        )
    return names


def check_args(users: int, seconds: int, max_tokens: int) -> None:
    """The probe's sizes, checked before any server starts."""
    if users < 1:
        raise ConfigError(f"-u/--users {users}: the floor probe needs at least 1 user; give -u 10 or so")
    if seconds < 2:
        raise ConfigError(f"-t/--seconds {seconds}: the floor probe needs at least 2 measured seconds; give -t 20")
    if max_tokens < 2:
        raise ConfigError(f"--max-tokens {max_tokens}: a streamed reply needs at least 2 tokens; give --max-tokens 20")


def quantile(samples: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile of ``samples`` (NaN when there are none)."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass(frozen=True)
class FloorResult:
    """One transport's figures: the floor's TTFT samples and our run's TTFT block (milliseconds)."""

    transport: str
    floor_ms: list[float]
    floor_failures: int
    ours: dict[str, Any]
    ours_failures: int

    @property
    def added_p50_ms(self) -> float:
        return float(self.ours["p50"]) - quantile(self.floor_ms, 0.5)

    @property
    def met(self) -> bool:
        return self.added_p50_ms <= TARGET_ADDED_MS

    def row(self) -> str:
        floor50, floor99 = quantile(self.floor_ms, 0.5), quantile(self.floor_ms, 0.99)
        return (
            f"| {self.transport} | {floor50:.2f} | {floor99:.2f} | {len(self.floor_ms)} | {self.ours['p50']:.2f} "
            f"| {self.ours['p99']:.2f} | {self.ours['count']} | **{self.added_p50_ms:+.2f}** "
            f"| {'met' if self.met else 'not met'} |"
        )


def problem(floor: dict[str, Any], ours: dict[str, Any] | None) -> str | None:
    """Why a transport's figures cannot make an added TTFT, or None when they can."""
    if not floor.get("ttft_ms"):
        return f"the floor timed no turn ({floor.get('failures', 0)} failed): {floor.get('error', '')}".rstrip(": ")
    if not ours or not ours.get("count") or ours.get("p50") is None:
        return "the ConversationUser run recorded no TTFT after its warm-up"
    return None


def _run_floor_process(
    transport: str, url: str, delay_s: float, seconds: int, max_tokens: int
) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "loadgen.bench.floor", "--transport", transport, "--url", url,
           "--duration", str(seconds), "--delay", f"{delay_s:g}", "--max-tokens", str(max_tokens)]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _floor_output(proc: subprocess.Popen[str], timeout_s: float) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    if proc.returncode != 0 or not out.strip():
        return {"ttft_ms": [], "failures": 0, "error": f"exit {proc.returncode}: {err[-800:]}"}
    result: dict[str, Any] = json.loads(out)
    return result


def probe_transport(transport: str, args: argparse.Namespace, work: Path) -> FloorResult | str:
    """Our run and the floor at the same time against one fixed-timing server; the result or why there is none."""
    from loadgen.bench import cli

    server = cli._server(transport, args, FIXED_SERVER)
    try:
        url = server.urls[transport]
        run_id = f"floor-{transport}"
        our_args = [
            "-f", args.scenario, "--transport", transport, "--max-tokens", str(args.max_tokens),
            "--reports-dir", str(work / "reports"), "--run-id", run_id, "--warmup", f"{cli.WARMUP_S}s",
        ]  # fmt: skip
        floor_proc = _run_floor_process(transport, url, cli.WARMUP_S + 1, args.seconds, args.max_tokens)
        arm = cli._start_locust(our_args, args.seconds, args.users, work, url, server.proc.pid)
        ours_arm = cli._finish_locust(arm)
        floor = _floor_output(floor_proc, args.seconds + 60)
    finally:
        server.stop()
    summary_file = work / "reports" / run_id / "summary.json"
    ours: dict[str, Any] | None = None
    if summary_file.exists():
        row = json.loads(summary_file.read_text())["transports"].get(transport, {})
        ours = row.get("ttft_ms")
    why = problem(floor, ours)
    if why is not None or ours is None:
        return f"{why}; run exit {ours_arm['rc']}: {ours_arm['tail'][-800:]}"
    return FloorResult(transport, floor["ttft_ms"], int(floor.get("failures", 0)), ours, ours_arm["failures"])


def run_floor(args: argparse.Namespace) -> int:
    """The floor probe over ``--transports``: one table, exit 1 when a transport measured nothing."""
    try:
        transports = parse_transports(args.transports)
        check_args(args.users, args.seconds, args.max_tokens)
    except ConfigError as exc:
        print(f"loadgen bench floor: {exc}", file=sys.stderr)
        return 2
    print(
        f"### floor: ConversationUser at {args.users} users (its dialogues' think time) and the bare floor client "
        f"(one turn at a time) at the same time against one server (`--fixed`: {FIXED_TTFT_MS:g} ms to the first "
        f"token, then {FIXED_ITL_MS:g} ms per token), {args.max_tokens}-token replies, {args.seconds} s after a "
        f"{_warmup_s()} s warm-up"
    )
    print(
        "| transport | floor TTFT p50 ms | floor p99 ms | floor turns | ours TTFT p50 ms | ours p99 ms | our turns "
        f"| added p50 ms | <= {TARGET_ADDED_MS} ms |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for transport in transports:
            result = probe_transport(transport, args, Path(tmp))
            if isinstance(result, str):
                failed.append(transport)
                print(f"| {transport} | - | - | - | - | - | - | not measured | - |")
                print(f"bench floor {transport}: FAILED: {result}", file=sys.stderr)
            else:
                print(result.row())
    return 1 if failed else 0


def _warmup_s() -> int:
    from loadgen.bench import cli

    return cli.WARMUP_S
