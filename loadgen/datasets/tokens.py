"""Count the tokens of a text: with a local tokenizer file when one is given, else with a documented estimate.

* :class:`CharEstimate` (the default): ``ceil(characters / 4)``, the usual rule of thumb for English text with
  GPT-style BPE vocabularies. It is a rough figure: code, numbers and other languages take more tokens per
  character; its :attr:`~TokenCounter.name` says it is an estimate wherever it is shown.
* :class:`TokenizerFile`: a Hugging Face ``tokenizer.json`` read from a path with the ``tokenizers`` package
  (an optional dependency, imported only here). Nothing is ever downloaded; special tokens are not counted.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from loadgen.errors import ConfigError

CHARS_PER_TOKEN = 4


class TokenCounter(Protocol):
    #: What counted, for a report: ``estimate (~4 characters a token)`` or ``tokenizer PATH``.
    name: str

    def count(self, text: str) -> int: ...


class CharEstimate:
    """``ceil(len(text) / 4)`` tokens."""

    name = f"estimate (~{CHARS_PER_TOKEN} characters a token)"

    def count(self, text: str) -> int:
        return -(-len(text) // CHARS_PER_TOKEN)


class TokenizerFile:
    """Tokens as the tokenizer in ``path`` (a ``tokenizer.json``) counts them, special tokens left out."""

    def __init__(self, path: str) -> None:
        try:
            tokenizers = importlib.import_module("tokenizers")
        except ImportError:
            raise ConfigError(
                f"{path}: counting with a tokenizer file needs the `tokenizers` package (pip install tokenizers)"
            ) from None
        try:
            self._tokenizer: Any = tokenizers.Tokenizer.from_file(path)
        except Exception as exc:  # tokenizers raises plain Exception for a missing or malformed file
            reason = " ".join(str(exc).split())
            raise ConfigError(f"{path}: not a readable tokenizer file (tokenizer.json): {reason}") from None
        self.name = f"tokenizer {path}"

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


def token_counter(path: str | None) -> TokenCounter:
    """The tokenizer in ``path``, or the estimate when ``path`` is ``None``."""
    return CharEstimate() if path is None else TokenizerFile(path)
