"""Fault injection at run time: a ``--faults`` schedule (:mod:`loadgen.server.faults`) applied to a running server.

:class:`FaultGate` is what the request path reads (the chat service before a request, each stream before a chunk,
the engine per step): it is healthy, and costs one attribute read, unless a fault is on. :class:`FaultController`
is one task in the server's event loop that applies each edge of the schedule when it is due, counting from when
every front was ready:

- ``down``: every front goes down (:meth:`~loadgen.server.fronts.Front.go_down`: REST and gRPC listeners closed and
  their open connections cut, the AMQP consumer cancelled) and comes back at the end on the same ports and queue
  (:meth:`~loadgen.server.fronts.Front.come_up`);
- ``stall``: a request is taken and nothing more happens (no admission, no headers, no chunk: streams already
  going stop between two chunks) until the stall ends, or the client goes;
- ``error P%``: that share of requests (drawn per request) fails with the status table's INTERNAL row (HTTP 500,
  gRPC INTERNAL, AMQP ``internal``): :class:`InjectedFault`, never logged as a bug;
- ``slow Nx``: the engine's step costs multiplied by N (``Engine.slow_factor``);
- ``forget-sessions``: every server-side session dropped at once.

Every edge is written to the :class:`~loadgen.server.faults.FaultLog` (``GET /faults``, and ``/stats``) and passed
to ``on_edge`` as ``{"fault": "30s+10s down", "kind": "down", "edge": "start", "at": <time.time()>}`` (``loadgen
serve`` prints it as a ``loadgen-fault`` line). ``at`` is taken once the edge is in force: after the fronts went
down, or came back up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from loadgen.server.faults import Edge, Fault, FaultKind, FaultLog, FaultSchedule

if TYPE_CHECKING:
    from loadgen.server.fronts import Front
    from loadgen.server.service import ChatService

log = logging.getLogger(__name__)

#: ``loadgen serve`` prints this prefix and the edge as JSON on one stdout line (contract with the launcher).
FAULT_PREFIX = "loadgen-fault "


class InjectedFault(Exception):
    """A request failed on purpose (``error P%``): answered with the status table's INTERNAL row, not logged."""


class FaultGate:
    """The faults in force, as the request path reads them. ``on`` is False while the server is healthy."""

    __slots__ = ("error_share", "on", "rng", "stall")

    def __init__(self, rng: random.Random | None = None) -> None:
        self.on = False
        self.stall: asyncio.Event | None = None  # set (and dropped) when a stall ends
        self.error_share = 0.0
        self.rng = rng or random.Random()

    def _update(self) -> None:
        self.on = self.stall is not None or self.error_share > 0.0

    def start_stall(self) -> None:
        if self.stall is None:
            self.stall = asyncio.Event()
            self._update()

    def end_stall(self) -> None:
        stall, self.stall = self.stall, None
        if stall is not None:
            stall.set()
        self._update()

    def set_error_share(self, share: float) -> None:
        self.error_share = share
        self._update()

    async def wait_stall(self) -> None:
        """Return once no stall is in force (at once when none is)."""
        while (stall := self.stall) is not None:
            await stall.wait()

    def maybe_fail(self) -> None:
        """Raise :class:`InjectedFault` with the chance the error fault in force gives (never when none is)."""
        share = self.error_share
        if share > 0.0 and self.rng.random() < share:
            raise InjectedFault(f"injected fault: error {share * 100:g}% (loadgen serve --faults)")


class FaultController:
    """Applies a schedule's edges to a running server, on time, and logs them."""

    def __init__(
        self,
        schedule: FaultSchedule,
        service: ChatService,
        fronts: Sequence[Front],
        log_: FaultLog,
        *,
        on_edge: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.schedule = schedule
        self.service = service
        self.fronts = list(fronts)
        self.log = log_
        self.on_edge = on_edge
        self.down = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> FaultController:
        """Run the schedule in a task of the current loop, its clock starting now."""
        self._task = asyncio.create_task(self.run(time.monotonic()), name="faults")
        return self

    async def close(self) -> None:
        """Stop applying the schedule and lift the faults of the request path (see :meth:`heal`)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.heal()

    async def run(self, started: float) -> None:
        """Apply every edge when due (``started``: :func:`time.monotonic` when the fronts were ready); returns
        when the schedule is done. Cancelled (the server stopping), it leaves the fronts as they are."""
        while True:
            due = self.schedule.next_edge_s()
            if due is None:
                return
            delay = started + due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            for edge in self.schedule.edges(time.monotonic() - started):
                await self.apply(edge)

    async def apply(self, edge: Edge) -> None:
        fault = edge.fault
        try:
            if edge.starting:
                await self._start(fault)
            else:
                await self._end(fault)
        except Exception:
            log.exception("fault %r: the %s edge failed", fault.describe(), "start" if edge.starting else "end")
        at = time.time()
        if edge.starting:
            self.log.begin(fault, at)
        else:
            self.log.end(fault, at)
        line = {"fault": fault.describe(), "kind": fault.kind.value, "edge": "start" if edge.starting else "end"}
        log.warning("fault %s: %s", line["edge"], line["fault"])
        if self.on_edge is not None:
            self.on_edge({**line, "at": at})

    async def _start(self, fault: Fault) -> None:
        gate, service = self.service.faults, self.service
        if fault.kind is FaultKind.DOWN:
            self.down = True
            await asyncio.gather(*(front.go_down() for front in self.fronts))
        elif fault.kind is FaultKind.STALL:
            gate.start_stall()
        elif fault.kind is FaultKind.ERROR:
            gate.set_error_share(fault.share)
        elif fault.kind is FaultKind.SLOW:
            service.engine.slow_factor = fault.factor
        elif fault.kind is FaultKind.FORGET_SESSIONS:
            count = service.sessions.forget_all()
            log.info("forget-sessions: %d sessions dropped", count)

    async def _end(self, fault: Fault) -> None:
        gate, service = self.service.faults, self.service
        if fault.kind is FaultKind.DOWN:
            await asyncio.gather(*(front.come_up() for front in self.fronts))
            self.down = False
        elif fault.kind is FaultKind.STALL:
            gate.end_stall()
        elif fault.kind is FaultKind.ERROR:
            gate.set_error_share(0.0)
        elif fault.kind is FaultKind.SLOW:
            service.engine.slow_factor = 1.0

    def heal(self) -> None:
        """Lift the faults of the request path (the server is stopping): stalled requests go on and end as the
        fronts stop. Fronts that are down stay down: stopping a front that is down only releases what it holds."""
        self.service.faults.end_stall()
        self.service.faults.set_error_share(0.0)
        self.service.engine.slow_factor = 1.0


__all__ = ["FAULT_PREFIX", "FaultController", "FaultGate", "InjectedFault"]
