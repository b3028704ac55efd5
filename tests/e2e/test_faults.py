"""Faults injected by the reference server (``loadgen serve --faults``), seen by the REAL transports.

Each test starts ``loadgen serve`` with REST, gRPC and AMQP fronts (a real RabbitMQ broker) and a schedule, runs
loops of turns through each transport (a few clients each, turns stamped with ``time.time()``), and lines the
turns up with the server's own fault log: the ``loadgen-fault`` lines it printed and ``GET /faults``, which must
agree. The server stops on SIGTERM with exit code 0 and no traceback. Times are short (seconds) to keep the suite
fast; the recovery of a 10 s down and a 5 s stall is measured by ``python -m tests.e2e.fault_harness``
(reports/BENCHMARKS.md).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from loadgen.errors import ConnectError, ServerError, TurnTimeout, Unroutable
from loadgen.types import ChatRequest
from tests.conftest import require_broker
from tests.e2e.fault_harness import FaultServer, Turn, ask, recovery, run_loops

pytestmark = pytest.mark.e2e

TRANSPORTS = ["rest", "grpc", "amqp"]
#: Exact timing, so that a slow fault's multiple can be read off the turns.
FIXED = ("--fixed", "--fixed-ttft-ms", "20", "--fixed-itl-ms", "10")
#: "recovers within 1 s" (issue 10, item 8): from the fault's logged end to every client's first success.
RECOVERY_S = 1.0
#: The code each transport reports for the status table's INTERNAL row (written out, not read from the table).
INTERNAL = {"rest": 500, "grpc": "INTERNAL", "amqp": "internal"}


@pytest.fixture
def faults() -> Iterator[Callable[..., FaultServer]]:
    require_broker()
    servers: list[FaultServer] = []

    def start(spec: str, *extra: str) -> FaultServer:
        servers.append(FaultServer(spec, amqp=True, extra=extra))
        return servers[-1]

    yield start
    for server in servers:
        code = server.stop()
        assert code == 0, server.stderr[-3000:]
        assert "Traceback" not in server.stderr, server.stderr[-3000:]


def _run_past(server: FaultServer, kind: str, edge: str, seconds: float) -> Callable[[], bool]:
    """``until`` for :func:`run_loops`: true ``seconds`` after the server printed that edge."""

    def done() -> bool:
        at = [e["at"] for e in server.edges if e["kind"] == kind and e["edge"] == edge]
        return bool(at) and time.time() > at[0] + seconds

    return done


def _check_log(server: FaultServer) -> None:
    """``GET /faults`` says what the ``loadgen-fault`` lines said, and /stats carries the same log."""
    served = httpx.get(server.urls["rest"] + "/faults", timeout=5).json()
    stats = httpx.get(server.urls["rest"] + "/stats", timeout=5).json()
    assert stats["faults"] == served
    printed: dict[str, dict[str, float]] = {}
    for edge in server.edges:
        printed.setdefault(edge["fault"], {})[edge["edge"]] = edge["at"]
    for entry in served["faults"]:
        lines = printed[entry["fault"]]
        assert entry["start"] == lines["start"]
        assert entry["end"] == lines.get("end", lines["start"])  # an instant ends when it starts
    assert len(served["faults"]) == len(printed)


def _inside(turns: list[Turn], start: float, end: float) -> list[Turn]:
    return [t for t in turns if t.started >= start and t.ended <= end]


def test_down_every_front_refuses_and_every_transport_recovers_within_a_second(
    faults: Callable[..., FaultServer],
) -> None:
    server = faults("1.5s+7s down", *FIXED)  # 7 s: the old backoff (1 s growing 1.6x) retried ~2 s after the end
    loops = run_loops(server.urls, TRANSPORTS, clients=3, until=_run_past(server, "down", "end", 2.0))
    start, end = server.edge("down", "start"), server.edge("down", "end")
    _check_log(server)
    for name in TRANSPORTS:
        turns = loops.of(name)
        assert [t for t in turns if t.ended < start - 0.2 and not t.ok] == [], name
        during = _inside(turns, start + 0.05, end)
        assert len(during) >= 3, (name, len(during))
        refused = (Unroutable,) if name == "amqp" else (ConnectError,)
        assert all(isinstance(t.error, refused) for t in during), (name, {str(t.error) for t in during})
        rec = recovery(turns, end)
        assert rec.all_s is not None and rec.all_s < RECOVERY_S, (name, rec)
        assert all(t.ok for t in turns if t.started > end + RECOVERY_S), name


def test_stall_ends_each_turn_at_its_timeout_then_every_transport_recovers(
    faults: Callable[..., FaultServer],
) -> None:
    server = faults("1.5s+2.5s stall", *FIXED)
    loops = run_loops(server.urls, TRANSPORTS, clients=3, until=_run_past(server, "stall", "end", 2.0), timeout_s=0.8)
    start, end = server.edge("stall", "start"), server.edge("stall", "end")
    _check_log(server)
    for name in TRANSPORTS:
        turns = loops.of(name)
        stalled = [t for t in turns if start + 0.05 <= t.started and t.started + 0.8 < end - 0.05]
        assert len(stalled) >= 3, (name, len(stalled))
        for turn in stalled:
            assert isinstance(turn.error, TurnTimeout), (name, turn.error)
            assert "turn exceeded its timeout (0.8s)" in turn.error.reason, (name, turn.error.reason)
            assert 0.8 - 0.01 <= turn.ended - turn.started < 0.8 + 0.5, (name, turn.ended - turn.started)
        rec = recovery(turns, end)
        assert rec.all_s is not None and rec.all_s < RECOVERY_S, (name, rec)


def test_error_fails_about_that_share_with_the_status_tables_server_error(
    faults: Callable[..., FaultServer],
) -> None:
    server = faults("1s+3s error 30%", "--fixed", "--fixed-ttft-ms", "2", "--fixed-itl-ms", "1")
    loops = run_loops(server.urls, TRANSPORTS, clients=3, until=_run_past(server, "error", "end", 1.0))
    start, end = server.edge("error", "start"), server.edge("error", "end")
    _check_log(server)
    for name in TRANSPORTS:
        turns = loops.of(name)
        assert all(t.ok for t in turns if t.ended < start or t.started > end), name
        window = _inside(turns, start, end)
        failed = [t for t in window if not t.ok]
        assert len(window) >= 60, (name, len(window))
        assert 0.15 <= len(failed) / len(window) <= 0.45, (name, len(failed), len(window))
        for turn in failed:
            assert type(turn.error) is ServerError, (name, turn.error)
            assert turn.error.code == INTERNAL[name], (name, turn.error.code)
            assert "injected fault: error 30%" in turn.error.reason, (name, turn.error.reason)


def _ttft_itl(turns: list[Turn]) -> tuple[float, float]:
    ttfts = [t.reply.ttft_s() for t in turns if t.reply is not None]
    itls = [gap for t in turns if t.reply is not None for gap, _ in t.reply.inter_token_samples()]
    return statistics.median([x for x in ttfts if x is not None]), statistics.median(itls)


def test_slow_multiplies_ttft_and_itl(faults: Callable[..., FaultServer]) -> None:
    server = faults("1.5s+2.5s slow 3x", *FIXED)
    loops = run_loops(server.urls, TRANSPORTS, clients=2, until=_run_past(server, "slow", "end", 1.5))
    start, end = server.edge("slow", "start"), server.edge("slow", "end")
    _check_log(server)
    for name in TRANSPORTS:
        turns = [t for t in loops.of(name) if t.ok]
        normal = [t for t in turns if t.ended < start or t.started > end]
        slowed = _inside(turns, start, end)
        assert len(normal) >= 5 and len(slowed) >= 5, (name, len(normal), len(slowed))
        (ttft, itl), (slow_ttft, slow_itl) = _ttft_itl(normal), _ttft_itl(slowed)
        assert 2.2 <= slow_ttft / ttft <= 3.5, (name, ttft, slow_ttft)
        assert 2.5 <= slow_itl / itl <= 3.5, (name, itl, slow_itl)


def test_forget_sessions_is_seen_as_a_new_session_by_every_transport(faults: Callable[..., FaultServer]) -> None:
    server = faults("1.5s forget-sessions", "--fixed", "--fixed-ttft-ms", "5", "--fixed-itl-ms", "1")

    def request(name: str, client: int, i: int) -> ChatRequest:
        return ask(f"Turn {i}: my code is QX{client}{i}.", session=f"{name}-{client}")

    loops = run_loops(
        server.urls, TRANSPORTS, clients=2, until=_run_past(server, "forget-sessions", "start", 1.0), request=request
    )
    at = server.edge("forget-sessions", "start")
    _check_log(server)
    for name in TRANSPORTS:
        for client in (0, 1):
            turns = sorted((t for t in loops.of(name) if t.client == client), key=lambda t: t.started)
            assert all(t.ok and t.reply is not None for t in turns), name
            new = [t.reply.session_new for t in turns if t.reply is not None]
            assert new[0] is True, (name, client)  # a first turn: the server had no such session
            before = [t for t in turns[1:] if t.ended < at]
            after = [t for t in turns if t.ended > at]
            assert before and not any(t.reply is not None and t.reply.session_new for t in before), (name, client)
            flags = [t.reply.session_new for t in after if t.reply is not None]
            assert True in flags[:2] and flags.count(True) == 1, (name, client, flags[:5])
