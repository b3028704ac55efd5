"""The torch engine end to end on CPU with the tiny model: the Engine interface, forced decoding, continuous
and static batching, the KV budget, and streams closed early."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import pytest

with warnings.catch_warnings():  # a CPU wheel without NumPy warns at import
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)
    torch = pytest.importorskip(
        "torch", reason="the torch engine needs PyTorch: install 'chat-loadgen[gpu]' or pip install torch==2.13.0"
    )

from loadgen.errors import ConfigError
from loadgen.server.config import TorchEngineConfig
from loadgen.server.engines.base import (
    Engine,
    EngineOverloaded,
    EngineRequestError,
    GenerationRequest,
    TokenChunk,
    Tokenizer,
)
from loadgen.server.engines.torch_engine import TorchEngine
from loadgen.server.service import failure_of
from loadgen.wire.status import Failure

pytestmark = pytest.mark.torch
TINY = TorchEngineConfig(model="tiny", device="cpu")


def request(
    reply: str = "hello there", prompt: str = "user: hi\n", max_tokens: int = 64, rid: str = "r"
) -> GenerationRequest:
    return GenerationRequest(request_id=rid, prompt=prompt, reply=reply, max_tokens=max_tokens)


def with_engine(config: TorchEngineConfig, body: Callable[[TorchEngine], Awaitable[None]]) -> None:
    async def main() -> None:
        engine = TorchEngine(config)
        await engine.start()
        try:
            await body(engine)
        finally:
            await engine.stop()

    asyncio.run(main())


async def collect(stream: AsyncIterator[TokenChunk]) -> list[TokenChunk]:
    return [chunk async for chunk in stream]


async def timed(engine: TorchEngine, req: GenerationRequest) -> tuple[float, float, str]:
    """(first chunk, last chunk) in seconds of time.monotonic, and the text."""
    first = None
    text = ""
    async for chunk in engine.generate(req):
        first = first or time.monotonic()
        text += chunk.text
    assert first is not None
    return first, time.monotonic(), text


async def wait_for(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def test_implements_the_engine_interface_and_streams_the_forced_reply() -> None:
    async def body(engine: TorchEngine) -> None:
        assert isinstance(engine, Engine) and isinstance(engine.tokenizer, Tokenizer)
        assert engine.name == "torch"
        reply = "Your code is ÅB-12 → ok 🙂 and more text after it"
        stream = engine.generate(request(reply, max_tokens=1000))
        assert isinstance(stream, AsyncIterator)
        chunks = await collect(stream)
        assert [c.text for c in chunks] == engine.tokenizer.split(reply)  # one chunk per token
        assert all(c.n_tokens == 1 for c in chunks)
        # max_tokens counts tokens of the engine's tokenizer
        cut = await collect(engine.generate(request(reply, max_tokens=4)))
        assert "".join(c.text for c in cut) == "".join(engine.tokenizer.split(reply)[:4]) == "Your code is ÅB"
        assert await collect(engine.generate(request("", max_tokens=10))) == []
        stats = engine.stats()
        assert stats["completed"] == 3 and stats["running"] == 0 and stats["kv_tokens_used"] == 0
        # n output tokens cost one prefill and n - 1 decode steps
        assert stats["prefills"] == 3 and stats["decode_tokens"] == (len(chunks) - 1) + (4 - 1)
        assert stats["tokens_out"] == len(chunks) + 4

    with_engine(TINY, body)


def test_a_prompt_longer_than_the_model_is_cut_from_the_left_and_too_much_for_the_kv_budget_is_refused() -> None:
    async def body(engine: TorchEngine) -> None:
        long_prompt = "x " * 9000  # 9000 tokens: more than the tiny model's 8192 positions
        seq = engine.prepare(request("ok then", prompt=long_prompt))
        assert len(seq.prompt_ids) + len(seq.output_ids) - 1 == engine.model_config.max_seq_len
        chunks = await collect(engine.generate(request("ok then", prompt=long_prompt)))
        assert "".join(c.text for c in chunks) == "ok then"

    with_engine(replace(TINY, kv_tokens=10000), body)

    async def small(engine: TorchEngine) -> None:
        with pytest.raises(EngineRequestError, match="KV tokens"):
            engine.generate(request("ok", prompt="y " * 200))
        assert engine.stats()["running"] == 0

    with_engine(replace(TINY, kv_tokens=100), small)


def test_continuous_batching_overlaps_requests() -> None:
    async def body(engine: TorchEngine) -> None:
        reply = "word " * 100
        tasks = [asyncio.create_task(timed(engine, request(reply, rid=f"r{i}", max_tokens=300))) for i in range(6)]
        peak = 0.0
        while not all(t.done() for t in tasks):
            peak = max(peak, engine.stats()["last_batch"])
            await asyncio.sleep(0.002)
        results = [t.result() for t in tasks]
        assert all(text == reply for _, _, text in results)
        assert engine.stats()["max_batch_seen"] > 1
        assert peak > 1
        # overlapping, not one after another: every request started before the first one ended
        assert max(first for first, _, _ in results) < min(last for _, last, _ in results)

    with_engine(replace(TINY, max_batch=8), body)


def test_continuous_batching_lets_a_request_join_a_running_batch() -> None:
    async def body(engine: TorchEngine) -> None:
        long = asyncio.create_task(timed(engine, request("a " * 400, max_tokens=400)))
        await wait_for(lambda: engine.stats()["decode_tokens"] > 20)
        _, short_last, _ = await timed(engine, request("b " * 10))
        _, long_last, _ = await long
        assert short_last < long_last  # it joined and left while the long one kept decoding

    with_engine(replace(TINY, max_batch=4), body)


def test_static_batching_holds_a_lone_request_until_the_timeout() -> None:
    timeout_ms = 600.0

    async def body(engine: TorchEngine) -> None:
        t0 = time.monotonic()
        first, _, _ = await timed(engine, request("hi"))
        assert first - t0 >= timeout_ms / 1000 * 0.95
        # a full batch does not wait for the timeout
        t0 = time.monotonic()
        results = await asyncio.gather(*(timed(engine, request("hi there", rid=f"f{i}")) for i in range(3)))
        assert max(first for first, _, _ in results) - t0 < timeout_ms / 1000 / 2
        assert engine.stats()["max_batch_seen"] == 3

    with_engine(replace(TINY, batching="static", max_batch=3, static_batch_timeout_ms=timeout_ms), body)


def test_static_batching_admits_no_one_into_a_running_batch() -> None:
    async def body(engine: TorchEngine) -> None:
        batch = [asyncio.create_task(timed(engine, request("c " * 150, rid=f"b{i}", max_tokens=200))) for i in range(2)]
        await wait_for(lambda: engine.stats()["decode_tokens"] > 10)
        late_first, _, _ = await timed(engine, request("d e", rid="late"))
        ends = [last for _, last, _ in await asyncio.gather(*batch)]
        assert late_first >= max(ends)  # it waited for the whole batch, although a slot... none was free
        assert engine.stats()["max_batch_seen"] == 2

    with_engine(replace(TINY, batching="static", max_batch=2, static_batch_timeout_ms=20.0), body)


def test_kv_budget_is_never_exceeded_and_overflow_is_refused_with_engine_overloaded() -> None:
    async def body(engine: TorchEngine) -> None:
        prompt, reply = " p" * 99, " r" * 101  # BOS + 99 + 100 decode positions = 200 KV tokens each
        assert engine.prepare(request(reply, prompt=prompt, max_tokens=200)).need == 200
        streams: list[AsyncIterator[TokenChunk]] = []
        refused = 0
        for i in range(6):
            try:
                streams.append(engine.generate(request(reply, prompt=prompt, rid=f"k{i}", max_tokens=200)))
            except EngineOverloaded:
                refused += 1
        assert (len(streams), refused) == (2, 4)  # one running (2 x 200 > 300), one queued (queue_limit=1)
        budget_ok = True

        async def watch() -> None:
            nonlocal budget_ok
            while True:
                s = engine.stats()
                budget_ok &= s["kv_tokens_used"] <= s["kv_tokens_budget"] and s["running"] <= 1
                await asyncio.sleep(0.001)

        watcher = asyncio.create_task(watch())
        texts = await asyncio.gather(*(collect(s) for s in streams))
        watcher.cancel()
        assert all("".join(c.text for c in t) == reply for t in texts)
        assert budget_ok
        assert engine.stats()["rejected"] == 4 and engine.stats()["kv_tokens_used"] == 0

    with_engine(replace(TINY, kv_tokens=300, max_batch=8, queue_limit=1), body)


@pytest.mark.parametrize("how", ["aclose", "cancel", "drop"])
def test_closing_a_stream_early_frees_its_slot(how: str) -> None:
    async def body(engine: TorchEngine) -> None:
        stream = engine.generate(request(" z" * 2000, max_tokens=2000, rid="long"))
        waiting = engine.generate(request("next", rid="next"))
        assert engine.stats()["queue_depth"] == 1  # max_batch=1: the second one waits for the slot
        if how == "drop":  # a handler that lets go of the stream without closing it
            it = aiter(stream)
            for _ in range(3):
                await anext(it)
            del it, stream
        else:
            got = 0

            async def handler() -> None:  # a front's handler task streaming to its client
                nonlocal got
                async for _ in stream:
                    got += 1
                    if how == "aclose" and got == 3:
                        await stream.aclose()  # type: ignore[attr-defined]
                        return

            task = asyncio.create_task(handler())
            if how == "cancel":  # the client went away: the server cancels the handler
                await wait_for(lambda: got >= 3)
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        chunks = await asyncio.wait_for(collect(waiting), timeout=5)
        assert "".join(c.text for c in chunks) == "next"
        stats = engine.stats()
        assert stats["cancelled"] == 1 and stats["running"] == 0 and stats["kv_tokens_used"] == 0
        assert stats["decode_tokens"] < 1500  # the abandoned reply was not decoded to its end

    with_engine(replace(TINY, max_batch=1), body)


def test_stop_ends_pending_requests_with_an_error() -> None:
    async def main() -> None:
        engine = TorchEngine(replace(TINY, max_batch=1))
        await engine.start()
        running = engine.generate(request(" x" * 3000, max_tokens=3000))
        queued = engine.generate(request("y"))
        await anext(aiter(running))
        await engine.stop()
        # mid-reply (or before its first chunk, once admitted): the status table's ENGINE_STOPPED, not Overloaded
        for stream in (queued, running):
            with pytest.raises(EngineRequestError, match="the engine stopped") as caught:
                await collect(stream)
            assert failure_of(caught.value) is Failure.ENGINE_STOPPED
        with pytest.raises(EngineOverloaded, match="stopping"):
            engine.generate(request("z"))

    asyncio.run(main())


def test_sliding_window_bounds_each_sequence_kv_need() -> None:
    async def body(engine: TorchEngine) -> None:
        req = request(" w" * 100, prompt=" q" * 500, max_tokens=100)
        assert engine.prepare(req).need == 64
        assert "".join(c.text for c in await collect(engine.generate(req))) == " w" * 100

    with_engine(replace(TINY, window=64, kv_tokens=128), body)


def test_tiny_serves_a_five_turn_conversation_quickly() -> None:
    async def body(engine: TorchEngine) -> None:
        history = ""
        for turn in range(5):
            history += f"user: turn {turn}, my booking code is AB{turn}234, what about the weather? " * 4 + "\n"
            reply = f"Sure. Your booking code AB{turn}234 is noted; the weather looks fine for the weekend. " * 2
            t0 = time.monotonic()
            chunks = await collect(engine.generate(request(reply, prompt=history, max_tokens=64)))
            elapsed = time.monotonic() - t0
            text = "".join(c.text for c in chunks)
            assert text == "".join(engine.tokenizer.split(reply)[:64]) and f"AB{turn}234" in text
            assert elapsed < 2.0, f"turn {turn} took {elapsed:.2f}s"
            history += "assistant: " + text + "\n"

    with_engine(TINY, body)


def test_bad_settings_are_config_errors() -> None:
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            TorchEngine(replace(TINY, device="cuda"))
    with pytest.raises(ConfigError, match="--device"):
        TorchEngine(replace(TINY, device="tpu"))
    with pytest.raises(ConfigError, match="--torch-model"):
        TorchEngine(replace(TINY, model="huge"))
    with pytest.raises(ConfigError, match="--batching"):
        TorchEngine(replace(TINY, batching="dynamic"))
    with pytest.raises(ConfigError, match="max_batch"):
        TorchEngine(replace(TINY, max_batch=0))
    with pytest.raises(RuntimeError, match="start"):
        TorchEngine(TINY).generate(request())


def test_slow_factor_stretches_each_step() -> None:
    """The slow fault: the worker sleeps after each step for (N - 1) times what the step took, a sleep's overshoot
    taken off the next ones: over a reply, the wall time between its first and last token is N times the time its
    steps took (what the engine itself counted), however long each step ran (a step after a sleep runs colder)."""

    async def body(engine: TorchEngine) -> None:
        def step_s() -> float:
            return float(engine._figures["prefill_s"] + engine._figures["decode_s"])

        async def stretch(factor: float) -> float:
            engine.slow_factor = factor
            before = step_s()
            first, last, _ = await timed(engine, request(" w" * 40, max_tokens=40))
            return (last - first) / (step_s() - before)

        await stretch(1.0)  # warm up
        assert min([await stretch(1.0) for _ in range(2)]) < 1.5  # unslowed: the span is about the steps' time
        for factor in (3.0, 5.0):
            ratio = min([await stretch(factor) for _ in range(2)])
            # the span misses the first step's prefill and the last sleep: a little under N, never N^2 or 1
            assert 0.7 * factor <= ratio <= 1.2 * factor, (factor, ratio)

    with_engine(TINY, body)
