"""Builders of small dataset lines and files for the dataset tests."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def openai_line(turns: int, *, system: str | None = None, tag: str = "c") -> dict[str, Any]:
    """A conversation of ``turns`` user turns, each answered: user texts ``{tag} u1``..., replies ``{tag} a1``..."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system is not None else []
    for i in range(1, turns + 1):
        messages += [{"role": "user", "content": f"{tag} u{i}"}, {"role": "assistant", "content": f"{tag} a{i}"}]
    return {"messages": messages}


def sharegpt_line(turns: int, *, system: str | None = None, tag: str = "c") -> dict[str, Any]:
    conversation: list[dict[str, Any]] = [{"from": "system", "value": system}] if system is not None else []
    for i in range(1, turns + 1):
        conversation += [{"from": "human", "value": f"{tag} u{i}"}, {"from": "gpt", "value": f"{tag} a{i}"}]
    return {"conversations": conversation}


def write_lines(path: Path, lines: Iterable[dict[str, Any] | str], *, gz: bool = False) -> Path:
    """One JSON object (or a raw string, written as it is) per line; gzip-compressed when ``gz``."""
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    if gz:
        path.write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))
    else:
        path.write_text(text, encoding="utf-8")
    return path
