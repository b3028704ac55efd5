"""A Llama-style decoder: RMSNorm, rotary positions (RoPE), grouped-query attention, SwiGLU MLP, a KV cache.

Optional sliding-window attention: each token attends to itself and the ``window - 1`` tokens before it,
and the KV cache of a sequence is a ring of ``window`` positions (keys are rotated before they are cached,
so their order in the ring does not matter to attention).

The KV cache is one tensor per K and V, ``[layers, slots, kv_heads, capacity, head_dim]``; a running
sequence owns one slot. The engine keeps the running sequences in slots ``0..B-1`` (it moves the last one
into a hole when a sequence leaves), so a batched decode step reads the cache as a view, without a gather.
Sequences of different lengths share a step through an attention mask over the padded positions.

Weights come from a fixed seed (``init_weights``); nothing is downloaded.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from loadgen.server.engines.torch_engine.configs import ModelConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, self.weight.shape, self.weight, self.eps)


def rotate_half(x: Tensor) -> Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    return x * cos + rotate_half(x) * sin


class KVCache:
    """Keys and values of every running sequence: ``[layers, slots, kv_heads, capacity, head_dim]``.

    Without a window the capacity grows (doubling, up to the model's positions) as longer sequences come;
    with a window it is the window: positions are written at ``position % window``.
    """

    def __init__(self, config: ModelConfig, slots: int, device: torch.device, dtype: torch.dtype) -> None:
        self.config = config
        self.slots = slots
        self.device = device
        self.dtype = dtype
        self.ring = config.window is not None and config.window < config.max_seq_len
        self.capacity = 0
        shape = (config.n_layers, slots, config.n_kv_heads, 0, config.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.ensure(config.window if self.ring and config.window else min(256, config.max_seq_len))

    def ensure(self, positions: int) -> None:
        """Make room for a sequence of ``positions`` tokens (prompt plus output) in every slot."""
        if self.ring:
            assert self.config.window is not None
            positions = min(positions, self.config.window)
        if positions <= self.capacity:
            return
        if positions > self.config.max_seq_len:
            raise ValueError(f"{positions} positions exceed the model's {self.config.max_seq_len}")
        new_cap = max(positions, min(2 * self.capacity, self.config.max_seq_len))
        if self.ring:
            new_cap = positions
        cfg = self.config
        shape = (cfg.n_layers, self.slots, cfg.n_kv_heads, new_cap, cfg.head_dim)
        k = torch.zeros(shape, device=self.device, dtype=self.dtype)
        v = torch.zeros(shape, device=self.device, dtype=self.dtype)
        if self.capacity:
            k[:, :, :, : self.capacity] = self.k
            v[:, :, :, : self.capacity] = self.v
        self.k, self.v, self.capacity = k, v, new_cap

    def move(self, src: int, dst: int, length: int) -> None:
        """Copy the first ``length`` cached positions of slot ``src`` into slot ``dst``."""
        n = min(length, self.capacity)
        self.k[:, dst, :, :n] = self.k[:, src, :, :n]
        self.v[:, dst, :, :n] = self.v[:, src, :, :n]

    def nbytes(self) -> int:
        return int(self.k.numel() * self.k.element_size() * 2)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.n_kv_heads = config.n_kv_heads
        self.head_dim = config.head_dim
        self.window = config.window
        qkv = (config.n_heads + 2 * config.n_kv_heads) * config.head_dim
        self.wqkv = nn.Linear(config.d_model, qkv, bias=False)
        self.wo = nn.Linear(config.d_model, config.d_model, bias=False)

    def _qkv(self, x: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Q, K, V as ``[B, heads, T, D]`` views; ``cos``/``sin`` are ``[B or 1, T, 1, D]``."""
        b, t, _ = x.shape
        h, kvh = self.n_heads, self.n_kv_heads
        qkv: Tensor = self.wqkv(x)
        qkv = qkv.view(b, t, h + 2 * kvh, self.head_dim)
        qk = apply_rope(qkv[:, :, : h + kvh], cos, sin)  # queries and keys rotated together: fewer kernels
        return qk[:, :, :h].transpose(1, 2), qk[:, :, h:].transpose(1, 2), qkv[:, :, h + kvh :].transpose(1, 2)

    def forward_full(self, x: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Causal (or sliding-window) attention over whole sequences ``[B, T, d]``; also returns K and V."""
        b, t, _ = x.shape
        q, k, v = self._qkv(x, cos, sin)
        if self.window is None or t <= self.window:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        else:
            i = torch.arange(t, device=x.device)
            dist = i[:, None] - i[None, :]
            mask = (dist >= 0) & (dist < self.window)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        out: Tensor = self.wo(o.transpose(1, 2).reshape(b, t, -1))
        return out, k, v

    def forward_decode(
        self,
        x: Tensor,
        cos: Tensor,
        sin: Tensor,
        cache_k: Tensor,
        cache_v: Tensor,
        rows: Tensor,
        write: Tensor,
        mask: Tensor | None,
    ) -> Tensor:
        """One new token per sequence ``[B, 1, d]``; ``cache_k``/``cache_v`` are this layer's ``[B, H_kv, T, D]``
        views; the new keys and values go to ``[rows, :, write]``."""
        b = x.shape[0]
        q, k, v = self._qkv(x, cos, sin)
        cache_k[rows, :, write] = k[:, :, 0]
        cache_v[rows, :, write] = v[:, :, 0]
        # grouped-query attention without repeating K/V: the query heads that share a KV head become that
        # head's query rows (exact for one query position per sequence)
        group = self.n_heads // self.n_kv_heads
        qg = q.reshape(b, self.n_kv_heads, group, self.head_dim)
        o = F.scaled_dot_product_attention(qg, cache_k, cache_v, attn_mask=mask)
        out: Tensor = self.wo(o.reshape(b, 1, self.n_heads * self.head_dim))
        return out


class MLP(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.hidden = config.ffn_hidden
        self.w13 = nn.Linear(config.d_model, 2 * config.ffn_hidden, bias=False)  # gate and up, fused
        self.w2 = nn.Linear(config.ffn_hidden, config.d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        h: Tensor = self.w13(x)
        gate, up = torch.split(h, self.hidden, dim=-1)
        out: Tensor = self.w2(F.silu(gate) * up)
        return out


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(config.d_model, config.norm_eps)
        self.attn = Attention(config)
        self.mlp_norm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = MLP(config)


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = [Block(config) for _ in range(config.n_layers)]  # typed view of ``blocks``
        self.blocks = nn.ModuleList(self.layers)
        self.norm = RMSNorm(config.d_model, config.norm_eps)  # the output head is the embedding (tied)
        self.rope_cos = torch.empty(0)
        self.rope_sin = torch.empty(0)

    @classmethod
    def build(cls, config: ModelConfig, device: torch.device, dtype: torch.dtype, seed: int) -> Transformer:
        """The model with weights drawn from ``seed`` directly on ``device`` (no CPU copy of a 1B model)."""
        with torch.device("meta"):
            model = cls(config)
        model.to_empty(device=device)
        model.to(dtype)
        model.init_weights(seed)
        return model.eval()

    @torch.no_grad()
    def init_weights(self, seed: int) -> None:
        device = self.embed.weight.device
        gen = torch.Generator(device=device).manual_seed(seed)
        std = 0.02
        out_std = std / math.sqrt(2 * self.config.n_layers)
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            elif name.endswith(("wo.weight", "w2.weight")):
                p.normal_(0.0, out_std, generator=gen)
            else:
                p.normal_(0.0, std, generator=gen)
        cfg = self.config
        inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, device=device).float() / cfg.head_dim))
        angles = torch.outer(torch.arange(cfg.max_seq_len, device=device).float(), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        dtype = self.embed.weight.dtype
        self.rope_cos = angles.cos().to(dtype)
        self.rope_sin = angles.sin().to(dtype)

    def weight_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.parameters())

    def _logits(self, x: Tensor) -> Tensor:
        h: Tensor = self.norm(x)
        return F.linear(h, self.embed.weight).float()

    def forward_full(self, tokens: Tensor) -> Tensor:
        """Logits at every position of whole sequences ``[B, T]`` (no cache): the reference for tests."""
        logits, _ = self._run_full(tokens, last_only=False)
        return logits

    def _run_full(self, tokens: Tensor, *, last_only: bool) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        t = tokens.shape[1]
        cos = self.rope_cos[:t][None, :, None]
        sin = self.rope_sin[:t][None, :, None]
        x: Tensor = self.embed(tokens)
        kvs: list[tuple[Tensor, Tensor]] = []
        for block in self.layers:
            a, k, v = block.attn.forward_full(block.attn_norm(x), cos, sin)
            kvs.append((k, v))
            x = x + a
            x = x + block.mlp(block.mlp_norm(x))
        return self._logits(x[:, -1:] if last_only else x), kvs

    def prefill(self, tokens: Tensor, cache: KVCache, slot: int) -> Tensor:
        """Run one prompt ``[T]`` through the model, fill ``slot`` of the cache, return the last logits ``[V]``."""
        t = tokens.shape[0]
        logits, kvs = self._run_full(tokens[None], last_only=True)
        if cache.ring:
            keep = min(t, cache.capacity)
            where = torch.arange(t - keep, t, device=tokens.device) % cache.capacity
            for layer, (k, v) in enumerate(kvs):
                cache.k[layer, slot, :, where] = k[0, :, t - keep :]
                cache.v[layer, slot, :, where] = v[0, :, t - keep :]
        else:
            for layer, (k, v) in enumerate(kvs):
                cache.k[layer, slot, :, :t] = k[0]
                cache.v[layer, slot, :, :t] = v[0]
        return logits[0, 0]

    def decode(self, tokens: Tensor, positions: list[int], cache: KVCache) -> Tensor:
        """One decode step for the sequences in slots ``0..B-1``: ``tokens[i]`` sits at ``positions[i]`` and
        slot ``i`` holds that sequence's earlier positions. Returns logits ``[B, V]``."""
        b = len(positions)
        device = tokens.device
        pos = torch.tensor(positions, device=device)
        if cache.ring:
            valid = [min(p + 1, cache.capacity) for p in positions]
            write = pos % cache.capacity
        else:
            valid = [p + 1 for p in positions]
            write = pos
        t = max(valid)
        mask: Tensor | None = None
        if min(valid) != t:  # ragged batch: hide each sequence's padding (a uniform batch needs no mask)
            lengths = torch.tensor(valid, device=device)
            mask = (torch.arange(t, device=device)[None, :] < lengths[:, None])[:, None, None, :]
        rows = torch.arange(b, device=device)
        cos = self.rope_cos[pos][:, None, None, :]
        sin = self.rope_sin[pos][:, None, None, :]
        x: Tensor = self.embed(tokens)[:, None, :]
        for layer, block in enumerate(self.layers):
            ck = cache.k[layer, :b, :, :t]
            cv = cache.v[layer, :b, :, :t]
            x = x + block.attn.forward_decode(block.attn_norm(x), cos, sin, ck, cv, rows, write, mask)
            x = x + block.mlp(block.mlp_norm(x))
        return self._logits(x)[:, 0]
