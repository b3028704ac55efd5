"""The torch engine's tokenizer: byte-level pieces of about four characters, ids from a stable hash.

Like GPT-2's byte-level BPE it takes any text (no unknown token) and pre-splits it into words with their
leading space, runs of up to three digits, runs of punctuation, and whitespace; unlike a BPE it learns
nothing: a pre-token longer than :data:`MAX_PIECE_CHARS` characters is cut into pieces of that length, and a
piece's id is a CRC-32 of its UTF-8 bytes modulo the vocabulary. On English that is ~4 characters per
token, close to a real tokenizer, so prompt lengths, reply lengths and ``max_tokens`` cost what they would
on a real model (a plain one-token-per-byte tokenizer would make every reply four times as long, and cut a
64-token reply after 64 bytes, dropping the facts a retention probe looks for).

Pieces are made of whole characters, so a multi-byte UTF-8 character is never split across tokens and
``"".join(split(text)) == text`` always holds. Nothing is downloaded; every process tokenizes the same way.
This module does not import torch.
"""

from __future__ import annotations

import functools
import re
import zlib

from loadgen.server.engines.base import Tokenizer

MAX_PIECE_CHARS = 6
BOS_ID = 0
N_SPECIAL = 1  # ids below this are special tokens

#: GPT-2's pre-tokenizer, in Python's ``re`` (``[^\W\d_]`` is a letter), ending in a catch-all.
_PRE_TOKEN = re.compile(r"'(?:[sdmt]|ll|ve|re)(?![^\W\d_])| ?[^\W\d_]+| ?\d{1,3}| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+|[\s\S]")


class PieceTokenizer(Tokenizer):
    """``count(text) == len(split(text))``; ``encode`` gives one id per piece in ``[N_SPECIAL, vocab_size)``."""

    def __init__(self, vocab_size: int) -> None:
        if vocab_size <= N_SPECIAL + 1:
            raise ValueError(f"vocab_size must be larger than {N_SPECIAL + 1}")
        self.vocab_size = vocab_size
        self.token_id = functools.lru_cache(maxsize=1 << 16)(self._hash)  # the id of one piece

    def split(self, text: str) -> list[str]:
        out: list[str] = []
        for pre in _PRE_TOKEN.findall(text):
            if len(pre) <= MAX_PIECE_CHARS:
                out.append(pre)
            else:
                out.extend(pre[i : i + MAX_PIECE_CHARS] for i in range(0, len(pre), MAX_PIECE_CHARS))
        return out

    def count(self, text: str) -> int:
        return sum(-(-len(pre) // MAX_PIECE_CHARS) for pre in _PRE_TOKEN.findall(text))

    def encode(self, text: str) -> list[int]:
        return [self.token_id(piece) for piece in self.split(text)]

    def encode_prompt(self, text: str) -> list[int]:
        return [BOS_ID, *self.encode(text)]

    def _hash(self, piece: str) -> int:
        return N_SPECIAL + zlib.crc32(piece.encode("utf-8", "surrogatepass")) % (self.vocab_size - N_SPECIAL)
