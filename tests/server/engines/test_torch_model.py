"""The transformer itself: cached decoding, batched and ragged, gives the logits of a plain forward pass."""

from __future__ import annotations

import warnings

import pytest

with warnings.catch_warnings():  # a CPU wheel without NumPy warns at import
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)
    torch = pytest.importorskip(
        "torch", reason="the torch engine needs PyTorch: install 'chat-loadgen[gpu]' or pip install torch==2.13.0"
    )

from torch import Tensor

from loadgen.errors import ConfigError
from loadgen.server.engines.torch_engine.configs import MODELS, model_config
from loadgen.server.engines.torch_engine.model import KVCache, Transformer

pytestmark = pytest.mark.torch
CPU = torch.device("cpu")
ATOL = 1e-4


def build(window: int | None = None, seed: int = 0) -> Transformer:
    return Transformer.build(model_config("tiny", window), CPU, torch.float32, seed)


def random_tokens(n: int, seed: int) -> list[int]:
    gen = torch.Generator().manual_seed(seed)
    tokens: list[int] = torch.randint(0, 256, (n,), generator=gen).tolist()
    return tokens


def decode_alone(model: Transformer, tokens: list[int], n_prompt: int, slots: int = 1) -> list[Tensor]:
    """Prefill ``tokens[:n_prompt]`` then decode the rest one at a time; logits predicting tokens n_prompt.."""
    cache = KVCache(model.config, slots, CPU, torch.float32)
    cache.ensure(len(tokens))
    with torch.inference_mode():
        out = [model.prefill(torch.tensor(tokens[:n_prompt]), cache, 0)]
        for pos in range(n_prompt, len(tokens) - 1):
            out.append(model.decode(torch.tensor([tokens[pos]]), [pos], cache)[0])
    return out


@pytest.mark.parametrize("window", [None, 8])
def test_cached_decoding_matches_a_full_forward_pass(window: int | None) -> None:
    model = build(window)
    tokens = random_tokens(40, seed=1)
    with torch.inference_mode():
        full = model.forward_full(torch.tensor([tokens]))[0]
    stepped = decode_alone(model, tokens, n_prompt=12)
    for i, logits in enumerate(stepped):
        torch.testing.assert_close(logits, full[11 + i], atol=ATOL, rtol=0)


@pytest.mark.parametrize("window", [None, 16])
def test_batched_ragged_decode_matches_decoding_each_sequence_alone(window: int | None) -> None:
    model = build(window)
    lengths = [(5, 30), (23, 50), (2, 12), (40, 60)]  # (prompt, total): different KV lengths in one batch
    seqs = [random_tokens(total, seed=10 + i) for i, (_, total) in enumerate(lengths)]
    alone = [decode_alone(model, s, p) for s, (p, _) in zip(seqs, lengths, strict=True)]

    cache = KVCache(model.config, len(seqs), CPU, torch.float32)
    cache.ensure(max(total for _, total in lengths))
    batched: list[list[Tensor]] = [[] for _ in seqs]
    pos = [p for p, _ in lengths]
    with torch.inference_mode():
        for slot, (s, p) in enumerate(zip(seqs, pos, strict=True)):
            batched[slot].append(model.prefill(torch.tensor(s[:p]), cache, slot))
        while True:
            live = [i for i, s in enumerate(seqs) if pos[i] < len(s) - 1]
            if not live:
                break
            # the batch is always slots 0..B-1: step those whose turn it is, the finished ones repeat a
            # harmless extra token so every slot stays in the batch (as padding would)
            tokens = [seqs[i][min(pos[i], len(seqs[i]) - 1)] for i in range(len(seqs))]
            logits = model.decode(torch.tensor(tokens), [min(p, len(seqs[i]) - 1) for i, p in enumerate(pos)], cache)
            for i in live:
                batched[i].append(logits[i])
                pos[i] += 1
    assert max(max(len(s) for s in seqs) - p for p, _ in lengths) > 0
    for got, want in zip(batched, alone, strict=True):
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, atol=ATOL, rtol=0)


def test_moving_a_slot_keeps_its_sequence() -> None:
    model = build()
    tokens = random_tokens(20, seed=3)
    want = decode_alone(model, tokens, n_prompt=10)
    cache = KVCache(model.config, 3, CPU, torch.float32)
    with torch.inference_mode():
        model.prefill(torch.tensor(tokens[:10]), cache, 2)
        cache.move(2, 0, 10)
        got = model.decode(torch.tensor([tokens[10]]), [10], cache)[0]
    torch.testing.assert_close(got, want[1], atol=ATOL, rtol=0)


def test_weights_come_from_the_seed() -> None:
    a, b, c = build(seed=7), build(seed=7), build(seed=8)
    assert torch.equal(a.embed.weight, b.embed.weight)
    assert not torch.equal(a.embed.weight, c.embed.weight)


def test_sizes() -> None:
    for name, cfg in MODELS.items():
        if name == "tiny":
            assert sum(p.numel() for p in build().parameters()) == cfg.n_params()
    assert MODELS["tiny"].n_params() < 2_000_000
    assert 1.2e9 < MODELS["1b"].n_params() < 1.3e9  # Llama 3.2 1B: 1.24B
    with pytest.raises(ConfigError, match="unknown --torch-model"):
        model_config("70b")
    with pytest.raises(ConfigError, match="window"):
        model_config("tiny", window=0)
