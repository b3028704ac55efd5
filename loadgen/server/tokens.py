"""The ``sim`` engine's tokenizer: one token per word, the word's trailing whitespace included.

``split(text)`` concatenates back to ``text`` exactly (leading whitespace rides on the first token), and
``count(text) == len(split(text))``. Cheap (one regular expression), which is all a cost model needs.
"""

from __future__ import annotations

import re

from loadgen.server.engines.base import Tokenizer

_TOKEN = re.compile(r"\S+\s*")
_WORD = re.compile(r"\S+")


class WordTokenizer(Tokenizer):
    """Words with their trailing whitespace: ``"Hi  there.\\n"`` -> ``["Hi  ", "there.\\n"]``."""

    def count(self, text: str) -> int:
        n = len(_WORD.findall(text))
        if n == 0 and text:
            return 1  # whitespace only: one token, as split() gives
        return n

    def split(self, text: str) -> list[str]:
        tokens = _TOKEN.findall(text)
        if not tokens:
            return [text] if text else []
        if not text[0].isspace():
            return tokens
        lead = len(text) - len(text.lstrip())
        tokens[0] = text[:lead] + tokens[0]
        return tokens


__all__ = ["WordTokenizer"]
