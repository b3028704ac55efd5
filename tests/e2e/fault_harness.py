"""A reference server with ``--faults`` in a process of its own, and loops of turns through the real transports.

:class:`FaultServer` runs ``loadgen serve ... --faults SPEC`` (REST, gRPC and, with a broker, AMQP fronts), reads
its ``loadgen-ready`` and ``loadgen-fault`` lines from stdout as a launcher does, and keeps its stderr.
:func:`run_loops` runs ``clients`` loops of turns per transport (each a thread with a transport of its own: a
user), every turn stamped with ``time.time()`` when it started and ended, the server's own clock for its fault
lines (one machine). :func:`recovery` lines the turns up with a fault's logged end.

``python -m tests.e2e.fault_harness`` measures the recovery of each transport for a 10 s down and a 5 s stall
(reports/BENCHMARKS.md).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loadgen.errors import TransportError
from loadgen.transports import make_transport
from loadgen.transports.base import TransportConfig
from loadgen.types import ChatMessage, ChatRequest, Reply

BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/"
READY = "loadgen-ready "
FAULT = "loadgen-fault "


class FaultServer:
    """``loadgen serve --faults SPEC`` on free loopback ports; ``edges`` fills in as the server prints them."""

    def __init__(self, spec: str, *, amqp: bool, extra: tuple[str, ...] = (), start_timeout_s: float = 60.0) -> None:
        self.queue = f"loadgen.faults.{uuid.uuid4().hex[:10]}"
        cmd = [sys.executable, "-m", "loadgen", "serve", "--bind", "127.0.0.1", "--rest-port", "0", "--grpc-port", "0"]
        if amqp:
            cmd += ["--amqp-url", BROKER_URL, "--amqp-queue", self.queue]
        cmd += ["--faults", spec, *extra]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("LOADGEN_AMQP_URL", None)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.urls: dict[str, str] = {}
        self.edges: list[dict[str, Any]] = []
        self.stderr = ""
        self._ready = threading.Event()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        if not self._ready.wait(start_timeout_s) or not self.urls:
            self.stop()
            raise RuntimeError(f"loadgen serve did not become ready: {self.stderr[-2000:]}")

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(READY):
                self.urls = json.loads(line[len(READY) :])
                self._ready.set()
            elif line.startswith(FAULT):
                self.edges.append(json.loads(line[len(FAULT) :]))
        self._ready.set()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr += line

    def edge(self, kind: str, which: str, timeout_s: float = 60.0) -> float:
        """When the server says the ``which`` ("start"/"end") edge of its ``kind`` fault was in force (waits)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for edge in self.edges:
                if edge["kind"] == kind and edge["edge"] == which:
                    return float(edge["at"])
            time.sleep(0.02)
        raise AssertionError(f"no {kind} {which} edge from the server within {timeout_s:g} s: {self.edges}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        time.sleep(0.1)  # the readers drain what is left
        return self.proc.returncode

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Turn:
    transport: str
    client: int
    started: float  # time.time()
    ended: float
    reply: Reply | None
    error: TransportError | None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Loops:
    """Every turn of every loop, in the order they ended (appended from the loops' threads)."""

    turns: list[Turn] = field(default_factory=list)

    def of(self, transport: str) -> list[Turn]:
        return [t for t in self.turns if t.transport == transport]


def ask(text: str = "Hello there.", *, session: str | None = None, max_tokens: int = 8) -> ChatRequest:
    return ChatRequest((ChatMessage("user", text),), max_tokens=max_tokens, session_id=session)


def run_loops(
    urls: dict[str, str],
    transports: list[str],
    *,
    clients: int,
    until: Callable[[], bool],
    timeout_s: float = 2.0,
    pause_s: float = 0.02,
    request: Callable[[str, int, int], ChatRequest] | None = None,
) -> Loops:
    """``clients`` loops per transport, each turn after the last (and ``pause_s``), until ``until()``."""
    loops = Loops()
    lock = threading.Lock()

    def loop(name: str, client: int) -> None:
        transport = make_transport(name, TransportConfig(target=urls[name], timeout_s=timeout_s, connect_timeout_s=2))
        try:
            i = 0
            while not until():
                req = request(name, client, i) if request is not None else ask()
                started = time.time()
                reply: Reply | None = None
                error: TransportError | None = None
                try:
                    reply = transport.send(req)
                except TransportError as exc:
                    error = exc
                with lock:
                    loops.turns.append(Turn(name, client, started, time.time(), reply, error))
                i += 1
                time.sleep(pause_s)
        finally:
            transport.close()

    threads = [threading.Thread(target=loop, args=(n, c)) for n in transports for c in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    return loops


@dataclass(frozen=True)
class Recovery:
    first_s: float | None  # fault end -> the first successful turn (ending after it) of any client
    all_s: float | None  # fault end -> every client has had a successful turn ending after it


def recovery(turns: list[Turn], end: float) -> Recovery:
    """Fault end (the server's time) to the end of the first successful turn that ended after it, and to the
    moment every client had one."""
    firsts: dict[int, float] = {}
    for turn in sorted(turns, key=lambda t: t.ended):
        if turn.ok and turn.ended > end and turn.client not in firsts:
            firsts[turn.client] = turn.ended - end
    clients = {t.client for t in turns}
    first = min(firsts.values()) if firsts else None
    every = max(firsts.values()) if firsts and set(firsts) == clients else None
    return Recovery(first, every)


def _measure(kind: str, spec: str, clients: int, timeout_s: float, transports: list[str]) -> dict[str, Recovery]:
    with FaultServer(spec, amqp="amqp" in transports, extra=("--fixed", "--fixed-ttft-ms", "20")) as server:
        end_at: list[float] = []

        def done() -> bool:
            if not end_at and any(e["kind"] == kind and e["edge"] == "end" for e in server.edges):
                end_at.append(time.monotonic())
            return bool(end_at) and time.monotonic() - end_at[0] > 5.0

        loops = run_loops(server.urls, transports, clients=clients, until=done, timeout_s=timeout_s)
        end = server.edge(kind, "end")
    return {name: recovery(loops.of(name), end) for name in transports}


def main() -> None:
    """The benchmark: recovery per transport after a 10 s down and a 5 s stall, 10 clients each, 5 rounds."""
    transports = ["rest", "grpc", "amqp"]
    rounds = int(os.environ.get("ROUNDS", "5"))
    for kind, spec in (("down", "3s+10s down"), ("stall", "3s+5s stall")):
        rows: dict[str, list[Recovery]] = {name: [] for name in transports}
        for _ in range(rounds):
            for name, rec in _measure(kind, spec, 10, 2.0, transports).items():
                rows[name].append(rec)
        for name, recs in rows.items():
            firsts = [r.first_s for r in recs if r.first_s is not None]
            alls = [r.all_s for r in recs if r.all_s is not None]
            print(
                f"{spec:14} {name:5} first success median {statistics.median(firsts) * 1000:6.0f} ms "
                f"(max {max(firsts) * 1000:5.0f}), all 10 clients median {statistics.median(alls) * 1000:6.0f} ms "
                f"(max {max(alls) * 1000:5.0f}), rounds {len(alls)}/{len(recs)}"
            )


if __name__ == "__main__":
    main()
