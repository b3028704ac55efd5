"""Who runs next: a bounded queue, a bounded running batch and a KV-memory budget in tokens.

Two policies (``TorchEngineConfig.batching``):

- ``continuous``: sequences join the running batch at every step as soon as a slot (``max_batch``) and KV
  memory (``kv_tokens``) are free, and leave it the step they finish (or are cancelled).
- ``static``: a batch forms when ``max_batch`` sequences wait, when the oldest has waited
  ``static_batch_timeout_ms``, or when KV memory could not take one more; it then runs until every one of
  its sequences has finished, and nothing joins it meanwhile.

Each sequence reserves its whole KV need when admitted (prompt plus output, or the window), so a running
sequence never runs out of memory half-way. A request that waits while the queue holds ``queue_limit``
others is refused with :class:`EngineOverloaded`; one that could never fit (its need alone is larger than
``kv_tokens``) with :class:`EngineRequestError`.

The event loop thread calls :meth:`Scheduler.submit` and :meth:`Scheduler.cancel`; the engine's worker
thread calls :meth:`Scheduler.take` and :meth:`Scheduler.release`. One lock guards the state. No torch here.
"""

from __future__ import annotations

import asyncio
import enum
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from loadgen.server.engines.base import EngineOverloaded, EngineRequestError, TokenChunk


class State(enum.Enum):
    NEW = "new"
    WAITING = "waiting"
    ADMITTED = "admitted"  # KV reserved, handed (or about to be handed) to the worker
    DONE = "done"  # released: finished, cancelled, refused or failed


@dataclass(eq=False)
class Sequence:
    """One request as the scheduler and the worker see it."""

    request_id: str
    prompt_ids: list[int]
    output_ids: list[int]  # the forced output tokens
    chunks: list[TokenChunk]  # what to stream when output token i is produced
    need: int  # KV tokens this sequence holds while it runs
    t_submit: float = 0.0
    state: State = State.NEW
    cancelled: bool = False  # set by the consumer; the worker releases the sequence at its next step
    # worker-owned
    slot: int = -1
    n_out: int = 0  # output tokens produced so far
    pos: int = 0  # tokens in this sequence's KV cache
    sink: asyncio.Queue[object] | None = field(default=None, repr=False)  # where the engine delivers chunks

    @property
    def finished(self) -> bool:
        return self.n_out >= len(self.output_ids)


@dataclass
class SchedulerStats:
    submitted: int = 0
    admitted: int = 0
    rejected: int = 0
    released: int = 0
    cancelled: int = 0


class Scheduler:
    def __init__(
        self,
        *,
        batching: str,
        max_batch: int,
        kv_tokens: int,
        queue_limit: int,
        static_batch_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if batching not in ("continuous", "static"):
            raise ValueError(f"batching must be 'continuous' or 'static', not {batching!r}")
        self.static = batching == "static"
        self.max_batch = max_batch
        self.kv_tokens = kv_tokens
        self.queue_limit = queue_limit
        self.timeout_s = static_batch_timeout_s
        self.clock = clock
        self.cond = threading.Condition()
        self.stats = SchedulerStats()
        self._waiting: deque[Sequence] = deque()
        self._ready: list[Sequence] = []  # admitted, not yet taken by the worker
        self._active = 0  # admitted and not released
        self._kv_used = 0
        self._stopped = False

    # -- event loop side -------------------------------------------------------------------------------

    def submit(self, seq: Sequence) -> None:
        """Queue ``seq`` (admitting it at once if it fits), or raise without queueing it."""
        with self.cond:
            if self._stopped:
                raise EngineOverloaded("engine is stopping")
            if seq.need > self.kv_tokens:
                raise EngineRequestError(
                    f"request needs {seq.need} KV tokens; the engine holds {self.kv_tokens} in all (kv_tokens)"
                )
            self.stats.submitted += 1
            seq.t_submit = self.clock()
            seq.state = State.WAITING
            self._waiting.append(seq)
            self._admit()
            if seq.state is State.WAITING and len(self._waiting) > self.queue_limit:
                self._waiting.pop()  # FIFO: the newest is last
                seq.state = State.DONE
                self.stats.rejected += 1
                raise EngineOverloaded(
                    f"queue full: {self.queue_limit} requests waiting, {self._active} running, "
                    f"{self._kv_used}/{self.kv_tokens} KV tokens in use"
                )
            self.cond.notify()

    def cancel(self, seq: Sequence) -> None:
        """The consumer went away: drop a waiting sequence now, or have the worker release a running one."""
        with self.cond:
            if seq.state is State.WAITING:
                self._waiting.remove(seq)
                seq.state = State.DONE
                self.stats.cancelled += 1
            elif seq.state is State.ADMITTED:
                seq.cancelled = True
                self.cond.notify()

    # -- worker side -----------------------------------------------------------------------------------

    def take(self, *, block: bool) -> list[Sequence] | None:
        """Newly admitted sequences for the worker to prefill (possibly none); ``None`` once stopped.

        With ``block`` (the worker has nothing running) wait until there is something to run.
        """
        with self.cond:
            while True:
                if self._stopped:
                    return None
                deadline = self._admit()
                if self._ready or not block:
                    ready, self._ready = self._ready, []
                    return ready
                wait = None if deadline is None else max(0.0, deadline - self.clock())
                self.cond.wait(wait)

    def release(self, seq: Sequence) -> None:
        """``seq`` left the running batch (finished, cancelled or failed): free its slot and KV memory."""
        with self.cond:
            if seq.state is State.ADMITTED:
                self._release(seq)

    def stop(self) -> list[Sequence]:
        """Refuse new work; return the sequences that were waiting (never started) so they can be failed."""
        with self.cond:
            self._stopped = True
            dropped = [*self._waiting, *self._ready]
            for seq in self._waiting:
                seq.state = State.DONE
            self._waiting.clear()
            for seq in self._ready:
                self._release(seq)
            self._ready = []
            self.cond.notify_all()
            return dropped

    def _release(self, seq: Sequence) -> None:
        seq.state = State.DONE
        self._active -= 1
        self._kv_used -= seq.need
        self.stats.released += 1
        if seq.cancelled:
            self.stats.cancelled += 1

    # -- policy ----------------------------------------------------------------------------------------

    def _fits(self, seq: Sequence, batch: int) -> bool:
        return batch < self.max_batch and self._kv_used + seq.need <= self.kv_tokens

    def _take_head(self) -> None:
        seq = self._waiting.popleft()
        seq.state = State.ADMITTED
        self._active += 1
        self._kv_used += seq.need
        self._ready.append(seq)
        self.stats.admitted += 1

    def _admit(self) -> float | None:
        """Move waiting sequences into the batch as the policy allows (FIFO, no overtaking).

        Returns when a static batch will form on its timeout (``None``: nothing to wait for).
        """
        if not self.static:
            while self._waiting and self._fits(self._waiting[0], self._active):
                self._take_head()
            return None
        if self._active or not self._waiting:
            return None  # a static batch runs to its end before the next one forms
        deadline = self._waiting[0].t_submit + self.timeout_s
        fitting, kv = 0, self._kv_used
        for seq in self._waiting:
            if fitting >= self.max_batch or kv + seq.need > self.kv_tokens:
                break
            fitting += 1
            kv += seq.need
        full = fitting == self.max_batch or fitting < len(self._waiting)  # no room for one more
        if not (full or self.clock() >= deadline):
            return deadline
        for _ in range(fitting):
            self._take_head()
        return None

    # -- figures ---------------------------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    @property
    def active(self) -> int:
        return self._active

    @property
    def kv_used(self) -> int:
        return self._kv_used
