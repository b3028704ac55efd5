"""Token accounting of a conversation: what a shaped turn asks for, the local counts, short replies and usage that
disagrees with the local count."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from loadgen.datasets.tokens import CharEstimate, TokenizerFile
from loadgen.dialogues import ConversationFactory, load_dialogue
from loadgen.dialogues.accounting import ConversationTokens, TokenAccounting
from loadgen.dialogues.history import RequestSettings
from loadgen.dialogues.shapes import NO_SHAPE, TokenShape, TokenTarget
from loadgen.types import HistoryMode, Reply, TokenCheck, Usage
from tests.dialogues.tokenizer_files import write_word_tokenizer


def reply(text: str, usage: Usage | None = None) -> Reply:
    return Reply(text=text, t_sent=0.0, t_done=1.0, usage=usage)


@pytest.fixture
def words(tmp_path: Path) -> TokenizerFile:
    return TokenizerFile(str(write_word_tokenizer(tmp_path / "tokenizer.json")))


def tokens(
    counter: TokenizerFile | CharEstimate, shape: TokenShape = NO_SHAPE, system: str | None = None
) -> ConversationTokens:
    return ConversationTokens(TokenAccounting(counter, shape, 0.1), shape, random.Random(0), system)


def test_local_counts_follow_the_context(words: TokenizerFile) -> None:
    account = tokens(words, system="You are kind.")
    assert account.ask("one two three") is None
    assert account.check(reply("four five")) == TokenCheck("tokenizer", prompt_tokens=6, output_tokens=2)
    account.ask("six")
    assert account.check(None) is None  # a failed turn adds nothing
    account.ask("seven eight")
    check = account.check(reply("nine", Usage(prompt_tokens=10 + 4 * 3, completion_tokens=1)))
    assert check == TokenCheck("usage", prompt_tokens=10, output_tokens=1)


def test_short_replies(words: TokenizerFile) -> None:
    account = tokens(words, TokenShape(output=TokenTarget(20)))
    assert account.ask("hi") == 20
    short = account.check(reply("a " * 19, Usage(1, 19)))
    assert short is not None and short.short_reply and short.asked == 20 and not short.usage_mismatch
    account.ask("hi")
    assert not account.check(reply("a " * 20, Usage(30, 20))).short_reply  # type: ignore[union-attr]
    account.ask("hi")  # counted locally a reply may fall short by the tolerance (10 %)
    assert not account.check(reply("a " * 18)).short_reply  # type: ignore[union-attr]
    account.ask("hi")
    assert account.check(reply("a " * 17)).short_reply  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("usage", "mismatch"),
    [(Usage(10, 50), False), (Usage(10 + 8, 55 + 2), False), (Usage(10 + 8 + 2, 50), True), (Usage(10, 58), True),
     (Usage(10, 42), True)],
)  # fmt: skip
def test_usage_mismatch_beyond_the_tolerance(words: TokenizerFile, usage: Usage, mismatch: bool) -> None:
    account = tokens(words)
    account.ask("w " * 10)
    check = account.check(reply("r " * 50, usage))
    assert check is not None and check.usage_mismatch is mismatch


def test_no_usage_check_with_the_estimate() -> None:
    account = tokens(CharEstimate())
    account.ask("w " * 10)
    check = account.check(reply("r " * 50, Usage(1000, 1000)))
    assert check is not None and check.counted_by == "usage" and not check.usage_mismatch


def test_shaped_requests(write_dialogue: Callable[..., Path], words: TokenizerFile) -> None:
    dialogue = load_dialogue(write_dialogue())
    shape = TokenShape(TokenTarget(40, 5), TokenTarget(30, 3))
    factory = ConversationFactory(
        [dialogue], seed=7, settings=RequestSettings(history=HistoryMode.SERVER),
        accounting=TokenAccounting(words, shape),
    )  # fmt: skip
    conversation = factory.new(0)
    for turn in dialogue.turns:
        request = conversation.request(turn)
        user = request.messages[-1].content
        assert user.startswith(conversation.render(turn))
        assert 35 <= words.count(user) <= 45
        assert request.min_tokens == request.max_tokens and 27 <= request.max_tokens <= 33
        assert request.ignore_eos
        result = conversation.record(turn, reply("x " * request.max_tokens, Usage(1, request.max_tokens)))
        assert result.tokens is not None and result.tokens.asked == request.max_tokens
    again = ConversationFactory([dialogue], seed=7, accounting=TokenAccounting(words, shape)).new(0)
    first = dialogue.turns[0]
    assert again.request(first).messages == factory.new(0, 0).request(first).messages  # the same seed, same turn


def test_without_accounting_nothing_changes(write_dialogue: Callable[..., Path]) -> None:
    dialogue = load_dialogue(write_dialogue())
    plain = ConversationFactory([dialogue], seed=3).new(0)
    request = plain.request(dialogue.turns[0])
    assert request.min_tokens is None and not request.ignore_eos and request.max_tokens == dialogue.max_tokens
    assert plain.record(dialogue.turns[0], reply("ok")).tokens is None
    shaped = ConversationFactory([dialogue], seed=3, accounting=TokenAccounting(CharEstimate())).new(0)
    assert shaped.slots == plain.slots  # accounting draws after the slots: seeded values stay as they were
