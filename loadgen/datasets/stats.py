"""Distributions of a dataset's usable conversations: turns per conversation, turn lengths in characters and tokens.

A :class:`Distribution` is exact: it keeps a count per distinct value, so its memory grows with the number of
distinct lengths (at most the longest turn's length), not with the number of turns. Percentiles are by nearest
rank: ``p50`` is the smallest value that at least half the values are at or below.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from loadgen.datasets.model import DatasetConversation
from loadgen.datasets.tokens import TokenCounter

#: The columns of a summary row, in order.
SUMMARY_COLUMNS = ("count", "min", "p50", "p90", "max")


class Distribution:
    """Counts of non-negative integers."""

    def __init__(self) -> None:
        self._counts: Counter[int] = Counter()
        self.count = 0

    def add(self, value: int) -> None:
        self._counts[value] += 1
        self.count += 1

    def percentile(self, p: float) -> int:
        """Nearest rank: the smallest value with at least ``p`` percent of the values at or below it."""
        if not self.count:
            raise ValueError("percentile of an empty distribution")
        rank = max(1, math.ceil(p / 100 * self.count))
        seen = 0
        for value in sorted(self._counts):
            seen += self._counts[value]
            if seen >= rank:
                return value
        raise AssertionError("unreachable: ranks stop at the count")

    def summary(self) -> tuple[int, ...]:
        """``(count, min, p50, p90, max)``; all zero when empty."""
        if not self.count:
            return (0, 0, 0, 0, 0)
        return (self.count, min(self._counts), self.percentile(50), self.percentile(90), max(self._counts))


@dataclass
class DatasetStats:
    """What a run would replay: user turns per conversation, and each user and recorded assistant turn's length."""

    turns: Distribution = field(default_factory=Distribution)
    user_chars: Distribution = field(default_factory=Distribution)
    user_tokens: Distribution = field(default_factory=Distribution)
    assistant_chars: Distribution = field(default_factory=Distribution)
    assistant_tokens: Distribution = field(default_factory=Distribution)

    def add(self, conversation: DatasetConversation, tokens: TokenCounter) -> None:
        self.turns.add(len(conversation.turns))
        for text in conversation.user_turns:
            self.user_chars.add(len(text))
            self.user_tokens.add(tokens.count(text))
        for text in conversation.assistant_turns:
            self.assistant_chars.add(len(text))
            self.assistant_tokens.add(tokens.count(text))
