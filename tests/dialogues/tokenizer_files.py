"""A tokenizer file for the token-shape tests: one token per whitespace-separated word, as the reference server's
``sim`` engine counts (so a local count and the server's usage agree)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def write_word_tokenizer(path: Path) -> Path:
    """A ``tokenizer.json`` of a word-level model that splits on whitespace only (every word unknown: one token)."""
    tokenizers: Any = pytest.importorskip("tokenizers")
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tokenizer.save(str(path))
    return path
