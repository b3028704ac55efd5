"""Benchmark of the torch engine (run by hand; prints markdown tables).

    python tests/bench/bench_torch_engine.py --device cuda --model 1b            # on a GPU (H100 SXM bound)
    python tests/bench/bench_torch_engine.py --device cpu --model tiny           # anywhere, in seconds

What it measures, all through the engine's own interface (``TorchEngine.generate``) unless said otherwise:

1. decode throughput at batch 1, 8, 64: that many equal requests form one batch; output tokens/s and time
   per decode step, from the moment all of them have their first token to the moment they finish;
2. time to first token against context length (512, 2048, 4096 tokens) on an idle engine;
3. static against continuous batching at the same offered load: Poisson arrivals, random prompt and reply
   lengths (the same seeded workload for both); output tokens/s, TTFT and end-to-end p50/p99;
4. the time of one decode step at batch 1, timed on the bare model, against the memory-bandwidth bound
   (weight bytes plus the KV bytes read, divided by ``--bandwidth``: H100 SXM HBM3 3.35e12 B/s by default;
   pass your own machine's figure, e.g. ~2e10 for a laptop's DRAM, for a CPU run).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import random
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)
    import torch

from loadgen.server.config import TorchEngineConfig
from loadgen.server.engines.base import GenerationRequest
from loadgen.server.engines.torch_engine import TorchEngine
from loadgen.server.engines.torch_engine.configs import model_config
from loadgen.server.engines.torch_engine.engine import configure_cpu_threads
from loadgen.server.engines.torch_engine.model import KVCache, Transformer


def text_of(n_tokens: int, word: str = " a") -> str:
    """A text of exactly ``n_tokens`` tokens of the engine's tokenizer (`` a`` is one piece)."""
    return word * n_tokens


@dataclass
class Timing:
    submitted: float
    first: float
    last: float
    tokens: int


async def run_one(engine: TorchEngine, prompt_tokens: int, reply_tokens: int, rid: str) -> Timing:
    req = GenerationRequest(rid, text_of(prompt_tokens), text_of(reply_tokens, " b"), reply_tokens)
    t0 = time.perf_counter()
    first = 0.0
    n = 0
    async for chunk in engine.generate(req):
        if n == 0:
            first = time.perf_counter()
        n += chunk.n_tokens
    return Timing(t0, first, time.perf_counter(), n)


async def started(config: TorchEngineConfig) -> TorchEngine:
    engine = TorchEngine(config)
    await engine.start()
    await run_one(engine, 16, 4, "warm-up")
    return engine


async def finish(engine: TorchEngine) -> None:
    await engine.stop()
    del engine
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# -- 1. decode throughput ----------------------------------------------------------------------------------------


async def decode_throughput(base: TorchEngineConfig, batch: int, prompt: int, reply: int) -> tuple[float, float]:
    """(output tokens/s, ms per decode step) with ``batch`` sequences decoding together."""
    # static batching with max_batch = batch: the batch forms once all of them wait, then decodes in lockstep
    config = TorchEngineConfig(
        **{
            **base.__dict__,
            "batching": "static",
            "max_batch": batch,
            "static_batch_timeout_ms": 200.0,
            "kv_tokens": batch * (prompt + reply + 8),
        }
    )
    engine = await started(config)
    try:
        results = await asyncio.gather(*(run_one(engine, prompt, reply, f"d{i}") for i in range(batch)))
        assert engine.stats()["max_batch_seen"] == batch, engine.stats()
    finally:
        await finish(engine)
    start = max(r.first for r in results)  # every sequence is prefilled: from here the batch is exactly `batch`
    end = max(r.last for r in results)
    steps = reply - 1
    return batch * steps / (end - start), (end - start) / steps * 1000.0


# -- 2. TTFT against context ---------------------------------------------------------------------------------------


async def ttft_by_context(base: TorchEngineConfig, contexts: list[int], repeats: int) -> list[tuple[int, float, float]]:
    engine = await started(TorchEngineConfig(**{**base.__dict__, "max_batch": 1}))
    rows = []
    try:
        for ctx in contexts:
            await run_one(engine, ctx, 2, "warm")
            ttfts = [(await run_one(engine, ctx, 2, f"t{ctx}-{i}")) for i in range(repeats)]
            values = [(t.first - t.submitted) * 1000.0 for t in ttfts]
            rows.append((ctx, statistics.median(values), min(values)))
    finally:
        await finish(engine)
    return rows


# -- 3. static vs continuous -------------------------------------------------------------------------------------


@dataclass
class Workload:
    arrivals: list[float]  # seconds from the start
    prompts: list[int]
    replies: list[int]


def make_workload(
    n: int, rate: float, seed: int, prompt_range: tuple[int, int], reply_range: tuple[int, int]
) -> Workload:
    rng = random.Random(seed)
    t, arrivals = 0.0, []
    for _ in range(n):
        t += rng.expovariate(rate)
        arrivals.append(t)
    return Workload(
        arrivals,
        [rng.randint(*prompt_range) for _ in range(n)],
        [rng.randint(*reply_range) for _ in range(n)],
    )


async def serve_workload(config: TorchEngineConfig, work: Workload) -> dict[str, float]:
    engine = await started(config)
    try:
        t0 = time.perf_counter()

        async def one(i: int) -> Timing:
            await asyncio.sleep(max(0.0, t0 + work.arrivals[i] - time.perf_counter()))
            return await run_one(engine, work.prompts[i], work.replies[i], f"w{i}")

        results = await asyncio.gather(*(one(i) for i in range(len(work.arrivals))))
        stats = engine.stats()
    finally:
        await finish(engine)
    ttft = [(r.first - r.submitted) * 1000.0 for r in results]
    e2e = [(r.last - r.submitted) * 1000.0 for r in results]
    span = max(r.last for r in results) - min(r.submitted for r in results)
    return {
        "tok_s": sum(r.tokens for r in results) / span,
        "ttft_p50": pct(ttft, 0.5),
        "ttft_p99": pct(ttft, 0.99),
        "e2e_p50": pct(e2e, 0.5),
        "e2e_p99": pct(e2e, 0.99),
        "mean_batch": stats["mean_batch"],
        "refused": stats["rejected"],
    }


# -- 4. decode step against the bandwidth bound -------------------------------------------------------------------


def bare_decode_step_ms(base: TorchEngineConfig, context: int, steps: int) -> tuple[float, int, int]:
    """(ms per batch-1 decode step on the bare model, weight bytes, KV bytes read per step)."""
    device = torch.device(base.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    cfg = model_config(base.model, base.window)
    with torch.inference_mode():
        model = Transformer.build(cfg, device, dtype, base.seed)
        cache = KVCache(cfg, 1, device, dtype)
        cache.ensure(context + steps + 1)
        model.prefill(torch.randint(1, cfg.vocab_size, (context,), device=device), cache, 0)
        token = torch.tensor([1], device=device)
        for i in range(5):  # warm-up
            model.decode(token, [context + i], cache).argmax(-1).tolist()
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(steps):
            model.decode(token, [context + 5 + i], cache).argmax(-1).tolist()  # waits for the device each step
        elapsed = time.perf_counter() - t0
    kv_read = cfg.kv_bytes_per_token(torch.tensor([], dtype=dtype).element_size()) * (context + 5 + steps // 2)
    weight_bytes = model.weight_bytes()
    del model, cache
    gc.collect()
    return elapsed / steps * 1000.0, weight_bytes, kv_read


# -- main ----------------------------------------------------------------------------------------------------------


def machine(device: str) -> str:
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {cpu} ({os.cpu_count()} cores), {configure_cpu_threads()} torch threads (as the engine sets)"


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu | cuda (default %(default)s)")
    p.add_argument("--model", default="tiny", help="tiny | 1b (default %(default)s)")
    p.add_argument("--window", type=int, default=None, help="sliding-window attention (tokens)")
    p.add_argument("--bandwidth", type=float, default=3.35e12, help="memory bandwidth, B/s (H100 SXM: 3.35e12)")
    p.add_argument("--batches", type=ints, default=[1, 8, 64], help="decode batch sizes (default 1,8,64)")
    p.add_argument("--contexts", type=ints, default=[512, 2048, 4096], help="TTFT context lengths")
    p.add_argument("--decode-prompt", type=int, default=128, help="prompt tokens in the decode runs")
    p.add_argument("--decode-tokens", type=int, default=128, help="output tokens per sequence in the decode runs")
    p.add_argument("--repeats", type=int, default=5, help="TTFT runs per context (median reported)")
    p.add_argument("--requests", type=int, default=200, help="requests in the static/continuous comparison")
    p.add_argument("--max-batch", type=int, default=32, help="max_batch in the static/continuous comparison")
    p.add_argument("--load", type=float, default=0.7, help="offered load as a fraction of measured capacity")
    p.add_argument("--rate", type=float, default=None, help="arrivals per second (default: from --load)")
    p.add_argument("--static-timeout-ms", type=float, default=50.0, help="static batching: batch-forming wait")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    base = TorchEngineConfig(device=args.device, model=args.model, window=args.window, seed=args.seed)
    probe = TorchEngine(base)  # validates device and model (ConfigError: a clear message)
    cfg = probe.model_config
    del probe
    print(f"# torch engine benchmark: model `{cfg.name}` ({cfg.n_params() / 1e6:.1f}M parameters) on {args.device}")
    print()
    print(f"- machine: {machine(args.device)}; torch {torch.__version__}; python {platform.python_version()}")
    print(f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}")
    print(f"- command: `{' '.join(sys.argv)}`")
    print()

    print(f"## 1. Decode throughput (prompt {args.decode_prompt} tokens, {args.decode_tokens} output tokens each)")
    print()
    print("| batch | output tokens/s | ms per decode step |")
    print("| ---: | ---: | ---: |")
    decode: dict[int, float] = {}
    for b in args.batches:
        tok_s, step_ms = await decode_throughput(base, b, args.decode_prompt, args.decode_tokens)
        decode[b] = step_ms
        print(f"| {b} | {tok_s:,.0f} | {step_ms:.2f} |", flush=True)
    print()

    print(f"## 2. Time to first token against context length (idle engine, median of {args.repeats})")
    print()
    print("| context tokens | TTFT median ms | TTFT min ms | prefill tokens/s |")
    print("| ---: | ---: | ---: | ---: |")
    for ctx, med, low in await ttft_by_context(base, args.contexts, args.repeats):
        print(f"| {ctx} | {med:.1f} | {low:.1f} | {ctx / (med / 1000):,.0f} |", flush=True)
    print()

    prompt_range, reply_range = (64, 512), (16, 256)
    mean_prompt, mean_reply = sum(prompt_range) // 2, sum(reply_range) // 2
    if args.rate is None:
        # capacity estimate: one request costs its prefill plus its share of full-batch decode steps
        _, step_ms = await decode_throughput(base, args.max_batch, mean_prompt, mean_reply)
        [(_, prefill_ms, _)] = await ttft_by_context(base, [mean_prompt], 3)
        per_request_s = (prefill_ms + mean_reply * step_ms / args.max_batch) / 1000.0
        rate = args.load / per_request_s
        how = (
            f"{args.load:.0%} of an estimated {1 / per_request_s:.1f} requests/s: prefill {prefill_ms:.1f} ms + "
            f"{mean_reply} tokens x {step_ms:.2f} ms / {args.max_batch} per request"
        )
    else:
        rate, how = args.rate, "--rate"
    work = make_workload(args.requests, rate, args.seed, prompt_range, reply_range)
    print(f"## 3. Static vs continuous batching at the same offered load ({rate:.2f} requests/s: {how})")
    print()
    print(
        f"{args.requests} requests, Poisson arrivals, prompts {prompt_range[0]}-{prompt_range[1]} tokens, replies "
        f"{reply_range[0]}-{reply_range[1]} tokens (uniform, seed {args.seed}); max_batch {args.max_batch}; "
        f"static batches wait up to {args.static_timeout_ms:g} ms to fill."
    )
    print()
    print("| batching | output tokens/s | TTFT p50 ms | TTFT p99 ms | e2e p50 ms | e2e p99 ms | mean batch | refused |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for mode in ("continuous", "static"):
        config = TorchEngineConfig(
            **{
                **base.__dict__,
                "batching": mode,
                "max_batch": args.max_batch,
                "queue_limit": args.requests,
                "static_batch_timeout_ms": args.static_timeout_ms,
            }
        )
        r = await serve_workload(config, work)
        print(
            f"| {mode} | {r['tok_s']:,.0f} | {r['ttft_p50']:.1f} | {r['ttft_p99']:.1f} | {r['e2e_p50']:.1f} | "
            f"{r['e2e_p99']:.1f} | {r['mean_batch']:.1f} | {r['refused']:.0f} |",
            flush=True,
        )
    print()

    ctx = args.decode_prompt
    step_ms, weight_bytes, kv_bytes = bare_decode_step_ms(base, ctx, 100)
    bound_ms = (weight_bytes + kv_bytes) / args.bandwidth * 1000.0
    print(f"## 4. Decode step at batch 1 against the memory-bandwidth bound (context {ctx} tokens)")
    print()
    print(
        f"Bound = (weights {weight_bytes / 1e9:.3f} GB + KV read {kv_bytes / 1e6:.2f} MB) / "
        f"{args.bandwidth:.3g} B/s (--bandwidth)."
    )
    print()
    print("| what | ms per step | bound ms | bound / measured |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| bare model, batch 1 | {step_ms:.3f} | {bound_ms:.3f} | {bound_ms / step_ms:.1%} |")
    if 1 in decode:
        ms = decode[1]
        print(f"| through the engine, batch 1 (section 1) | {ms:.3f} | {bound_ms:.3f} | {bound_ms / ms:.1%} |")


if __name__ == "__main__":
    asyncio.run(main())
