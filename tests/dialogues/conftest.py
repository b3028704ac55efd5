"""Helpers for the dialogue tests: where the fixtures are, and a writer for small dialogue files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

GOOD = """\
name: {name}
weight: {weight}
system: "You help {{name}}."
slots:
  name: first_name
  code: {{faker: bothify, args: {{text: "??####", letters: "ABCDEFGHJKLMNPQRSTUVWXYZ"}}}}
  colour: {{choice: [Vermilion, Chartreuse, Turquoise]}}
turns:
  - user: "My name is {{name}} and I like {{colour}}."
    plant: [name, colour]
  - user: "My code is {{code}}."
    plant: [code]
    think_time: {{min: 0.5, max: 0.75}}
    max_tokens: 32
  - user: "Tell me a {{{{short}}}} joke."
  - user: "What was my code?"
    probe: [code]
  - user: "Do you remember my name and the colour I like?"
    probe: [name, colour]
"""


@pytest.fixture
def write_dialogue(tmp_path: Path) -> Callable[..., Path]:
    """Write a small valid dialogue (or ``text``) to ``tmp_path/<file>`` and return its path."""

    def write(name: str = "small", weight: float = 1, text: str | None = None, file: str | None = None) -> Path:
        path = tmp_path / (file or f"{name}.yaml")
        path.write_text(text if text is not None else GOOD.format(name=name, weight=weight), encoding="utf-8")
        return path

    return write


#: A valid dialogue whose slot provider exists only in some Faker locales (ja_JP has `prefecture`).
JAPAN_DIALOGUE = """\
name: japan
slots:
  prefecture: prefecture
turns:
  - user: "I live in {prefecture}."
    plant: [prefecture]
  - user: "Hello."
  - user: "Hello again."
  - user: "Nice weather."
  - user: "Where do I live?"
    probe: [prefecture]
"""
