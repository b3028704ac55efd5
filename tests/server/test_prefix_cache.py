"""The sim engine's prefix cache: chained block keys, the cached prefix a lookup finds, LRU eviction, and the
prefill it saves in the engine (a ratio of two TTFTs in one engine, never an absolute time)."""

from __future__ import annotations

import asyncio
import time

import pytest

from loadgen.errors import ConfigError
from loadgen.server.config import ServerConfig, SimEngineConfig
from loadgen.server.engines import make_engine
from loadgen.server.engines.base import GenerationRequest
from loadgen.server.engines.sim import SimEngine
from loadgen.server.main import OPTIONS, build_config, configure
from loadgen.server.prefix_cache import DEFAULT_BLOCK_TOKENS, PrefixCache


def words(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i} " for i in range(n)]


def test_block_keys_cover_full_blocks_and_chain_on_what_came_before() -> None:
    cache = PrefixCache(1024, block_tokens=4)
    a = words("a", 10)
    assert len(cache.block_keys(a)) == 2  # 10 tokens: two full blocks, the last two tokens are not cached
    assert cache.block_keys(a[:8]) == cache.block_keys(a)
    b = words("b", 4) + a[4:]  # the same second block after another first one
    assert cache.block_keys(b)[1] != cache.block_keys(a)[1]
    assert cache.block_keys(a[:3]) == []


def test_a_lookup_finds_the_longest_cached_prefix_of_whole_blocks() -> None:
    cache = PrefixCache(1024, block_tokens=4)
    system = words("s", 8)
    assert cache.lookup([*system, *words("q", 5)]) == 0  # cold: a miss, which caches three blocks
    assert (cache.hits, cache.misses) == (0, 1)
    assert cache.lookup([*system, *words("r", 5)]) == 8  # the two system blocks; the third block differs
    assert cache.lookup([*system[:6], *words("r", 5)]) == 4  # the second block differs from its 3rd token
    assert cache.lookup(words("x", 12)) == 0
    assert (cache.hits, cache.misses) == (2, 2)
    assert cache.hit_tokens == 12
    assert cache.lookup_tokens == 13 + 13 + 11 + 12
    stats = cache.stats()
    assert (stats["prefix_cache_hits"], stats["prefix_cache_misses"], stats["prefix_cache_hit_rate"]) == (2, 2, 0.5)


def test_a_prompt_cached_whole_still_prefills_its_last_token() -> None:
    cache = PrefixCache(1024, block_tokens=4)
    prompt = words("p", 8)
    cache.lookup(prompt)
    assert cache.lookup(prompt) == 7


def test_least_recently_used_blocks_go_first_and_a_chain_loses_its_tail_first() -> None:
    cache = PrefixCache(16, block_tokens=4)  # four blocks
    a, b = words("a", 8), words("b", 8)
    cache.lookup(a)
    cache.lookup(b)
    assert len(cache) == 4
    assert cache.lookup(a) == 7  # a is now the most recent
    cache.lookup(words("c", 4))  # one block more: b's tail goes, not its head
    assert cache.evictions == 1
    assert cache.lookup(b) == 4
    assert cache.lookup(a) == 4  # that lookup re-cached b's tail over a's, the least recent block then
    assert len(cache) == 4


def test_a_prompt_longer_than_the_cache_keeps_its_first_blocks() -> None:
    cache = PrefixCache(8, block_tokens=4)
    prompt = words("p", 20)
    cache.lookup(prompt)
    assert len(cache) == 2
    assert cache.lookup(prompt) == 8


def test_capacity_zero_caches_nothing() -> None:
    cache = PrefixCache(0)
    prompt = words("p", 200)
    cache.lookup(prompt)
    assert cache.lookup(prompt) == 0
    assert (cache.hits, cache.misses, len(cache)) == (0, 2, 0)


@pytest.mark.parametrize(("capacity", "block"), [(-1, 64), (64, 0)])
def test_bad_settings_are_refused(capacity: int, block: int) -> None:
    with pytest.raises(ValueError, match="prefix cache"):
        PrefixCache(capacity, block_tokens=block)


def test_the_default_block_is_sixty_four_tokens() -> None:
    assert DEFAULT_BLOCK_TOKENS == 64
    assert PrefixCache(64 * 10).capacity_blocks == 10


def test_serve_option_sets_the_capacity_and_refuses_a_negative_one(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    configure(parser)
    assert build_config(parser.parse_args([])).sim is not None
    assert next(o for o in OPTIONS if o.flag == "--prefix-cache-tokens").default == 0
    config = build_config(parser.parse_args(["--prefix-cache-tokens", "4096"]))
    assert config.sim is not None and config.sim.prefix_cache_tokens == 4096
    with pytest.raises(SystemExit):
        parser.parse_args(["--prefix-cache-tokens", "-5"])
    assert "--prefix-cache-tokens: must be 0 or more, got -5" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="prefix_cache_tokens must not be negative"):
        make_engine(ServerConfig(sim=SimEngineConfig(prefix_cache_tokens=-1)))


def test_a_hit_skips_the_prefill_of_the_cached_prefix_in_the_engine() -> None:
    # 1024 shared tokens at 100 us each: 102 ms of prefill a miss pays and a hit does not; the rest is the same
    config = SimEngineConfig(step_base_us=1000, step_per_seq_us=0, prefill_us_per_token=100, prefix_cache_tokens=8192)
    system = "system: " + "abc " * 1023 + "\n"

    async def body() -> tuple[list[float], dict[str, float]]:
        engine = SimEngine(config)
        await engine.start()
        try:
            ttfts = []
            for n, question in enumerate(("user: one\n", "user: two\n", "user: three\n")):
                t0 = time.perf_counter()
                stream = engine.generate(GenerationRequest(f"r{n}", system + question, "one two three", 3))
                async for _ in stream:
                    ttfts.append(time.perf_counter() - t0)
                    break
                await stream.aclose()  # type: ignore[attr-defined]
            return ttfts, engine.stats()
        finally:
            await engine.stop()

    (miss, hit, hit2), stats = asyncio.run(body())
    saved = 1024 * 100e-6
    assert 0.7 <= (miss - min(hit, hit2)) / saved <= 1.3, (miss, hit, hit2)
    assert (stats["prefix_cache_hits"], stats["prefix_cache_misses"]) == (2, 1)
    assert stats["prefix_cache_hit_tokens"] == 2 * 1024


def test_fixed_timing_and_a_cache_left_off_have_no_cache() -> None:
    assert SimEngine(SimEngineConfig()).prefix_cache is None
    assert SimEngine(SimEngineConfig(fixed=True, prefix_cache_tokens=640)).prefix_cache is None
    assert SimEngine(SimEngineConfig()).stats()["prefix_cache_capacity_tokens"] == 0
    assert SimEngine(SimEngineConfig(prefix_cache_tokens=640)).stats()["prefix_cache_blocks"] == 0
