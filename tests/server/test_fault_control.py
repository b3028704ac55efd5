"""The fault controller applies a schedule's edges on time to the service, the engine and the fronts, and logs each
one; the gate the request path reads holds a stall and fails a share of requests. (Each fault seen by the real
transports: tests/e2e/test_faults.py.)"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any, ClassVar

import pytest

from loadgen.server.app import make_session_store
from loadgen.server.config import ServerConfig, SimEngineConfig
from loadgen.server.engines.sim import SimEngine
from loadgen.server.fault_control import FaultController, FaultGate, InjectedFault
from loadgen.server.faults import FaultLog, FaultSchedule, parse_faults
from loadgen.server.fronts import Front
from loadgen.server.service import ChatService, failure_message, failure_of, is_bug
from loadgen.types import ChatMessage
from loadgen.wire.status import Failure


class RecordingFront(Front):
    """A front that only notes when it was told to go down and come up (a unit test of the controller)."""

    name: ClassVar[str] = "recording"

    def __init__(self, service: ChatService, config: ServerConfig) -> None:
        super().__init__(service, config)
        self.calls: list[tuple[str, float]] = []

    async def start(self) -> str:
        return "test://"

    async def stop(self) -> None:
        pass

    async def go_down(self) -> None:
        self.calls.append(("down", time.monotonic()))

    async def come_up(self) -> None:
        self.calls.append(("up", time.monotonic()))


def test_the_gate_holds_a_stall_and_fails_the_share_it_is_given() -> None:
    async def main() -> None:
        gate = FaultGate(random.Random(7))
        assert not gate.on
        await asyncio.wait_for(gate.wait_stall(), 0.1)  # no stall: at once
        gate.start_stall()
        waiting = asyncio.create_task(gate.wait_stall())
        await asyncio.sleep(0.05)
        assert gate.on and not waiting.done()
        gate.end_stall()
        await asyncio.wait_for(waiting, 1)
        gate.set_error_share(0.25)
        failed = 0
        for _ in range(4000):
            try:
                gate.maybe_fail()
            except InjectedFault as exc:
                failed += 1
                assert str(exc) == "injected fault: error 25% (loadgen serve --faults)"
        assert 900 <= failed <= 1100
        gate.set_error_share(0.0)
        assert not gate.on

    asyncio.run(main())


def test_an_injected_fault_is_the_internal_row_and_not_a_bug() -> None:
    exc = InjectedFault("injected fault: error 5% (loadgen serve --faults)")
    assert failure_of(exc) is Failure.INTERNAL
    assert not is_bug(exc) and is_bug(RuntimeError("boom"))
    assert failure_message(Failure.INTERNAL, exc) == "injected fault: error 5% (loadgen serve --faults)"


def test_the_controller_applies_every_edge_on_time_and_logs_it() -> None:
    config = ServerConfig(rest_port=None, sim=SimEngineConfig(fixed=True))
    spec = "0.1s+0.2s down; 0.15s+0.1s stall; 0.2s+0.1s error 50%; 0.25s+0.1s slow 3x; 0.4s forget-sessions"

    async def main() -> tuple[list[dict[str, Any]], list[Any], RecordingFront, FaultLog, list[str]]:
        engine = SimEngine(config.sim)
        await engine.start()
        service = ChatService(engine, make_session_store(config, engine), config)
        service.sessions.append("s", ChatMessage("user", "hi"))
        front = RecordingFront(service, config)
        log = FaultLog(started_at=time.time())
        edges: list[dict[str, Any]] = []
        controller = FaultController(FaultSchedule(parse_faults(spec)), service, [front], log, on_edge=edges.append)
        seen: list[Any] = []

        async def watch() -> None:  # what the request path would see, every 10 ms
            for _ in range(50):
                seen.append((service.faults.stall is not None, service.faults.error_share, engine.slow_factor))
                await asyncio.sleep(0.01)

        started = time.monotonic()
        await asyncio.gather(controller.run(started), watch())
        held = [s for s in ("s",) if s in service.sessions]
        await engine.stop()
        return edges, seen, front, log, held

    edges, seen, front, log, held = asyncio.run(main())
    assert [(e["fault"], e["edge"]) for e in edges] == [
        ("0.1s+0.2s down", "start"),
        ("0.15s+0.1s stall", "start"),
        ("0.2s+0.1s error 50%", "start"),
        ("0.15s+0.1s stall", "end"),
        ("0.25s+0.1s slow 3x", "start"),
        ("0.1s+0.2s down", "end"),
        ("0.2s+0.1s error 50%", "end"),
        ("0.25s+0.1s slow 3x", "end"),
        ("0.4s forget-sessions", "start"),
    ]
    assert {e["kind"] for e in edges} == {"down", "stall", "error", "slow", "forget-sessions"}
    assert [name for name, _ in front.calls] == ["down", "up"]
    assert front.calls[1][1] - front.calls[0][1] == pytest.approx(0.2, abs=0.05)
    assert any(stall for stall, _, _ in seen) and any(share == 0.5 for _, share, _ in seen)
    assert any(slow == 3.0 for _, _, slow in seen) and seen[-1] == (False, 0.0, 1.0)
    assert held == []  # forgotten
    entries = log.to_json()["faults"]
    assert [(e["fault"], e["start"] <= e["end"]) for e in entries] == [
        ("0.1s+0.2s down", True),
        ("0.15s+0.1s stall", True),
        ("0.2s+0.1s error 50%", True),
        ("0.25s+0.1s slow 3x", True),
        ("0.4s forget-sessions", True),
    ]
