"""Shared prefixes: a long system prompt that many conversations begin with, so a server's prefix cache shows.

``--shared-prefix-tokens K`` gives a share of the conversations (``--shared-prefix-share F``, all by default) a
system prompt of K tokens, put before the dialogue's own system prompt; ``--prefix-count P`` makes P different
prefixes of that length and spreads those conversations evenly over them at random. Which conversation gets
which (or none) is drawn from the conversation's own random stream, so a ``--seed`` run draws the same again.

The text is generated, never read from anywhere: prefix ``i`` is K lower-case three-letter pseudo-words drawn
from a generator seeded with ``i`` alone (the same prefix in every run and every process, whatever the seed),
one space after each. Four characters a word make the length exact under both counts the project uses: the
``ceil(characters / 4)`` estimate (:class:`loadgen.datasets.tokens.CharEstimate`) and the reference server's one
token a word (:class:`loadgen.server.tokens.WordTokenizer`). Other tokenizers may count a little differently;
the request's ``prompt_tokens`` usage says what the server counted.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from functools import lru_cache

from loadgen.errors import ConfigError

#: Where the text of a prefix ends and the dialogue's own system prompt (if any) begins.
SEPARATOR = "\n\n"
#: The longest prefix asked for (a real model's context window is rarely larger).
MAX_PREFIX_TOKENS = 1_000_000
_LETTERS = string.ascii_lowercase


@lru_cache(maxsize=64)
def prefix_text(index: int, tokens: int) -> str:
    """Prefix number ``index`` (0-based): ``tokens`` three-letter words, each followed by a space but the last."""
    rng = random.Random(f"loadgen-shared-prefix:{index}")
    return " ".join("".join(rng.choices(_LETTERS, k=3)) for _ in range(tokens))


@dataclass(frozen=True, slots=True)
class SharedPrefixes:
    """``tokens`` tokens shared by a ``share`` of the conversations, spread over ``count`` distinct prefixes."""

    tokens: int
    share: float = 1.0
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.tokens <= MAX_PREFIX_TOKENS:
            raise ConfigError(
                f"--shared-prefix-tokens {self.tokens}: give the prefix length in tokens, 1 to {MAX_PREFIX_TOKENS}"
            )
        if not 0.0 <= self.share <= 1.0:
            raise ConfigError(
                f"--shared-prefix-share {self.share}: give the fraction of conversations with the prefix, 0 to 1"
            )
        if self.count < 1:
            raise ConfigError(f"--prefix-count {self.count}: give how many distinct prefixes, 1 or more")

    def pick(self, rng: random.Random) -> int | None:
        """The prefix a new conversation begins with (its index), or None; two draws from ``rng`` at most."""
        if self.share < 1.0 and rng.random() >= self.share:
            return None
        return rng.randrange(self.count) if self.count > 1 else 0

    def text(self, index: int) -> str:
        return prefix_text(index, self.tokens)

    def system_prompt(self, index: int | None, system: str | None) -> str | None:
        """The system prompt of a conversation that got prefix ``index`` (None: none) and whose dialogue has
        ``system`` (None: none)."""
        if index is None:
            return system
        prefix = self.text(index)
        return prefix if system is None else prefix + SEPARATOR + system


def shared_prefixes(tokens: int | None, share: float | None, count: int | None) -> SharedPrefixes | None:
    """The settings the options give (None: no shared prefix). A share or a count without a length is an error."""
    if tokens is None:
        pairs = (("--shared-prefix-share", share), ("--prefix-count", count))
        given = [flag for flag, value in pairs if value is not None]
        if given:
            raise ConfigError(f"{given[0]} needs --shared-prefix-tokens K (the length of the shared prefix)")
        return None
    return SharedPrefixes(tokens, 1.0 if share is None else share, 1 if count is None else count)


__all__ = ["MAX_PREFIX_TOKENS", "SEPARATOR", "SharedPrefixes", "prefix_text", "shared_prefixes"]
