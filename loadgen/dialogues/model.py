"""Validated, frozen dialogue scripts, and the error that names every problem found in them.

A :class:`Dialogue` is what one YAML file describes once :mod:`loadgen.dialogues.loader` has checked it; a
:class:`loadgen.dialogues.conversation.Conversation` is one run through it with Faker-filled slots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

from loadgen.dialogues.shapes import NO_SHAPE, TokenShape
from loadgen.errors import ConfigError

#: Defaults a dialogue file may leave out.
DEFAULT_WEIGHT = 1.0
DEFAULT_MIN_TURNS = 5
MIN_TURNS_FLOOR = 5  # the product promises conversations of five or more turns
DEFAULT_MAX_TOKENS = 64
MAX_TOKENS_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class ThinkTime:
    """Pause before a turn, drawn uniformly from ``[min_s, max_s]`` seconds."""

    min_s: float
    max_s: float


DEFAULT_THINK_TIME = ThinkTime(1.0, 3.0)


@dataclass(frozen=True, slots=True)
class SlotSpec:
    """How one slot gets its value per conversation: a Faker provider (with keyword ``args``) or a ``choice``.

    Exactly one of ``provider`` and ``choices`` is set. ``line`` is where the slot is defined.
    """

    name: str
    provider: str | None = None
    args: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    choices: tuple[str, ...] | None = None
    line: int = 0

    @property
    def kind(self) -> str:
        return "faker" if self.provider is not None else "choice"


@dataclass(frozen=True, slots=True)
class Turn:
    """One user message. ``plant`` names the slots whose values this turn tells the other side; ``probe`` the
    slots (planted in earlier turns) that this turn's reply must still contain."""

    index: int  # 1-based
    user: str  # the template, with {slot} fields
    plant: tuple[str, ...] = ()
    probe: tuple[str, ...] = ()
    think_time: ThinkTime | None = None  # pause before this turn; None: the dialogue's
    max_tokens: int | None = None  # None: the dialogue's
    line: int = 0


@dataclass(frozen=True)
class Dialogue:
    """One validated dialogue script (one file)."""

    name: str
    path: str
    description: str
    weight: float
    min_turns: int
    think_time: ThinkTime
    max_tokens: int
    system: str | None
    slots: Mapping[str, SlotSpec] = field(hash=False)
    turns: tuple[Turn, ...]
    shape: TokenShape = NO_SHAPE  # token-length shapes (input_tokens, output_tokens); none by default

    def think_time_before(self, turn: Turn) -> ThinkTime:
        """The pause before ``turn``: its own ``think_time`` if it has one, else the dialogue's."""
        return turn.think_time if turn.think_time is not None else self.think_time

    def max_tokens_for(self, turn: Turn) -> int:
        """The reply length asked for at ``turn``: its own ``max_tokens`` if it has one, else the dialogue's."""
        return turn.max_tokens if turn.max_tokens is not None else self.max_tokens

    @cached_property
    def probed_slots(self) -> frozenset[str]:
        """Every slot some turn probes (their values must be distinctive enough for a probe to fail)."""
        return frozenset(name for turn in self.turns for name in turn.probe)

    @cached_property
    def planted_slots(self) -> frozenset[str]:
        return frozenset(name for turn in self.turns for name in turn.plant)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a dialogue file. ``line`` is 1-based (None when the file could not be read);
    ``field`` is a path like ``turns[3].probe`` (empty for the file as a whole)."""

    file: str
    line: int | None
    field: str
    message: str

    def format(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.field:
            return f"{where}: field `{self.field}`: {self.message}"
        return f"{where}: {self.message}"

    def __str__(self) -> str:
        return self.format()


class DialogueError(ConfigError):
    """One or more problems in dialogue scripts; ``str()`` gives them one per line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(p.format() for p in self.problems))
