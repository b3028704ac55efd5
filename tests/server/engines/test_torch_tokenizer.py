"""The torch engine's tokenizer: pieces that concatenate back to the text, whole characters, stable ids."""

from __future__ import annotations

import warnings

import pytest

with warnings.catch_warnings():  # a CPU wheel without NumPy warns at import
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)
    torch = pytest.importorskip(
        "torch", reason="the torch engine needs PyTorch: install 'chat-loadgen[gpu]' or pip install torch==2.13.0"
    )

from loadgen.server.engines.torch_engine.tokenizer import BOS_ID, MAX_PIECE_CHARS, N_SPECIAL, PieceTokenizer
from loadgen.server.responder import filler

pytestmark = pytest.mark.torch

TEXTS = [
    "",
    " ",
    "Hello, world!",
    'You told me: "The serial number printed on the router is SN-1234-ABCD.". Okay.',
    "naïve café — 東京タワー 🙂🙂🙂! e\u0301 x_y  \n\n\t end ",
    "supercalifragilisticexpialidocious 1234567890 don't we'll",
    "\ud800 lone surrogate",
]


@pytest.mark.parametrize("text", TEXTS)
def test_split_concatenates_to_the_text_and_count_agrees(text: str) -> None:
    tok = PieceTokenizer(4096)
    pieces = tok.split(text)
    assert "".join(pieces) == text
    assert tok.count(text) == len(pieces) == len(tok.encode(text))
    assert all(1 <= len(p) <= MAX_PIECE_CHARS for p in pieces)


def test_ids_are_stable_and_in_range() -> None:
    a, b = PieceTokenizer(4096), PieceTokenizer(4096)
    text = TEXTS[3] + TEXTS[4]
    assert a.encode(text) == b.encode(text)
    assert all(N_SPECIAL <= i < 4096 for i in a.encode(text))
    assert a.encode_prompt("hi")[0] == BOS_ID and len(a.encode_prompt("hi")) == 2


def test_about_four_characters_per_token_on_english() -> None:
    tok = PieceTokenizer(128256)
    text = " ".join(filler(seed, 200) for seed in range(10))
    assert 3.5 < len(text) / tok.count(text) < 5.0


def test_a_probed_fact_fits_in_64_tokens_of_a_reply() -> None:
    tok = PieceTokenizer(4096)
    reply = 'You told me: "The serial number printed on the router is SN-1234-ABCD.". ' + filler(1, 64)
    assert "SN-1234-ABCD" in "".join(tok.split(reply)[:64])
