"""The reference server's memory stays flat at constant load (issue 19: a 30-minute soak grew ~0.15 MB/min).

What grew: the sim engine's cache of token chunks kept every token it ever sent, the quoted facts' too (a new name,
code or date per conversation), up to 50,000 of them. Shown here structurally: thousands of conversations with facts
never seen before leave the cache as it was, and what the server's own code holds (traced by tracemalloc) stops
growing once the first conversations warmed it up.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path

from loadgen.server.app import make_session_store
from loadgen.server.config import ServerConfig, SimEngineConfig
from loadgen.server.engines import sim
from loadgen.server.engines.sim import SimEngine
from loadgen.server.service import ChatService
from loadgen.types import ChatMessage, ChatRequest

SERVER = str(Path(sim.__file__).resolve().parents[1])
FAST = SimEngineConfig(step_base_us=0, step_per_seq_us=0, prefill_us_per_token=0)


async def _conversation(service: ChatService, n: int, session: str | None) -> None:
    """Three turns: a fact nobody said before, a question, the question again (the reply quotes the fact)."""
    history: list[ChatMessage] = []
    for text in (f"My booking code is QX{n:06d}Z and I fly to Port{n}ville.", "What is my booking code?", "Again?"):
        message = ChatMessage("user", text)
        sent = (message,) if session is not None else (*history, message)
        stream = await service.chat(ChatRequest(sent, max_tokens=24, session_id=session))
        async with stream:
            async for _ in stream:
                pass
        history += [message, ChatMessage("assistant", stream.text)]


def _traced_in_server(snapshot: tracemalloc.Snapshot) -> int:
    return sum(
        stat.size for stat in snapshot.filter_traces([tracemalloc.Filter(True, f"{SERVER}/*")]).statistics("filename")
    )


def test_conversations_with_new_facts_do_not_grow_the_server() -> None:
    config = ServerConfig(rest_port=None, sim=FAST, session_capacity=50)

    async def main() -> tuple[int, int, int, int, int]:
        engine = SimEngine(FAST)
        await engine.start()
        try:
            service = ChatService(engine, make_session_store(config, engine), config)
            cached = len(sim._CHUNKS)
            for n in range(100):  # warm up: every structure at its working size
                await _conversation(service, n, None if n % 2 else f"s{n}")
            tracemalloc.start(1)
            try:
                for n in range(100, 250):  # what was held before is replaced by traced allocations
                    await _conversation(service, n, None if n % 2 else f"s{n}")
                first = _traced_in_server(tracemalloc.take_snapshot())
                for n in range(250, 550):
                    await _conversation(service, n, None if n % 2 else f"s{n}")
                grown = _traced_in_server(tracemalloc.take_snapshot()) - first
            finally:
                tracemalloc.stop()
            return cached, len(sim._CHUNKS), grown, len(service.sessions)
        finally:
            await engine.stop()

    cached_before, cached_after, grown, sessions = asyncio.run(main())
    assert cached_after == cached_before  # was: + every new token of every quoted fact
    assert sessions == 50  # server history: bounded by the session capacity
    # 900 more turns: a leak of 20 bytes a turn would show as 18 kB (the token cache grew ~90 B a turn)
    assert grown < 12_000, grown
