"""ChatService: validation, API key, history modes, context window, admission errors, stream bookkeeping."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from loadgen.server.app import SESSION_BYTES_PER_TOKEN, make_session_store
from loadgen.server.config import ServerConfig, SimEngineConfig
from loadgen.server.engines.base import Engine, EngineOverloaded, GenerationRequest, TokenChunk, Tokenizer
from loadgen.server.engines.sim import SimEngine
from loadgen.server.service import BadChatRequest, ChatService, ChatStream, Unauthorized
from loadgen.server.sessions import SessionStore
from loadgen.server.tokens import WordTokenizer
from loadgen.types import ChatMessage, ChatRequest

FAST = SimEngineConfig(step_base_us=100, step_per_seq_us=0, prefill_us_per_token=0)


def U(text: str) -> ChatMessage:
    return ChatMessage("user", text)


def A(text: str) -> ChatMessage:
    return ChatMessage("assistant", text)


def with_service(body: Callable[[ChatService], Awaitable[Any]], **fields: Any) -> Any:
    fields.setdefault("sim", FAST)
    config = ServerConfig(rest_port=None, **fields)

    async def main() -> Any:
        engine = SimEngine(config.sim)
        await engine.start()
        try:
            service = ChatService(engine, make_session_store(config, engine), config)
            return await body(service)
        finally:
            await engine.stop()

    return asyncio.run(main())


async def drain(stream: ChatStream) -> str:
    async with stream:
        async for _ in stream:
            pass
    return stream.text


def test_stream_counts_and_finish_reason() -> None:
    async def body(service: ChatService) -> None:
        stream = await service.chat(ChatRequest((U("hello there"),), max_tokens=12))
        assert stream.prompt_tokens == 3  # "user: hello there\n"
        assert stream.request_id.startswith("chatcmpl-")
        seen = []
        async for chunk in stream:
            seen.append(stream.completion_tokens)
            assert chunk.n_tokens == 1
        assert seen == list(range(1, 13))
        assert stream.finish_reason == "length"  # the responder's reply is longer than 12 tokens
        stats = service.stats()
        assert stats["service"]["completed"] == 1
        assert stats["service"]["completion_tokens"] == 12
        assert stats["service"]["active"] == 0
        assert set(stats) == {"service", "sessions", "engine", "faults"}

    with_service(body)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (ChatRequest(()), "'messages' is empty"),
        (ChatRequest((U("hi"), A("hello"))), "last message must be a user message"),
        (ChatRequest((ChatMessage("robot", "hi"),)), "messages[0].role is 'robot'"),
        (ChatRequest((U("hi"),), max_tokens=0), "max_tokens must be between 1 and 4096"),
        (ChatRequest((U("hi"),), max_tokens=4097), "max_tokens must be between 1 and 4096"),
        (ChatRequest((U("hi"),), session_id=""), "session_id"),
        (ChatRequest((U("word " * 100),), max_tokens=64), "exceeds the context window of 128 tokens"),
    ],
)
def test_bad_requests(request_: ChatRequest, message: str) -> None:
    async def body(service: ChatService) -> None:
        with pytest.raises(BadChatRequest) as info:
            await service.chat(request_)
        assert message in str(info.value)
        assert service.stats()["service"]["bad_requests"] == 1

    with_service(body, context_window=128)


def test_api_key() -> None:
    async def body(service: ChatService) -> None:
        with pytest.raises(Unauthorized, match="missing"):
            await service.chat(ChatRequest((U("hi"),)))
        with pytest.raises(Unauthorized, match="invalid"):
            await service.chat(ChatRequest((U("hi"),)), api_key="wrong")
        await drain(await service.chat(ChatRequest((U("hi"),)), api_key="sekrit"))
        assert service.stats()["service"]["unauthorized"] == 2

    with_service(body, api_key="sekrit")


def test_server_history_mode_remembers_and_eviction_forgets() -> None:
    async def body(service: ChatService) -> None:
        def turn(session: str, text: str) -> Awaitable[ChatStream]:
            return service.chat(ChatRequest((U(text),), max_tokens=40, session_id=session))

        await drain(await turn("alice", "My booking code is QX4821."))
        await drain(await turn("alice", "Anything to see near the airport?"))
        reply = await drain(await turn("alice", "What was my booking code again?"))
        assert "QX4821" in reply
        history = service.sessions.get("alice")
        assert [m.role for m in history] == ["user", "assistant"] * 3
        assert history[-1].content == reply
        # a second and a third session push alice out of a store of two
        await drain(await turn("bob", "My booking code is ZZ1111."))
        await drain(await turn("carol", "My booking code is YY2222."))
        reply = await drain(await turn("alice", "What was my booking code again?"))
        assert "QX4821" not in reply
        assert reply.startswith("I don't have that information.")
        assert service.stats()["sessions"]["evictions"] >= 1

    with_service(body, session_capacity=2)


def test_context_window_truncation_loses_the_fact() -> None:
    planted = [U("My booking code is QX4821."), A("Noted.")]
    chatter = [m for i in range(10) for m in (U(f"Tell me about museum number {i} please."), A("It is nice."))]
    probe = U("What was my booking code again?")

    async def body(service: ChatService) -> tuple[str, int]:
        reply = await drain(await service.chat(ChatRequest((*planted, *chatter, probe), max_tokens=32)))
        return reply, service.stats()["service"]["context_truncated"]

    reply, truncated = with_service(body, context_window=4096)
    assert "QX4821" in reply and truncated == 0
    reply, truncated = with_service(body, context_window=120)
    assert "QX4821" not in reply and truncated == 1


def test_overload_surfaces_from_chat_and_leaves_no_trace() -> None:
    async def body(service: ChatService) -> None:
        first = await service.chat(ChatRequest((U("hi"),), max_tokens=50, session_id="s"))
        with pytest.raises(EngineOverloaded):
            await service.chat(ChatRequest((U("again"),), max_tokens=50, session_id="t"))
        assert service.sessions.get("t") == []  # a refused turn is not stored
        await first.aclose()
        assert service.stats()["service"]["overloaded"] == 1
        assert service.stats()["service"]["cancelled"] == 1
        assert service.stats()["service"]["active"] == 0

    with_service(body, sim=SimEngineConfig(step_base_us=1000, max_batch=1, queue_limit=0))


class LazyEngine(Engine):
    """An engine written as a plain async generator: it only admits when first iterated."""

    name = "lazy"

    def __init__(self, full: bool) -> None:
        self.full = full
        self.closed = False
        self._tok = WordTokenizer()

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tok

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenChunk]:  # type: ignore[override]
        if self.full:
            raise EngineOverloaded("full")
        try:
            for piece in self._tok.split(request.reply)[: request.max_tokens]:
                await asyncio.sleep(0)
                yield TokenChunk(piece)
        finally:
            self.closed = True


def test_lazy_async_generator_engine_still_refuses_from_chat() -> None:
    async def main() -> None:
        config = ServerConfig(rest_port=None)
        service = ChatService(LazyEngine(full=True), SessionStore(10, 60), config)
        with pytest.raises(EngineOverloaded):
            await service.chat(ChatRequest((U("hi"),)))
        engine = LazyEngine(full=False)
        service = ChatService(engine, SessionStore(10, 60), config)
        stream = await service.chat(ChatRequest((U("hi"),), max_tokens=5))
        assert (await drain(stream)).startswith("I don't have that information.")
        assert stream.completion_tokens == 5
        assert engine.closed

    asyncio.run(main())


def test_closing_a_generator_engine_stream_from_another_task() -> None:
    class SlowLazy(LazyEngine):
        async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenChunk]:  # type: ignore[override]
            try:
                for piece in self._tok.split(request.reply)[: request.max_tokens]:
                    await asyncio.sleep(0.01)
                    yield TokenChunk(piece)
            finally:
                self.closed = True

    async def main() -> None:
        engine = SlowLazy(full=False)
        service = ChatService(engine, SessionStore(10, 60), ServerConfig(rest_port=None))
        stream = await service.chat(ChatRequest((U("hi"),), max_tokens=100))

        two_read = asyncio.Event()

        async def consume() -> int:
            got = 0
            async for _ in stream:
                got += 1
                if got == 2:
                    two_read.set()
            return got

        consumer = asyncio.create_task(consume())
        await asyncio.wait_for(two_read.wait(), 10)
        await stream.aclose()  # the generator is running in the consumer: it closes at its next chunk
        got = await asyncio.wait_for(consumer, 10)
        assert 2 <= got <= 3  # of 100: closed at once, not at the end
        assert engine.closed
        assert service.stats()["service"]["cancelled"] == 1

    asyncio.run(main())


# -- sessions: the new-session signal, and a turn's cost bounded by the window --------------------------------------


def test_a_reply_says_when_its_session_was_not_held() -> None:
    async def body(service: ChatService) -> None:
        async def turn(text: str, session: str | None = "s") -> bool:
            stream = await service.chat(ChatRequest((U(text),), max_tokens=4, session_id=session))
            await drain(stream)
            return stream.session_new

        assert await turn("My code is QX4821.") is True  # a first turn: nothing held yet
        assert await turn("What is my code?") is False
        assert await turn("hi", session=None) is False  # client history: no session to speak of
        service.sessions.forget_all()
        assert await turn("What is my code?") is True

    with_service(body)


class _Recording(SimEngine):
    """The sim engine, keeping the size of every prompt it was given."""

    def __init__(self, config: SimEngineConfig) -> None:
        super().__init__(config)
        self.prompt_sizes: list[int] = []

    def generate(self, request: GenerationRequest) -> AsyncIterator[TokenChunk]:
        self.prompt_sizes.append(len(request.prompt))
        return super().generate(request)


def test_a_session_fed_huge_turns_keeps_a_bounded_prompt_and_cost() -> None:
    """One session fed 50 kB turns (one "word" each: one token, so the window alone never trimmed them) fell from
    ~2,000 to ~3 turns/s: every turn re-read the whole history. Now a turn's prompt, and its time, stop growing
    once the session holds what its bounds allow."""
    config = ServerConfig(rest_port=None, sim=FAST, context_window=4096)
    huge = "x" * 50_000

    async def main() -> tuple[list[int], list[float]]:
        engine = _Recording(FAST)
        await engine.start()
        try:
            service = ChatService(engine, make_session_store(config, engine), config)
            times = []
            for i in range(120):
                started = time.perf_counter()
                await drain(await service.chat(ChatRequest((U(f"{huge} {i}"),), max_tokens=1, session_id="big")))
                times.append(time.perf_counter() - started)
            return engine.prompt_sizes, times
        finally:
            await engine.stop()

    sizes, times = asyncio.run(main())
    bound = config.context_window * SESSION_BYTES_PER_TOKEN + len(huge) + 100
    assert max(sizes) <= bound < len(huge) * 5
    early, late = statistics.median(times[5:25]), statistics.median(times[-20:])
    assert late < 3 * early, (early, late)  # unbounded, the last turns re-read ~100x the first ones' history
