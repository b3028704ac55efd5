"""Model sizes the torch engine can build. Weights come from a fixed seed; nothing is downloaded.

- ``tiny``: 2 layers, d=128, a 4096-token vocabulary, about 1M parameters: a whole 5-turn conversation takes
  milliseconds of model time on a laptop CPU, so the tests and the end-to-end contract suite can use it.
- ``1b``: the shape of Llama 3.2 1B (16 layers, d=2048, 32 query heads over 8 KV heads, SwiGLU 8192, a
  128,256-token vocabulary, input and output embeddings tied): 1.24B parameters, ~2.5 GB in bf16, for a GPU.

This module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from loadgen.errors import ConfigError
from loadgen.server.engines.torch_engine.tokenizer import N_SPECIAL


@dataclass(frozen=True)
class ModelConfig:
    name: str
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    ffn_hidden: int
    vocab_size: int
    max_seq_len: int  # positions the model accepts (prompt + output)
    rope_theta: float = 500000.0
    norm_eps: float = 1e-5
    window: int | None = None  # sliding-window attention: each token sees itself and the window-1 before it

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads or self.n_heads % self.n_kv_heads:
            raise ConfigError(f"model {self.name}: d_model, n_heads and n_kv_heads do not divide evenly")
        if self.vocab_size <= N_SPECIAL + 1:
            raise ConfigError(f"model {self.name}: vocab_size must be larger than {N_SPECIAL + 1}")
        if self.window is not None and self.window < 1:
            raise ConfigError(f"--window must be at least 1 token, got {self.window}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def n_params(self) -> int:
        """Parameters, counted from the shapes (the model built from this config has exactly these)."""
        d, kv = self.d_model, self.n_kv_heads * self.head_dim
        attn = d * d + 2 * d * kv + d * d
        mlp = 3 * d * self.ffn_hidden
        per_layer = attn + mlp + 2 * d  # two RMSNorm weights
        return self.n_layers * per_layer + self.vocab_size * d + d  # tied embedding, final norm

    def kv_bytes_per_token(self, dtype_bytes: int) -> int:
        return 2 * self.n_layers * self.n_kv_heads * self.head_dim * dtype_bytes


MODELS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(
        name="tiny",
        n_layers=2,
        d_model=128,
        n_heads=4,
        n_kv_heads=2,
        ffn_hidden=384,
        vocab_size=4096,
        max_seq_len=8192,
    ),
    "1b": ModelConfig(
        name="1b",
        n_layers=16,
        d_model=2048,
        n_heads=32,
        n_kv_heads=8,
        ffn_hidden=8192,
        vocab_size=128256,
        max_seq_len=8192,
    ),
}


def model_config(name: str, window: int | None = None) -> ModelConfig:
    try:
        base = MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown --torch-model {name!r}: choose one of {', '.join(MODELS)}") from None
    return replace(base, window=window)
