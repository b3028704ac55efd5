"""The contract under gevent, as Locust runs a transport: a process of its own, monkey-patched before any import.

:func:`check_under_gevent` (a check like the others) starts ``python -c "<patch gevent>; run this module"`` with
the target as JSON and reads one JSON line back. In that process, with a ticker greenlet watching the hub:

- a long turn must leave the hub free (no gap in the ticker longer than half the turn: a transport that blocks
  the hub shows one gap as long as the turn);
- four users' turns at once must overlap (their wall time under twice the single turn's, measured in the same
  run; a transport that serialises them takes four times as long);
- a turn killed mid-reply (``GreenletExit``, as Locust stops a user) must end at once, and the next turn on the
  same transport get a reply of its own;
- ``close()`` twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from loadgen.testing.checks import PLANT, ContractFailure, ask
from loadgen.testing.target import ContractTarget

#: How long the subprocess may take in all.
PROCESS_TIMEOUT_S = 120.0
TICK_S = 0.005
USERS = 4
LONG_TOKENS = 64
KILL_TIMEOUT_S = 2.0
_PATCH_AND_RUN = (
    "from gevent import monkey; monkey.patch_all(); import runpy; "
    "runpy.run_module('loadgen.testing.gevent_check', run_name='__main__')"
)


def check_under_gevent(target: ContractTarget) -> None:
    """The checks of the module, in a gevent-patched process of its own."""
    payload = {
        "transport": target.spec,
        "url": target.url,
        "fixed_ttft_ms": target.fixed_ttft_ms,
        "fixed_itl_ms": target.fixed_itl_ms,
        "path": target.path,
        "model": target.model,
        "timeout_s": target.timeout_s,
    }
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))  # a test's own classes too
    if target.api_key:
        env["LOADGEN_CONTRACT_API_KEY"] = target.api_key  # never on a command line
    proc = subprocess.run(
        [sys.executable, "-c", _PATCH_AND_RUN, json.dumps(payload)],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT_S,
        env=env,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise ContractFailure(f"the gevent check process failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    result = json.loads(lines[-1])
    if result["problems"]:
        raise ContractFailure("under gevent: " + "; ".join(result["problems"]))


@dataclass
class Ticker:
    """A greenlet that sleeps :data:`TICK_S` at a time and remembers the longest gap between its wake-ups."""

    gaps: list[float] = field(default_factory=list)
    running: bool = True

    def run(self) -> None:
        import gevent

        last = time.perf_counter()
        while self.running:
            gevent.sleep(TICK_S)
            now = time.perf_counter()
            self.gaps.append(now - last)
            last = now

    def longest_since(self, start: int) -> float:
        return max(self.gaps[start:], default=0.0)


def run_checks(target: ContractTarget) -> dict[str, Any]:
    """Every check of the module (gevent must be patched in already); what it found and measured."""
    import gevent

    problems: list[str] = []
    ticker = Ticker()
    ticking = gevent.spawn(ticker.run)
    transport = target.make()
    figures: dict[str, float] = {}
    try:
        transport.send(ask(PLANT, 5))
        mark = len(ticker.gaps)
        single = transport.send(ask(PLANT, LONG_TOKENS)).e2e_s()
        figures.update(single_s=single, longest_gap_s=ticker.longest_since(mark))
        if figures["longest_gap_s"] > single / 2:
            problems.append(
                f"the hub was blocked {figures['longest_gap_s'] * 1000:.0f} ms of a {single * 1000:.0f} ms turn"
            )
        figures["together_s"] = _together(target)
        if figures["together_s"] > 2 * single:
            problems.append(
                f"{USERS} users' turns at once took {figures['together_s']:.2f} s, one alone {single:.2f} s: "
                "they do not overlap"
            )
        problems += _killed_turn(target, transport)
        transport.close()
        transport.close()
    except Exception as exc:
        problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        ticker.running = False
        ticking.join(1.0)
    return {"problems": problems, "figures": figures}


def _together(target: ContractTarget) -> float:
    import gevent

    transports = [target.make() for _ in range(USERS)]
    try:
        gevent.joinall([gevent.spawn(t.send, ask(PLANT, 5)) for t in transports], raise_error=True)
        started = time.perf_counter()
        gevent.joinall([gevent.spawn(t.send, ask(PLANT, LONG_TOKENS)) for t in transports], raise_error=True)
        return time.perf_counter() - started
    finally:
        for t in transports:
            t.close()


def _killed_turn(target: ContractTarget, transport: Any) -> list[str]:
    import gevent

    ttft, itl = (target.fixed_ttft_ms or 50.0) / 1000.0, (target.fixed_itl_ms or 10.0) / 1000.0
    turn = gevent.spawn(transport.send, ask(PLANT, LONG_TOKENS))
    gevent.sleep(ttft + 5 * itl)
    if turn.dead:
        return [f"the turn to be killed ended before it could be ({turn.exception or 'a reply'})"]
    started = time.perf_counter()
    turn.kill(block=True, timeout=KILL_TIMEOUT_S)
    if not turn.dead:
        return [f"a turn killed mid-reply (GreenletExit) was still running {KILL_TIMEOUT_S:g} s later"]
    killed_in = time.perf_counter() - started
    reply = transport.send(ask(PLANT, 5))
    if len(reply.chunk_times) > 5:
        return [f"the turn after a killed one got {len(reply.chunk_times)} chunks for 5 tokens (the killed turn's?)"]
    return [] if killed_in <= KILL_TIMEOUT_S else [f"a killed turn took {killed_in:.2f} s to end"]


__all__ = ["check_under_gevent", "run_checks"]


def main(argv: list[str]) -> int:
    args = json.loads(argv[0])
    target = ContractTarget(
        args["transport"],
        args["url"],
        fixed_ttft_ms=args["fixed_ttft_ms"],
        fixed_itl_ms=args["fixed_itl_ms"],
        path=args["path"],
        model=args["model"],
        timeout_s=args["timeout_s"],
        api_key=os.environ.get("LOADGEN_CONTRACT_API_KEY") or None,
    )
    print(json.dumps(run_checks(target)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
