"""A prefix cache for the ``sim`` engine: which leading part of a prompt a real server would not prefill again.

Modelled on vLLM's automatic prefix caching. A prompt's tokens are cut into blocks of ``block_tokens`` (64 by
default); only full blocks are cached. Block ``i`` is keyed on a hash of its own tokens *and* the key of block
``i - 1``, so a key stands for the whole prefix up to the end of its block: two prompts share a cached block only
when everything before it is the same too. A lookup walks the prompt's keys from the first block and stops at the
first one not cached; the blocks it walked are the cached prefix, whose prefill is skipped. Then every full block
of the prompt is (re)inserted, so the next request with the same beginning finds it.

Capacity is in tokens (``capacity_tokens // block_tokens`` blocks), least recently used first out. The blocks of
one prompt are touched from its last block to its first, so the first blocks of a prompt are the most recent ones
and eviction takes a chain's tail before its head (a block whose parent is gone can never be reached again).

Blocks are cached when a request is looked up (at admission), not a step later when a real server has prefilled
them: a request admitted just after another with the same beginning already finds it. At least one token of every
prompt is always prefilled (as in vLLM: the last token's logits are needed), so a
prompt cached whole saves all its tokens but one. Not thread-safe: the engine calls it from its event loop.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

#: Tokens per cached block (vLLM's default block size is 16; its prefix caching hashes full blocks the same way).
DEFAULT_BLOCK_TOKENS = 64


class PrefixCache:
    """Blocks of prompt tokens already prefilled, least recently used first out. ``capacity_tokens`` 0: off
    (every lookup is a miss that caches nothing)."""

    __slots__ = (
        "_blocks",
        "block_tokens",
        "capacity_blocks",
        "capacity_tokens",
        "evictions",
        "hit_tokens",
        "hits",
        "lookup_tokens",
        "misses",
    )

    def __init__(self, capacity_tokens: int, block_tokens: int = DEFAULT_BLOCK_TOKENS) -> None:
        if capacity_tokens < 0:
            raise ValueError(f"prefix cache capacity must not be negative, got {capacity_tokens} tokens")
        if block_tokens < 1:
            raise ValueError(f"prefix cache blocks must hold at least 1 token, got {block_tokens}")
        self.capacity_tokens = capacity_tokens
        self.block_tokens = block_tokens
        self.capacity_blocks = capacity_tokens // block_tokens
        self._blocks: OrderedDict[int, None] = OrderedDict()  # block key -> nothing; oldest first
        self.hits = 0  # lookups that found at least one cached block
        self.misses = 0
        self.hit_tokens = 0  # prompt tokens whose prefill was skipped
        self.lookup_tokens = 0  # prompt tokens looked up
        self.evictions = 0  # blocks dropped to make room

    def __len__(self) -> int:
        """Blocks held."""
        return len(self._blocks)

    def block_keys(self, tokens: Sequence[str]) -> list[int]:
        """The chained key of every full block of ``tokens`` (a key covers its block and all before it)."""
        size = self.block_tokens
        keys: list[int] = []
        parent = 0
        for start in range(0, len(tokens) - size + 1, size):
            parent = hash((parent, tuple(tokens[start : start + size])))
            keys.append(parent)
        return keys

    def lookup(self, tokens: Sequence[str]) -> int:
        """How many leading tokens of the prompt ``tokens`` are cached (their prefill is skipped: at most all but
        one); then caches every full block of it. Counts a hit or a miss."""
        n = len(tokens)
        self.lookup_tokens += n
        if self.capacity_blocks == 0:
            self.misses += 1
            return 0
        keys = self.block_keys(tokens)
        blocks = self._blocks
        found = 0
        while found < len(keys) and keys[found] in blocks:
            found += 1
        cached = min(found * self.block_tokens, max(n - 1, 0))
        if cached:
            self.hits += 1
            self.hit_tokens += cached
        else:
            self.misses += 1
        for key in reversed(keys[: self.capacity_blocks]):  # the first blocks end up the most recent
            if key in blocks:
                blocks.move_to_end(key)
            else:
                blocks[key] = None
        while len(blocks) > self.capacity_blocks:
            blocks.popitem(last=False)
            self.evictions += 1
        return cached

    def stats(self) -> dict[str, float]:
        """Figures for the engine's ``/stats``: ``prefix_cache_*``."""
        looked_up = self.hits + self.misses
        return {
            "prefix_cache_capacity_tokens": self.capacity_tokens,
            "prefix_cache_block_tokens": self.block_tokens,
            "prefix_cache_blocks": len(self._blocks),
            "prefix_cache_hits": self.hits,
            "prefix_cache_misses": self.misses,
            "prefix_cache_hit_rate": self.hits / looked_up if looked_up else 0.0,
            "prefix_cache_hit_tokens": self.hit_tokens,
            "prefix_cache_lookup_tokens": self.lookup_tokens,
            "prefix_cache_evictions": self.evictions,
        }


__all__ = ["DEFAULT_BLOCK_TOKENS", "PrefixCache"]
