"""``loadgen bench transports``: client CPU per turn of the ConversationUser over several transports at once.

One reference server with zero step costs serves every front asked for (REST always: it is the baseline); one
headless Locust process per transport runs the ConversationUser (no think time) against it, all at the same time,
so whatever else runs on a shared machine hits every transport alike. Each process carries the bench probe
(:mod:`loadgen.bench.probe`): its CPU time and turns over a steady-state window. Over ``--rounds`` rounds it
prints each transport's client CPU µs per turn and its ratio to REST's (per round and over the sums), and the
server's CPU per turn (all transports' turns together).

A transport's arm that recorded nothing (:func:`loadgen.bench.cli.arm_problem`) never becomes a figure or a
ratio: its round is run again (up to :data:`loadgen.bench.cli.TRIES` times); a round that still misses an arm
counts for none of its transports, and a transport without a measured round is "not measured" (exit 1).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen.errors import ConfigError

#: Transports this mode runs (each needs a front of the reference server).
TRANSPORTS = ("rest", "grpc", "amqp")
#: What every other transport is compared with.
BASELINE = "rest"


def parse_transports(text: str) -> tuple[str, ...]:
    """``--transports``: REST first (the baseline, added when not named), then the others in the order given."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in TRANSPORTS]
    if unknown:
        raise ConfigError(
            f"--transports {text!r}: {', '.join(unknown)} is not a transport of `bench transports`; name one or "
            f"more of {', '.join(TRANSPORTS)}, comma-separated"
        )
    others = [name for name in dict.fromkeys(names) if name != BASELINE]
    if not others:
        raise ConfigError(f"--transports {text!r}: name at least one transport to compare with {BASELINE}")
    return (BASELINE, *others)


def cpu_us_per_turn(arm: dict[str, Any]) -> float | None:
    """Client CPU µs per turn of a measured arm; None for an arm that cannot give one."""
    from loadgen.bench.cli import arm_problem

    if arm_problem(arm) is not None:
        return None
    return float(arm["cpu_s"]) / int(arm["turns"]) * 1e6


def ratio_to_baseline(arm: dict[str, Any], baseline: dict[str, Any]) -> float | None:
    """CPU per turn of ``arm`` over the baseline's (``1.2`` = 20% more CPU per turn); None unless both measured."""
    ours, base = cpu_us_per_turn(arm), cpu_us_per_turn(baseline)
    if ours is None or base is None or base <= 0:
        return None
    return ours / base


def server_us_per_turn(arms: Sequence[dict[str, Any]]) -> float | None:
    """The server's CPU per turn over one round: its CPU rate (the mean over the arms' windows, which overlap)
    over the turn rate of every arm together; None when an arm lacks a figure."""
    rates, turn_rates = [], 0.0
    for arm in arms:
        if cpu_us_per_turn(arm) is None or arm.get("server_cpu_s") is None or not arm.get("wall_s"):
            return None
        rates.append(float(arm["server_cpu_s"]) / float(arm["wall_s"]))
        turn_rates += int(arm["turns"]) / float(arm["wall_s"])
    if not rates or not turn_rates:
        return None
    return sum(rates) / len(rates) / turn_rates * 1e6


@dataclass
class Results:
    """Measured rounds: each a dict transport -> arm (every arm of a kept round measured something)."""

    transports: tuple[str, ...]
    rounds: list[dict[str, dict[str, Any]]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def summed(self, transport: str) -> dict[str, Any] | None:
        from loadgen.bench.cli import _sum_arms

        runs = [r[transport] for r in self.rounds]
        if not runs:
            return None
        return {**_sum_arms(runs), "window": all(r.get("window") for r in runs)}

    def ratio(self, transport: str) -> float | None:
        mine, base = self.summed(transport), self.summed(BASELINE)
        return ratio_to_baseline(mine, base) if mine is not None and base is not None else None

    def round_ratios(self, transport: str) -> list[float | None]:
        return [ratio_to_baseline(r[transport], r[BASELINE]) for r in self.rounds]


def measure(
    transports: tuple[str, ...],
    rounds: int,
    run_round: Callable[[], dict[str, dict[str, Any]]],
    tries: int | None = None,
) -> Results:
    """Run ``rounds`` rounds; a round with an arm that measured nothing is run again up to ``tries`` times, then
    left out (said on stderr and in :attr:`Results.failures`)."""
    from loadgen.bench.cli import TRIES, arm_problem

    results = Results(transports)
    for n in range(1, rounds + 1):
        for attempt in range(1, (tries or TRIES) + 1):
            arms = run_round()
            problems = [f"{t}: {p}" for t in transports if (p := arm_problem(arms.get(t, {"rc": None}))) is not None]
            if not problems:
                results.rounds.append(arms)
                break
            sys.stderr.write(f"round {n}, try {attempt}: {'; '.join(problems)}\n")
            if attempt == (tries or TRIES):
                bad = next(t for t in transports if arm_problem(arms.get(t, {"rc": None})) is not None)
                tail = arms.get(bad, {}).get("tail", "")
                results.failures.append(f"round {n} measured nothing in {attempt} tries: {'; '.join(problems)}\n{tail}")
    return results


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "not measured" if value is None else f"{value:{spec}}{suffix}"


def report(results: Results, args: argparse.Namespace) -> tuple[list[str], int]:
    """The table's lines, and the exit code (1 when a transport has no measured round)."""
    lines = [
        f"### transports: ConversationUser over {', '.join(results.transports)} at the same time, one Locust process "
        f"each, {args.users} users each, no think time, {args.max_tokens}-token replies as fast as the server sends "
        f"them; {len(results.rounds)} of {args.rounds} rounds measured, each {_warmup_s()} s warm-up then "
        f"{args.seconds} s measured (sums below)",
        "| transport | turns | failures | turns/s | client CPU s | client CPU µs/turn | ratio to rest (CPU per turn) "
        "| per round |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for transport in results.transports:
        arm = results.summed(transport)
        if arm is None:
            lines.append(f"| {transport} | - | - | - | - | - | not measured | - |")
            continue
        rate = arm["turns"] / arm["wall_s"] if arm["wall_s"] else 0.0
        per_round = ", ".join(_fmt(r, ".2f", "x") for r in results.round_ratios(transport))
        lines.append(
            f"| {transport} | {arm['turns']} | {arm['failures']} | {rate:.0f} | {arm['cpu_s']:.2f} "
            f"| {_fmt(cpu_us_per_turn(arm), ',.0f')} | **{_fmt(results.ratio(transport), '.2f', 'x')}** "
            f"| {per_round} |"
        )
    servers = [server_us_per_turn(list(r.values())) for r in results.rounds]
    lines.append(
        "\nserver CPU µs per turn (all transports' turns), per round: " + (", ".join(_fmt(s, ",.0f") for s in servers)
                                                                          or "not measured")
    )  # fmt: skip
    return lines, 1 if not results.rounds else 0


def _warmup_s() -> int:
    from loadgen.bench import cli

    return cli.WARMUP_S


def server_args(transports: Sequence[str], amqp_url: str) -> list[str]:
    """The reference server's options for the fronts beyond REST's (the launcher's command gives REST's)."""
    import secrets

    extra: list[str] = []
    if "grpc" in transports:
        extra += ["--grpc-port", "0"]
    if "amqp" in transports:
        # a queue of its own, so concurrent runs on one broker never take each other's requests
        extra += ["--amqp-url", amqp_url, "--amqp-queue", f"loadgen.chat.requests.{secrets.token_hex(4)}"]
    return extra


def run(args: argparse.Namespace) -> int:
    """``loadgen bench transports``: the arms at once, ``--rounds`` times; the table on stdout."""
    import os

    from loadgen.bench import cli
    from loadgen.locust_plugin.embedded import start_embedded_server

    try:
        transports = parse_transports(args.transports)
    except ConfigError as exc:
        print(f"loadgen bench transports: {exc}", file=sys.stderr)
        return 2
    os.environ["LOADGEN_BENCH_MAX_TOKENS"] = str(args.max_tokens)
    server = start_embedded_server(BASELINE, args.amqp_url, [*cli.ZERO_COST, *server_args(transports, args.amqp_url)])
    try:
        missing = [t for t in transports if t not in server.urls]
        if missing:
            print(f"loadgen bench transports: the server offers no {', '.join(missing)} front", file=sys.stderr)
            return 1
        pid = server.proc.pid
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)

            def arm_args(transport: str) -> list[str]:
                return [
                    "-f", args.scenario, "--transport", transport, "--think-min", "0", "--think-max", "0",
                    "--max-tokens", str(args.max_tokens), "--reports-dir", str(work / "reports"),
                ]  # fmt: skip

            def run_round() -> dict[str, dict[str, Any]]:
                started = {
                    t: cli._start_locust(arm_args(t), args.seconds, args.users, work, server.urls[t], pid)
                    for t in transports
                }
                return {t: cli._finish_locust(arm) for t, arm in started.items()}

            results = measure(transports, args.rounds, run_round)
    finally:
        server.stop()
    lines, code = report(results, args)
    print("\n".join(lines))
    for failure in results.failures:
        print(f"bench transports: {failure}", file=sys.stderr)
    return code


__all__ = [
    "BASELINE",
    "TRANSPORTS",
    "Results",
    "cpu_us_per_turn",
    "measure",
    "parse_transports",
    "ratio_to_baseline",
    "report",
    "run",
    "server_args",
    "server_us_per_turn",
]
