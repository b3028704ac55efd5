"""Shared prefixes: generated text of an exact length under both token counts, the same in every run, spread over
conversations by share and count, before the dialogue's own system prompt."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from loadgen.datasets.tokens import CharEstimate
from loadgen.dialogues import ConversationFactory, load_dialogue
from loadgen.dialogues.prefix import SEPARATOR, SharedPrefixes, prefix_text, shared_prefixes
from loadgen.errors import ConfigError
from loadgen.server.tokens import WordTokenizer


@pytest.mark.parametrize("tokens", [1, 2, 63, 64, 1000, 4096])
def test_a_prefix_is_exactly_its_length_under_the_estimate_and_the_servers_tokenizer(tokens: int) -> None:
    text = prefix_text(0, tokens)
    assert CharEstimate().count(text) == tokens
    assert WordTokenizer().count(text) == tokens
    assert text == text.strip() and text.islower()


def test_prefixes_are_the_same_in_every_run_and_differ_from_each_other() -> None:
    prefix_text.cache_clear()
    first = [prefix_text(i, 256) for i in range(5)]
    prefix_text.cache_clear()
    assert [prefix_text(i, 256) for i in range(5)] == first
    assert len({text[:64] for text in first}) == 5  # different from their first words on
    assert prefix_text(3, 300).startswith(first[3])  # a longer one of the same number begins the same


def test_share_and_count_spread_conversations_over_the_prefixes() -> None:
    rng = random.Random(1)
    everyone = SharedPrefixes(8)
    assert {everyone.pick(rng) for _ in range(100)} == {0}
    spread = Counter(SharedPrefixes(8, count=4).pick(rng) for _ in range(4000))
    assert set(spread) == {0, 1, 2, 3}
    assert all(800 < n < 1200 for n in spread.values()), spread
    half = Counter(SharedPrefixes(8, share=0.25, count=2).pick(rng) for _ in range(4000))
    assert 850 < sum(n for k, n in half.items() if k is not None) < 1150, half
    assert half[0] > 350 and half[1] > 350
    assert {SharedPrefixes(8, share=0.0).pick(rng) for _ in range(100)} == {None}


def test_the_prefix_comes_before_the_dialogues_own_system_prompt() -> None:
    prefixes = SharedPrefixes(5)
    assert prefixes.system_prompt(None, "Be brief.") == "Be brief."
    assert prefixes.system_prompt(None, None) is None
    assert prefixes.system_prompt(0, None) == prefix_text(0, 5)
    assert prefixes.system_prompt(0, "Be brief.") == prefix_text(0, 5) + SEPARATOR + "Be brief."


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, None, None), "--shared-prefix-tokens 0: give the prefix length in tokens, 1 to 1000000"),
        ((8, 1.5, None), "--shared-prefix-share 1.5: give the fraction of conversations with the prefix, 0 to 1"),
        ((8, None, 0), "--prefix-count 0: give how many distinct prefixes, 1 or more"),
        ((None, 0.0, None), "--shared-prefix-share needs --shared-prefix-tokens K (the length of the shared prefix)"),
        ((None, None, 3), "--prefix-count needs --shared-prefix-tokens K (the length of the shared prefix)"),
    ],
)
def test_bad_settings_are_one_line_naming_the_option(args: tuple[int | None, float | None, int | None],
                                                      message: str) -> None:  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        shared_prefixes(*args)
    assert str(caught.value) == message


def test_no_length_means_no_prefix() -> None:
    assert shared_prefixes(None, None, None) is None
    assert shared_prefixes(16, None, None) == SharedPrefixes(16, 1.0, 1)


def test_conversations_send_the_prefix_as_their_system_prompt(write_dialogue: Callable[..., Path]) -> None:
    dialogue = load_dialogue(write_dialogue("small"))
    plain = ConversationFactory([dialogue], seed=3)
    shared = ConversationFactory([dialogue], seed=3, prefixes=SharedPrefixes(100, share=0.5, count=3))
    seen: Counter[str | None] = Counter()
    for user in range(300):
        before, after = plain.new(user), shared.new(user)
        assert after.slots == before.slots  # the prefix draw comes after the rest: a seeded run stays the same
        first = after.request(after.dialogue.turns[0]).messages
        if after.prefix is None:
            assert first == before.request(before.dialogue.turns[0]).messages
            seen[None] += 1
            continue
        assert first[0].role == "system" and first[0].content.startswith(after.prefix)
        assert first[1:] == before.request(before.dialogue.turns[0]).messages[int(dialogue.system is not None) :]
        seen[after.prefix[:20]] += 1
    assert len(seen) == 4 and 100 < seen[None] < 200, seen
    again = ConversationFactory([dialogue], seed=3, prefixes=SharedPrefixes(100, share=0.5, count=3))
    assert [again.new(u).prefix for u in range(20)] == [
        ConversationFactory([dialogue], seed=3, prefixes=SharedPrefixes(100, share=0.5, count=3)).new(u).prefix
        for u in range(20)
    ]
