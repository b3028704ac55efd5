"""WordTokenizer, SessionStore (LRU + TTL) and the context window."""

from __future__ import annotations

import pytest

from loadgen.server.context import ContextOverflow, fit_context, render_prompt, split_turns
from loadgen.server.sessions import MESSAGE_OVERHEAD, SessionStore
from loadgen.server.tokens import WordTokenizer
from loadgen.types import ChatMessage

tok = WordTokenizer()


@pytest.mark.parametrize(
    "text",
    ["", " ", "one", "Hi  there.\n", "  leading space", "trailing \n\n", "a b\tc\nd", "ünïcödé wörds 東京 ok"],
)
def test_word_tokens_concatenate_back_and_count_agrees(text: str) -> None:
    tokens = tok.split(text)
    assert "".join(tokens) == text
    assert tok.count(text) == len(tokens)


def test_word_tokens_are_words_with_trailing_whitespace() -> None:
    assert tok.split("Hi  there.\nBye") == ["Hi  ", "there.\n", "Bye"]


def U(text: str) -> ChatMessage:
    return ChatMessage("user", text)


def A(text: str) -> ChatMessage:
    return ChatMessage("assistant", text)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_keep_history_in_order() -> None:
    store = SessionStore(10, 60)
    assert store.get("s") == []
    store.append("s", U("one"))
    store.append("s", A("two"), U("three"))
    assert [m.content for m in store.get("s")] == ["one", "two", "three"]
    store.get("s").append(U("not stored"))  # get() hands out a copy
    assert len(store.get("s")) == 3


def test_sessions_evict_least_recently_used() -> None:
    store = SessionStore(2, 60)
    store.append("a", U("a1"))
    store.append("b", U("b1"))
    assert store.get("a")  # a is now the most recently used
    store.append("c", U("c1"))  # evicts b
    assert store.get("b") == []
    assert [m.content for m in store.get("a")] == ["a1"]
    assert [m.content for m in store.get("c")] == ["c1"]
    stats = store.stats()
    assert stats["evictions"] == 1
    assert stats["sessions"] == 2
    assert stats["expirations"] == 0


def test_sessions_expire_after_idle_ttl() -> None:
    clock = Clock()
    store = SessionStore(10, 30, clock=clock)
    store.append("a", U("a1"))
    store.append("b", U("b1"))
    clock.now += 20
    assert store.get("a")  # touching refreshes the TTL
    clock.now += 15  # b idle 35 s, a 15 s
    assert store.get("b") == []
    assert store.get("a")
    clock.now += 31
    assert store.stats()["sessions"] == 0
    assert store.expirations == 2
    assert store.evictions == 0


def test_sessions_reject_bad_settings() -> None:
    with pytest.raises(ValueError):
        SessionStore(0, 10)
    with pytest.raises(ValueError):
        SessionStore(10, 0)


def S(text: str) -> ChatMessage:
    return ChatMessage("system", text)


def _words(message: ChatMessage) -> int:
    return tok.count(message.content)


def test_history_tells_a_session_not_held_from_an_empty_one() -> None:
    store = SessionStore(10, 60)
    assert store.history("s") is None
    store.append("s", U("one"))
    assert [m.content for m in store.history("s") or []] == ["one"]
    store.drop("s")
    assert store.history("s") is None and store.get("s") == []


def test_a_session_keeps_only_the_newest_whole_turns_that_fit_the_window() -> None:
    store = SessionStore(10, 60, keep_tokens=6, count=_words)
    store.append("s", S("be brief"), U("one two"), A("three"))  # turn 1: 3 tokens
    store.append("s", U("four five"), A("six"))  # turn 2: 3 tokens (6 in all: kept)
    assert len(store.get("s")) == 5
    store.append("s", U("seven"))  # turn 3: 7 in all: turn 1 goes, whole
    assert [m.content for m in store.get("s")] == ["be brief", "four five", "six", "seven"]
    store.append("s", U("a b c d e f g h i j"))  # a turn alone past the window is kept (it is the newest)
    assert [m.content for m in store.get("s")] == ["be brief", "a b c d e f g h i j"]
    assert store.stats()["trimmed_messages"] == 5


def test_a_session_keeps_only_the_newest_turns_that_fit_its_bytes() -> None:
    """A turn of one huge "word" is one token: the byte bound is what keeps such a session from growing."""
    huge = "x" * 50_000
    store = SessionStore(10, 60, keep_tokens=4096, keep_bytes=120_000, count=_words)
    for _ in range(20):
        store.append("s", U(huge), A("ok"))
    held = store.get("s")
    assert len(held) == 4  # two turns of ~50 kB fit 120 kB, three do not
    assert store.bytes == sum(len(m.content) + MESSAGE_OVERHEAD for m in held)


def test_the_store_is_bounded_in_bytes_evicting_the_least_recently_used() -> None:
    store = SessionStore(1000, 60, max_bytes=10_000)
    for i in range(10):
        store.append(f"s{i}", U("y" * 2000))
    assert store.bytes <= 10_000
    assert len(store) == 10_000 // (2000 + MESSAGE_OVERHEAD)
    assert store.history("s0") is None and store.history("s9") is not None
    assert store.stats()["evictions"] == 10 - len(store)
    assert store.stats()["bytes"] == store.bytes


def test_the_session_just_written_is_never_the_one_evicted() -> None:
    store = SessionStore(10, 60, max_bytes=1000)
    store.append("small", U("a"))
    store.append("big", U("z" * 5000))  # past the bound alone: the others go, it stays
    assert store.history("small") is None and store.history("big") is not None


def test_a_reply_finishing_after_its_session_went_does_not_bring_it_back() -> None:
    store = SessionStore(10, 60)
    store.append("s", U("question"))
    store.forget_all()
    store.append("s", A("the reply"), create=False)
    assert store.history("s") is None


def test_forget_all_expire_and_drop_keep_the_byte_count() -> None:
    clock = Clock()
    store = SessionStore(10, 30, clock=clock)
    store.append("a", U("aa"))
    store.append("b", U("bbb"))
    assert store.bytes == 2 + 3 + 2 * MESSAGE_OVERHEAD
    store.drop("a")
    assert store.bytes == 3 + MESSAGE_OVERHEAD
    clock.now += 31
    assert store.stats()["bytes"] == 0
    store.append("c", U("c"))
    store.append("d", U("d"))
    assert store.forget_all() == 2
    assert (store.bytes, len(store), store.stats()["forgotten"]) == (0, 0, 2)


def test_render_prompt_is_role_content_lines() -> None:
    assert render_prompt([ChatMessage("system", "Be brief."), U("Hi")]) == "system: Be brief.\nuser: Hi\n"


def test_split_turns_groups_user_with_replies() -> None:
    head, turns = split_turns([ChatMessage("system", "s"), U("1"), A("r1"), A("r1b"), U("2")])
    assert head == [ChatMessage("system", "s")]
    assert turns == [[U("1"), A("r1"), A("r1b")], [U("2")]]


def test_fit_context_keeps_everything_when_it_fits() -> None:
    messages = [ChatMessage("system", "Be brief."), U("one two"), A("three"), U("four")]
    assert fit_context(messages, tok, 100, 10) == messages


def test_fit_context_drops_oldest_whole_turns_keeps_system() -> None:
    system = ChatMessage("system", "Be brief.")  # "system: Be brief.\n" = 3 tokens
    turns = [[U(f"fact number {i} here"), A(f"noted {i} ok")] for i in range(5)]  # 5 + 4 tokens per turn
    messages = [system, *[m for t in turns for m in t], U("question now")]  # + 3
    total = tok.count(render_prompt(messages))
    assert total == 3 + 5 * 9 + 3
    kept = fit_context(messages, tok, window_tokens=3 + 2 * 9 + 3 + 10, reserve_tokens=10)
    assert kept == [system, *turns[3], *turns[4], U("question now")]
    # one token less and turn 3 goes too
    kept = fit_context(messages, tok, window_tokens=3 + 2 * 9 + 3 + 10 - 1, reserve_tokens=10)
    assert kept == [system, *turns[4], U("question now")]
    assert tok.count(render_prompt(kept)) + 10 <= 3 + 2 * 9 + 3 + 10 - 1


def test_fit_context_overflow_when_the_newest_turn_alone_is_too_big() -> None:
    messages = [U("a b c d e f g h i j")]
    with pytest.raises(ContextOverflow, match="context window of 12 tokens"):
        fit_context(messages, tok, window_tokens=12, reserve_tokens=4)
    assert fit_context(messages, tok, window_tokens=15, reserve_tokens=4) == messages
