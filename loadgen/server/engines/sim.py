"""The ``sim`` engine: a cost model of a batching model server, with no model.

Normal mode: a step loop (one asyncio task) runs like a continuous-batching server. Requests wait in a
queue (``queue_limit`` waiting -> :class:`EngineOverloaded` at admission); at most ``max_batch`` sequences
run. Each step, waiting sequences join while there is room (each one's prefill adds
``prefill_us_per_token`` x its prompt tokens to that step), the step lasts
``step_base_us + step_per_seq_us * batch size`` (+ the prefills), then every running sequence emits its next
token. A sequence leaves when its reply is out (``max_tokens`` tokens at most) or its consumer closed it. So
time per token grows with the batch and the queue grows past saturation, like a real server.

``fixed`` mode: no step loop and no batching. Each request emits its first token ``fixed_ttft_ms`` after
the front received it (``GenerationRequest.received_at``; admission when not given) and then one token
every ``fixed_itl_ms``, each against an absolute deadline
(``t0 + ttft + i * itl``), so sleep overshoot never accumulates: exact timing for measurement tests.

Prefix cache (``prefix_cache_tokens`` > 0, :mod:`loadgen.server.prefix_cache`): at admission the prompt's
leading 64-token blocks are looked up, and only the tokens after the cached prefix are charged
``prefill_us_per_token`` when the sequence joins the batch, as a server with automatic prefix caching skips their
prefill. Hits and misses are in :meth:`SimEngine.stats`. ``fixed`` mode has no prefill, so no cache either.

A ``slow Nx`` fault (``Engine.slow_factor``) multiplies every step's cost, and in fixed mode the time to first
token of a request admitted meanwhile and every interval that starts meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from loadgen.server.config import SimEngineConfig
from loadgen.server.engines.base import (
    Engine,
    EngineOverloaded,
    EngineRequestError,
    GenerationRequest,
    TokenChunk,
    Tokenizer,
)
from loadgen.server.prefix_cache import PrefixCache
from loadgen.server.responder import STOCK_TEXT
from loadgen.server.timer import PreciseSleeper
from loadgen.server.tokens import WordTokenizer

logger = logging.getLogger(__name__)

#: How far behind its schedule the step loop may fall and still catch up (beyond: it restarts from now).
CATCH_UP_S = 0.005


#: One shared chunk per token of the responder's stock text (its filler and its fixed phrases): replies are mostly
#: those, so most tokens are hits. Made once and never added to: a cache that also kept every token of the quoted
#: facts (a new name, code or date per conversation) grew for as long as the server ran (~0.15 MB/min in a soak).
_CHUNKS: dict[str, TokenChunk] = {
    text: TokenChunk(text) for token in WordTokenizer().split(STOCK_TEXT) for text in (token, token.rstrip())
}


def token_chunk(text: str) -> TokenChunk:
    """The (immutable) chunk for one token: the shared one of a stock token, else a new one."""
    return _CHUNKS.get(text) or TokenChunk(text)


class _Sequence:
    __slots__ = ("cancelled", "done", "error", "next_token", "pending", "prompt_tokens", "tokens", "waiter")

    def __init__(self, tokens: list[str], prompt_tokens: int) -> None:
        self.tokens = tokens
        self.prompt_tokens = prompt_tokens
        self.next_token = 0  # index of the next token the step loop emits
        self.pending: collections.deque[TokenChunk] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None
        self.done = False
        self.cancelled = False
        self.error: BaseException | None = None

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)


class _BatchStream:
    """What ``generate`` returns in batching mode: chunks as the step loop produces them."""

    __slots__ = ("_engine", "_seq")

    def __init__(self, engine: SimEngine, seq: _Sequence) -> None:
        self._engine = engine
        self._seq = seq

    def __aiter__(self) -> _BatchStream:
        return self

    async def __anext__(self) -> TokenChunk:
        seq = self._seq
        while True:
            if seq.pending:
                return seq.pending.popleft()
            if seq.error is not None:
                raise seq.error
            if seq.done or seq.cancelled:
                raise StopAsyncIteration
            waiter = seq.waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            except asyncio.CancelledError:
                self._cancel()
                raise

    def _cancel(self) -> None:
        seq = self._seq
        if not seq.cancelled and not seq.done:
            seq.cancelled = True
            self._engine._cancelled(seq)
            seq.wake()  # a consumer blocked in __anext__ (another task) ends now

    async def aclose(self) -> None:
        self._cancel()


class _FixedStream:
    """``fixed`` mode: token ``i`` at ``t0 + ttft + i * itl`` (monotonic clock), whatever the others do; with a
    ``slow`` fault in force, each interval (and a time to first token that starts then) is that many times longer."""

    __slots__ = ("_closed", "_deadline", "_engine", "_i", "_itl", "_tokens")

    def __init__(self, engine: SimEngine, tokens: list[str], t0: float, ttft_s: float, itl_s: float) -> None:
        self._engine = engine
        self._tokens = tokens
        self._deadline = t0 + ttft_s * engine.slow_factor  # of the next token
        self._itl = itl_s
        self._i = 0
        self._closed = False

    def __aiter__(self) -> _FixedStream:
        return self

    async def __anext__(self) -> TokenChunk:
        if self._closed or self._i >= len(self._tokens):
            self._close()
            raise StopAsyncIteration
        engine = self._engine
        if engine._stopped:
            self._close()
            raise EngineRequestError("the engine stopped")
        deadline = self._deadline
        if deadline > time.monotonic():
            try:
                await engine._sleep_until(deadline)
            except asyncio.CancelledError:
                self._close()
                task = asyncio.current_task()
                if engine._stopped and task is not None and not task.cancelling():
                    raise EngineRequestError("the engine stopped") from None  # stop() closed the sleeper
                raise
            if self._closed:  # closed by the consumer while we slept
                raise StopAsyncIteration
        chunk = token_chunk(self._tokens[self._i])
        self._i += 1
        self._deadline = deadline + self._itl * engine.slow_factor
        engine.tokens_out += 1
        return chunk

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self._engine._fixed_active -= 1

    async def aclose(self) -> None:
        self._close()


class SimEngine(Engine):
    name = "sim"

    def __init__(self, config: SimEngineConfig | None = None) -> None:
        self.config = config or SimEngineConfig()
        c = self.config
        if c.max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {c.max_batch}")
        if c.queue_limit < 0:
            raise ValueError(f"queue_limit must not be negative, got {c.queue_limit}")
        for name in (
            "prefix_cache_tokens",
            "prefill_us_per_token",
            "step_base_us",
            "step_per_seq_us",
            "fixed_ttft_ms",
            "fixed_itl_ms",
        ):
            if getattr(c, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(c, name)}")
        self._tokenizer = WordTokenizer()
        self.prefix_cache = PrefixCache(c.prefix_cache_tokens) if c.prefix_cache_tokens > 0 and not c.fixed else None
        self._waiting: collections.deque[_Sequence] = collections.deque()
        self._running: list[_Sequence] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._fixed_active = 0
        self._sleeper: PreciseSleeper | None = None
        # figures for stats()
        self.steps = 0
        self.tokens_out = 0
        self.admitted = 0
        self.rejected = 0
        self.cancelled = 0
        self.max_batch_seen = 0
        self.last_batch = 0
        self.last_step_us = 0.0
        self.busy_s = 0.0  # sum of modelled step times
        self._batch_sum = 0  # sum over steps of the batch size

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    async def _sleep_until(self, deadline: float) -> None:
        sleeper = self._sleeper
        if sleeper is None:
            sleeper = self._sleeper = PreciseSleeper()
        await sleeper.sleep_until(deadline)

    async def start(self) -> None:
        self._stopped = False
        if self._sleeper is None:
            self._sleeper = PreciseSleeper()
        if not self.config.fixed and self._task is None:
            self._wakeup = asyncio.Event()
            self._task = asyncio.create_task(self._step_loop(), name="sim-engine-steps")

    async def stop(self) -> None:
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        error = EngineRequestError("the engine stopped")
        for seq in [*self._waiting, *self._running]:
            if not seq.done:
                seq.error = error
                seq.wake()
        self._waiting.clear()
        self._running.clear()
        sleeper, self._sleeper = self._sleeper, None
        if sleeper is not None:
            sleeper.close()

    # -- admission -----------------------------------------------------------------------------------------------

    def generate(self, request: GenerationRequest) -> AsyncIterator[TokenChunk]:
        """Admits the request now (raising :class:`EngineOverloaded` when the queue is full) and returns
        the stream of its chunks."""
        if self._stopped:
            raise EngineRequestError("the engine is not running")
        if request.max_tokens < 1:
            raise EngineRequestError(f"max_tokens must be at least 1, got {request.max_tokens}")
        c = self.config
        if c.fixed:
            tokens = self._tokenizer.split(request.reply)[: request.max_tokens]
            self._fixed_active += 1
            self.admitted += 1
            t0 = request.received_at if request.received_at is not None else time.monotonic()
            return _FixedStream(self, tokens, t0, c.fixed_ttft_ms / 1000.0, c.fixed_itl_ms / 1000.0)
        if self._task is None or self._wakeup is None:
            raise EngineRequestError("the engine is not running (start() was not called)")
        # waiting beyond the free batch slots: those really queue
        queued = len(self._waiting) - max(0, c.max_batch - len(self._running))
        if queued >= c.queue_limit:
            self.rejected += 1
            raise EngineOverloaded(
                f"engine queue full: {len(self._waiting)} requests waiting, {len(self._running)} running"
            )
        tokens = self._tokenizer.split(request.reply)[: request.max_tokens]
        seq = _Sequence(tokens, self._prefill_tokens(request.prompt))
        self._waiting.append(seq)
        self.admitted += 1
        self._wakeup.set()
        return _BatchStream(self, seq)

    def _prefill_tokens(self, prompt: str) -> int:
        """The prompt tokens to prefill: all of them, less the prefix the cache holds (when it is on)."""
        cache = self.prefix_cache
        if cache is None:
            return self._tokenizer.count(prompt)
        tokens = self._tokenizer.split(prompt)
        return len(tokens) - cache.lookup(tokens)

    def _cancelled(self, seq: _Sequence) -> None:
        self.cancelled += 1
        seq.pending.clear()
        # a waiting sequence is skipped when its turn comes; a running one leaves at the next step

    # -- the step loop -------------------------------------------------------------------------------------------

    async def _step_loop(self) -> None:
        # long on purpose: join, model, sleep and emit of one step, inlined (it runs once per decoded token)
        assert self._wakeup is not None
        wakeup = self._wakeup
        c = self.config
        waiting, running = self._waiting, self._running
        deadline = time.monotonic()
        try:
            while True:
                if not running and not waiting:
                    wakeup.clear()
                    await wakeup.wait()
                    deadline = time.monotonic()
                # join: while there is room
                prefill_tokens = 0
                while waiting and len(running) < c.max_batch:
                    seq = waiting.popleft()
                    if seq.cancelled:
                        continue
                    running.append(seq)
                    prefill_tokens += seq.prompt_tokens
                batch = len(running)
                if batch == 0:
                    continue
                step_us = c.step_base_us + c.step_per_seq_us * batch + c.prefill_us_per_token * prefill_tokens
                step_us *= self.slow_factor  # 1.0 unless a slow fault is in force
                # absolute deadlines: a late wake-up (timer granularity is ~1 ms) shortens the next sleep
                # instead of adding up, unless the loop fell far behind (then the schedule restarts from now)
                step_s = step_us / 1e6
                now = time.monotonic()
                if now - deadline > max(step_s, CATCH_UP_S):
                    deadline = now
                deadline += step_s
                if deadline > now:
                    await self._sleep_until(deadline)
                else:
                    await asyncio.sleep(0)
                self.steps += 1
                self.last_batch = batch
                self._batch_sum += batch
                if batch > self.max_batch_seen:
                    self.max_batch_seen = batch
                self.last_step_us = step_us
                self.busy_s += step_s
                # emit: every running sequence its next token
                emitted = 0
                keep: list[_Sequence] = []
                for seq in running:
                    if seq.cancelled:
                        continue
                    i = seq.next_token
                    if i < len(seq.tokens):
                        seq.pending.append(token_chunk(seq.tokens[i]))
                        seq.next_token = i + 1
                        emitted += 1
                    if seq.next_token >= len(seq.tokens):
                        seq.done = True
                    else:
                        keep.append(seq)
                    seq.wake()
                running[:] = keep
                self.tokens_out += emitted
        except asyncio.CancelledError:
            raise
        except Exception:  # pragma: no cover - a bug: fail every request rather than hang them
            logger.exception("sim engine step loop crashed")
            error = EngineRequestError("the engine failed")
            for seq in [*waiting, *running]:
                seq.error = error
                seq.wake()
            waiting.clear()
            running.clear()
            self._stopped = True
            raise

    # -- figures -------------------------------------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        cache = self.prefix_cache
        return {
            **(cache.stats() if cache is not None else {"prefix_cache_capacity_tokens": 0}),
            "queue_depth": len(self._waiting),
            "running": self._fixed_active if self.config.fixed else len(self._running),
            "steps": self.steps,
            "tokens_out": self.tokens_out,
            "admitted": self.admitted,
            "rejected": self.rejected,
            "cancelled": self.cancelled,
            "last_batch": self.last_batch,
            "max_batch_seen": self.max_batch_seen,
            "mean_batch": (self._batch_sum / self.steps) if self.steps else 0.0,
            "last_step_us": self.last_step_us,
            "busy_s": self.busy_s,
            "max_batch": self.config.max_batch,
            "queue_limit": self.config.queue_limit,
        }


__all__ = ["SimEngine"]
