"""The ``torch`` engine: a real transformer's prefill and decode steps, with continuous or static batching.

Forced decoding. The text of every reply comes from the responder (``GenerationRequest.reply``), never from
the model: its weights are random (a fixed seed) and its argmax is computed and then ignored. What the model
supplies is the cost: the prompt is prefilled, and each output token is one decode step of a real
transformer with a KV cache, batched with every other running sequence. So the retention checks of a load
test stay meaningful, while time to first token and inter-token latency behave like a model server's.

The output tokens are the reply tokenized by :class:`PieceTokenizer` and cut to ``max_tokens`` (one chunk per
token); the prompt is cut from the left to fit the model's positions. Token 1 comes from the prefill, each
later token from one decode step that feeds the one before it (as a real server does), so a reply of ``n``
tokens costs one prefill and ``n - 1`` decode steps.

A ``slow Nx`` fault (``Engine.slow_factor`` above 1) makes the worker sleep after each step for N - 1 times what
the step took (a sleep's overshoot taken off the next), before handing its chunks over.

Threads. The model runs in one dedicated worker thread, under ``torch.inference_mode()``, so the asyncio
loop is never blocked; after each step the worker hands the step's chunks back to the loop with one
``loop.call_soon_threadsafe``. bf16 on CUDA, fp32 on CPU. On CPU the engine gives PyTorch half the cores
for its intra-op threads (unless ``OMP_NUM_THREADS`` is set).

Memory. ``kv_tokens`` bounds the sum of the running sequences' KV needs (prompt plus output positions, or the
window), which is what a paged KV cache would hold; the cache tensor itself is ``max_batch`` slots, each as
long as the longest running sequence needs (it grows by doubling).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator

import torch

from loadgen.errors import ConfigError
from loadgen.server.config import TorchEngineConfig
from loadgen.server.engines.base import (
    Engine,
    EngineRequestError,
    GenerationRequest,
    TokenChunk,
)
from loadgen.server.engines.torch_engine.configs import ModelConfig, model_config
from loadgen.server.engines.torch_engine.model import KVCache, Transformer
from loadgen.server.engines.torch_engine.scheduler import Scheduler, Sequence
from loadgen.server.engines.torch_engine.tokenizer import PieceTokenizer

log = logging.getLogger(__name__)

_END = object()  # end of a stream


class TorchEngine(Engine):
    name = "torch"

    def __init__(self, config: TorchEngineConfig | None = None) -> None:
        self.config = config = config or TorchEngineConfig()
        self.device = _device(config.device)
        self.dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.model_config: ModelConfig = model_config(config.model, config.window)
        for name, value, low in (
            ("max_batch", config.max_batch, 1),
            ("kv_tokens", config.kv_tokens, 1),
            ("queue_limit", config.queue_limit, 0),
        ):
            if value < low:
                raise ConfigError(f"torch engine: {name} must be at least {low}, got {value}")
        if config.static_batch_timeout_ms < 0:
            raise ConfigError("torch engine: static_batch_timeout_ms must not be negative")
        if config.batching not in ("continuous", "static"):
            raise ConfigError(f"unknown --batching {config.batching!r}: choose continuous or static")
        self._tokenizer = PieceTokenizer(self.model_config.vocab_size)
        self.scheduler = Scheduler(
            batching=config.batching,
            max_batch=config.max_batch,
            kv_tokens=config.kv_tokens,
            queue_limit=config.queue_limit,
            static_batch_timeout_s=config.static_batch_timeout_ms / 1000.0,
        )
        self.model: Transformer | None = None
        self.cache: KVCache | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._running: list[Sequence] = []  # worker-owned; index = KV cache slot
        self._slow_debt_s = 0.0  # worker-owned: sleep still owed to a slow fault (negative: overslept)
        self._figures: dict[str, float] = {  # written by the worker only
            "steps": 0,
            "decode_steps": 0,
            "last_batch": 0,  # sequences in the last decode step
            "max_batch_seen": 0,
            "prefills": 0,
            "prefill_tokens": 0,
            "empty_replies": 0,
            "decode_tokens": 0,
            "prefill_s": 0.0,  # worker time spent in prefills
            "decode_s": 0.0,  # worker time spent in decode steps
            "last_step_ms": 0.0,
        }

    @property
    def tokenizer(self) -> PieceTokenizer:
        return self._tokenizer

    # -- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._thread is not None:
            return
        if self.device.type == "cpu":
            configure_cpu_threads()
        self._loop = loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._thread = threading.Thread(target=self._worker, args=(ready,), name="torch-engine", daemon=True)
        self._thread.start()
        await ready  # the model is built (or building it failed)

    async def stop(self) -> None:
        for seq in self.scheduler.stop():
            self._deliver([(seq, EngineRequestError("the engine stopped"))])
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    # -- requests --------------------------------------------------------------------------------------

    def generate(self, request: GenerationRequest) -> AsyncIterator[TokenChunk]:
        """Queue the request and return its stream. Refusals are raised here, before any chunk:
        :class:`EngineOverloaded` (queue full) or :class:`EngineRequestError` (can never fit)."""
        if self._loop is None:
            raise RuntimeError("TorchEngine.start() must run before generate()")
        seq = self.prepare(request)
        stream = TokenStream(self, seq)
        self.scheduler.submit(seq)
        return stream

    def prepare(self, request: GenerationRequest) -> Sequence:
        """Tokenize a request: forced output pieces, prompt cut from the left to the model's positions."""
        tok = self._tokenizer
        pieces = tok.split(request.reply)[: max(0, request.max_tokens)]
        n_out = len(pieces)
        room = self.model_config.max_seq_len - max(n_out - 1, 0)  # positions left for the prompt
        if room < 1:
            raise EngineRequestError(
                f"{n_out} output tokens do not fit the model's {self.model_config.max_seq_len} positions"
            )
        prompt_ids = tok.encode_prompt(request.prompt)
        if len(prompt_ids) > room:
            prompt_ids = [prompt_ids[0], *prompt_ids[len(prompt_ids) - room + 1 :]]  # keep BOS and the newest
        positions = len(prompt_ids) + max(n_out - 1, 0)
        window = self.model_config.window
        need = positions if window is None else min(positions, window)
        output_ids = [tok.token_id(p) for p in pieces]
        return Sequence(request.request_id, prompt_ids, output_ids, [TokenChunk(p) for p in pieces], need)

    def stats(self) -> dict[str, float]:
        """The sim engine's figures under the same names, plus the KV budget and the worker's time."""
        sched, fig = self.scheduler, self._figures
        return {
            "queue_depth": sched.queue_depth,
            "running": sched.active,
            "steps": fig["steps"],
            "tokens_out": fig["prefills"] + fig["decode_tokens"] - fig["empty_replies"],
            "admitted": sched.stats.admitted,
            "rejected": sched.stats.rejected,
            "cancelled": sched.stats.cancelled,
            "completed": sched.stats.released - sched.stats.cancelled,
            "last_batch": fig["last_batch"],
            "max_batch_seen": fig["max_batch_seen"],
            "mean_batch": fig["decode_tokens"] / fig["decode_steps"] if fig["decode_steps"] else 0.0,
            "max_batch": sched.max_batch,
            "queue_limit": sched.queue_limit,
            "kv_tokens_used": sched.kv_used,
            "kv_tokens_budget": sched.kv_tokens,
            "prefills": fig["prefills"],
            "prefill_tokens": fig["prefill_tokens"],
            "decode_tokens": fig["decode_tokens"],
            "prefill_s": fig["prefill_s"],
            "decode_s": fig["decode_s"],
            "last_step_ms": fig["last_step_ms"],
        }

    # -- the worker thread -----------------------------------------------------------------------------

    def _deliver(self, items: list[tuple[Sequence, object]]) -> None:
        """Hand chunks, ends and errors to their streams on the event loop (one hop per step)."""
        loop = self._loop
        if not items or loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening any more
            loop.call_soon_threadsafe(_put_all, items)

    def _worker(self, ready: asyncio.Future[None]) -> None:
        loop = self._loop
        assert loop is not None
        try:
            with torch.inference_mode():
                self.model = Transformer.build(self.model_config, self.device, self.dtype, self.config.seed)
                self.cache = KVCache(self.model_config, self.config.max_batch, self.device, self.dtype)
        except BaseException as exc:
            log.exception("torch engine: building the model failed")
            loop.call_soon_threadsafe(_settle, ready, exc)
            return
        log.info(
            "torch engine ready: model %s (%.1fM parameters, %s, %s), %s batching, window %s",
            self.model_config.name,
            self.model_config.n_params() / 1e6,
            self.device,
            str(self.dtype).removeprefix("torch."),
            self.config.batching,
            self.model_config.window,
        )
        loop.call_soon_threadsafe(_settle, ready, None)
        try:
            with torch.inference_mode():
                self._run_steps()
        except BaseException:
            log.exception("torch engine: the worker thread died")
        finally:
            failed = self._running + self.scheduler.stop()
            self._deliver([(seq, EngineRequestError("the engine stopped")) for seq in failed])
            for seq in self._running:
                self.scheduler.release(seq)
            self._running = []

    def _run_steps(self) -> None:
        while True:
            for seq in [s for s in self._running if s.cancelled]:
                self._leave(seq)
            admitted = self.scheduler.take(block=not self._running)
            if admitted is None:
                return
            t0 = time.perf_counter()
            out: list[tuple[Sequence, object]] = []
            decoding = list(self._running)  # sequences prefilled in this step decode from the next one
            for seq in admitted:
                if seq.cancelled:
                    self.scheduler.release(seq)
                    continue
                self._prefill(seq, out)
            t1 = time.perf_counter()
            if decoding:
                self._decode(decoding, out)
            for seq in [s for s in self._running if s.finished]:
                self._leave(seq)
            t2 = time.perf_counter()
            fig = self._figures
            fig["steps"] += 1
            fig["prefill_s"] += t1 - t0
            fig["decode_s"] += t2 - t1
            fig["last_step_ms"] = (t2 - t0) * 1000.0
            if decoding:
                fig["decode_steps"] += 1
                fig["last_batch"] = len(decoding)
                fig["max_batch_seen"] = max(fig["max_batch_seen"], len(decoding))
            if self.slow_factor > 1.0:  # a slow fault: the step takes that many times as long
                self._slow_down(t2 - t0)
            self._deliver(out)  # last: a consumer that saw its stream end sees the slot free and the step counted

    def _slow_down(self, step_s: float) -> None:
        """Sleep (slow_factor - 1) x the step; a sleep's overshoot is taken off the next ones, so that over a reply
        the steps take slow_factor times as long, however coarse the sleeps."""
        self._slow_debt_s += (self.slow_factor - 1.0) * step_s
        if self._slow_debt_s > 0:
            started = time.perf_counter()
            time.sleep(self._slow_debt_s)
            self._slow_debt_s -= time.perf_counter() - started

    def _emit(self, seq: Sequence, out: list[tuple[Sequence, object]]) -> None:
        out.append((seq, seq.chunks[seq.n_out]))
        seq.n_out += 1
        if seq.finished:
            out.append((seq, _END))

    def _prefill(self, seq: Sequence, out: list[tuple[Sequence, object]]) -> None:
        model, cache = self.model, self.cache
        assert model is not None and cache is not None
        seq.slot = len(self._running)
        self._running.append(seq)
        try:
            cache.ensure(len(seq.prompt_ids) + max(len(seq.output_ids) - 1, 0))
            tokens = torch.tensor(seq.prompt_ids, device=self.device)
            logits = model.prefill(tokens, cache, seq.slot)
            int(logits.argmax())  # the token a real server would sample (ignored); also waits for the device
        except Exception as exc:
            log.exception("torch engine: prefill of %s failed", seq.request_id)
            out.append((seq, EngineRequestError(f"prefill failed: {exc}")))
            self._leave(seq)
            return
        seq.pos = len(seq.prompt_ids)
        self._figures["prefills"] += 1
        self._figures["prefill_tokens"] += seq.pos
        if seq.output_ids:
            self._emit(seq, out)
        else:
            self._figures["empty_replies"] += 1
            out.append((seq, _END))

    def _decode(self, batch: list[Sequence], out: list[tuple[Sequence, object]]) -> None:
        model, cache = self.model, self.cache
        assert model is not None and cache is not None
        tokens = torch.tensor([s.output_ids[s.n_out - 1] for s in batch], device=self.device)
        try:
            logits = model.decode(tokens, [s.pos for s in batch], cache)
            logits.argmax(dim=-1).tolist()  # sampled and ignored, as above
        except Exception as exc:
            log.exception("torch engine: decode step failed")
            for seq in batch:
                out.append((seq, EngineRequestError(f"decode failed: {exc}")))
                seq.cancelled = True
            return
        for seq in batch:
            seq.pos += 1
            self._emit(seq, out)
        self._figures["decode_tokens"] += len(batch)

    def _leave(self, seq: Sequence) -> None:
        """Take ``seq`` out of the running batch; the last sequence moves into its cache slot."""
        cache = self.cache
        assert cache is not None
        slot, last = seq.slot, len(self._running) - 1
        if slot != last:
            moved = self._running[last]
            cache.move(last, slot, moved.pos)
            moved.slot = slot
            self._running[slot] = moved
        self._running.pop()
        seq.slot = -1
        self.scheduler.release(seq)


class TokenStream(AsyncIterator[TokenChunk]):
    """The consumer's end of one sequence. Closing it (``aclose``, cancellation, or dropping it) frees the
    sequence's slot and KV memory."""

    def __init__(self, engine: TorchEngine, seq: Sequence) -> None:
        self._engine = engine
        self._seq = seq
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._done = False
        seq.sink = self._queue

    def __aiter__(self) -> TokenStream:
        return self

    async def __anext__(self) -> TokenChunk:
        if self._done:
            raise StopAsyncIteration
        try:
            item = await self._queue.get()
        except BaseException:  # cancelled while waiting: the client went away
            self._abandon()
            raise
        if isinstance(item, TokenChunk):
            return item
        self._done = True
        if isinstance(item, BaseException):
            raise item
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self._abandon()

    def _abandon(self) -> None:
        if not self._done:
            self._done = True
            self._engine.scheduler.cancel(self._seq)

    def __del__(self) -> None:  # dropped without being closed: free the slot all the same
        with contextlib.suppress(Exception):
            self._abandon()


def _put_all(items: list[tuple[Sequence, object]]) -> None:
    for seq, item in items:
        if seq.sink is not None:
            seq.sink.put_nowait(item)


def _settle(fut: asyncio.Future[None], exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)


def configure_cpu_threads() -> int:
    """Give PyTorch's intra-op pool half the cores (unless ``OMP_NUM_THREADS`` says otherwise); return the count.

    The event loop, and often the load generator, share the machine: oversubscribed OpenMP threads were
    measured stalling a tiny model's steps for 400-900 ms on 2 cores, against a steady ~50 ms with one thread.
    """
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
    return torch.get_num_threads()


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"unknown --device {name!r}: use cuda or cpu") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "--device cuda was asked for but this PyTorch sees no CUDA GPU "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); use --device cpu"
        )
    if device.type not in ("cuda", "cpu"):
        raise ConfigError(f"unsupported --device {name!r}: use cuda or cpu")
    return device
