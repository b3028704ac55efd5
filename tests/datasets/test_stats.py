"""Distributions (nearest-rank percentiles) and token counters (the estimate, a local tokenizer file)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from loadgen.datasets.model import DatasetConversation, DatasetTurn
from loadgen.datasets.stats import DatasetStats, Distribution
from loadgen.datasets.tokens import CharEstimate, TokenizerFile, token_counter
from loadgen.errors import ConfigError


def test_distribution_nearest_rank() -> None:
    d = Distribution()
    assert d.summary() == (0, 0, 0, 0, 0)
    for value in (7, 1, 3, 3, 10, 2, 8, 5, 9, 4):
        d.add(value)
    assert d.summary() == (10, 1, 4, 9, 10)
    assert d.percentile(0) == 1
    assert d.percentile(51) == 5
    assert d.percentile(100) == 10
    single = Distribution()
    single.add(0)
    assert single.summary() == (1, 0, 0, 0, 0)


def test_estimate_is_four_characters_a_token() -> None:
    estimate = CharEstimate()
    assert [estimate.count(text) for text in ("", "a", "abcd", "abcde", "x" * 400)] == [0, 1, 1, 2, 100]
    assert estimate.name == "estimate (~4 characters a token)"
    assert isinstance(token_counter(None), CharEstimate)


def test_dataset_stats_counts_what_a_run_replays() -> None:
    conversation = DatasetConversation(
        "f", 1, 0, "a system prompt is not a turn", (DatasetTurn("abcdefgh", "abc"), DatasetTurn("x", None))
    )
    stats = DatasetStats()
    stats.add(conversation, CharEstimate())
    assert stats.turns.summary() == (1, 2, 2, 2, 2)
    assert stats.user_chars.summary() == (2, 1, 1, 8, 8)
    assert stats.user_tokens.summary() == (2, 1, 1, 2, 2)
    assert stats.assistant_chars.summary() == (1, 3, 3, 3, 3)


def write_word_tokenizer(path: Path) -> Path:
    """A tiny word-level tokenizer.json: one token per word or run of punctuation."""
    tokenizers: Any = pytest.importorskip("tokenizers")
    vocab = {"[UNK]": 0, "hello": 1, "world": 2}
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer.save(str(path))
    return path


def test_tokenizer_file(tmp_path: Path) -> None:
    path = write_word_tokenizer(tmp_path / "tokenizer.json")
    counter = token_counter(str(path))
    assert isinstance(counter, TokenizerFile)
    assert counter.name == f"tokenizer {path}"
    assert [counter.count(text) for text in ("hello world", "hello, unknown words!", "")] == [2, 5, 0]


def test_tokenizer_file_errors(tmp_path: Path) -> None:
    pytest.importorskip("tokenizers")
    missing = tmp_path / "missing.json"
    with pytest.raises(ConfigError, match=rf"^{missing}: not a readable tokenizer file \(tokenizer.json\): "):
        TokenizerFile(str(missing))
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{}", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{garbage}: not a readable tokenizer file"):
        TokenizerFile(str(garbage))


def test_tokenizer_file_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # what an import finds when the package is not installed
    with pytest.raises(ConfigError) as caught:
        TokenizerFile("tokenizer.json")
    assert str(caught.value) == (
        "tokenizer.json: counting with a tokenizer file needs the `tokenizers` package (pip install tokenizers)"
    )
