"""The report's token table: per turn, the prompt and reply lengths (p50, p99, max), who counted them, and the
token accounting's counts (replies shorter than asked, usage that disagreed with the local count).

The prompt length grows with the history (in client mode each turn re-sends the conversation so far): its
distribution per turn is what a token-length shape (``--input-tokens``) looks like on the wire. A summary
from before these figures has no ``tokens`` block: no table then.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loadgen.report.tables import DASH, esc, table

TOKENS_HEADER: tuple[str, ...] = (
    "transport", "dialogue", "turn", "turns", "prompt tok p50", "prompt tok p99", "prompt tok max",
    "output tok p50", "output tok p99", "counted by", "short replies", "usage mismatches",
)  # fmt: skip


def _stat(block: dict[str, Any] | None, stat: str) -> str:
    if not block or not block.get("count") or block.get(stat) is None:
        return DASH
    return str(block[stat])


def _counted_by(tokens: dict[str, Any]) -> str:
    counted = {source: n for source, n in (tokens.get("counted_by") or {}).items() if n}
    return ", ".join(f"{source} {n}" for source, n in counted.items()) or DASH


def _cells(row: dict[str, Any], tokens: dict[str, Any], transport: str, dialogue: str, turn: str) -> list[str]:
    cells = [esc(transport), esc(dialogue), esc(turn), str(row.get("count", 0))]
    cells.extend(_stat(tokens.get("prompt"), s) for s in ("p50", "p99", "max"))
    cells.extend(_stat(tokens.get("output"), s) for s in ("p50", "p99"))
    cells.append(esc(_counted_by(tokens)))
    cells.extend(str(int(tokens.get(name) or 0)) for name in ("short_reply", "usage_mismatch"))
    return cells


def tokens_table(summary: dict[str, Any]) -> str | None:
    """The table, or None when no row has token figures (an older summary, or no replies)."""
    rows: list[tuple[str, Sequence[str]]] = []
    for row in summary.get("turns", []):
        tokens = row.get("tokens")
        if tokens:
            rows.append(("", _cells(row, tokens, row["transport"], row["dialogue"], str(row["turn"]))))
    for transport, agg in sorted((summary.get("transports") or {}).items()):
        tokens = agg.get("tokens")
        if tokens:
            rows.append(("agg", _cells(agg, tokens, transport, "(all dialogues)", "all")))
    if not rows:
        return None
    return table("tokens-table", TOKENS_HEADER, rows, left=2)


def tokens_section(summary: dict[str, Any]) -> list[str]:
    """The report's "Tokens per turn" section (nothing when there is no table)."""
    tokens = tokens_table(summary)
    if tokens is None:
        return []
    counting = summary.get("token_counting")
    said = f" Tokens were counted mostly by: {esc(counting)}." if counting else ""
    return [
        "<h2>Tokens per turn</h2>",
        "<p>Prompt and reply lengths in tokens: the server's usage where a reply carried it, else a local "
        f"tokenizer file (--tokenizer), else an estimate (~4 characters a token).{said} Short replies: fewer "
        "tokens than asked (--output-tokens); usage mismatches: the server's usage disagreed with the local "
        "tokenizer's count by more than --token-tolerance.</p>",
        tokens,
    ]
