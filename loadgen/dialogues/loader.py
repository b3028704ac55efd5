"""Read and validate dialogue scripts (YAML, one dialogue per file).

Every problem in every file is collected before one :class:`DialogueError` is raised, each naming the file,
the line and the field (``FILE:LINE: field `turns[3].probe`: what is wrong; what is expected``). Line numbers
come from PyYAML's composed node tree (:mod:`loadgen.dialogues.yaml_nodes`), so the checks walk nodes rather
than plain Python values. Field paths index lists from 0 as YAML readers do (``turns[3]`` is the fourth turn,
"turn 4" in messages and metric names). This module checks the top level of a file and names across files;
:mod:`loadgen.dialogues.slot_checks` the ``slots:`` block and :mod:`loadgen.dialogues.turn_checks` the turns.

File format (see README.md, "Writing dialogues")::

    name: travel_booking            # [a-z0-9_]+, unique across files
    description: ...                # optional
    weight: 3                       # > 0, default 1
    min_turns: 5                    # >= 5 (the default); the file must have at least this many turns
    think_time: {min: 1, max: 3}    # seconds before each turn after the first; default 1-3 s
    max_tokens: 64                  # reply length asked per turn; default 64
    input_tokens: 200±50            # optional: user messages of N±S tokens (filler after each turn's text)
    output_tokens: 128              # optional: replies of M±S tokens (max_tokens = min_tokens, ignore_eos)
    system: "You are ..."           # optional system prompt; may use {slots}
    slots:                          # name -> Faker provider | {faker: name, args: {...}} | {choice: [...]}
      name: first_name
    turns:
      - user: "My name is {name}."  # the message; {slot} fields, {{ and }} for literal braces
        plant: [name]               # facts this turn tells (slots used in its text)
        probe: []                   # facts planted earlier that this turn's reply must contain
        think_time: {min: 2, max: 4}    # optional, per turn
        max_tokens: 48                  # optional, per turn
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from yaml.nodes import MappingNode, Node

from loadgen.dialogues.fakers import DEFAULT_LOCALE, normalize_locale
from loadgen.dialogues.model import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_MIN_TURNS,
    DEFAULT_THINK_TIME,
    DEFAULT_WEIGHT,
    MAX_TOKENS_LIMIT,
    MIN_TURNS_FLOOR,
    Dialogue,
    DialogueError,
    Problem,
    SlotSpec,
    ThinkTime,
    Turn,
)
from loadgen.dialogues.shapes import NO_SHAPE, TokenShape, TokenTarget, parse_target
from loadgen.dialogues.turn_checks import TurnChecks
from loadgen.dialogues.yaml_nodes import line_of, read_root
from loadgen.errors import ConfigError

DIALOGUE_SUFFIXES = (".yaml", ".yml")
TOP_KEYS = (
    "name", "description", "weight", "min_turns", "think_time", "max_tokens", "input_tokens", "output_tokens",
    "system", "slots", "turns",
)  # fmt: skip
NAME_RE = re.compile(r"^[a-z0-9_]+$")


@dataclass
class _Header:
    """The top-level settings of a file; None where the file's value is broken (and reported)."""

    description: str
    weight: float | None
    min_turns: int | None
    think: ThinkTime | None
    max_tokens: int | None
    shape: TokenShape = NO_SHAPE


@dataclass
class _FileChecker(TurnChecks):
    """Walks one file's node tree, collecting problems; remembers the file's ``name`` for the uniqueness check."""

    name: str | None = None
    name_line: int = 0

    def check(self, root: Node) -> Dialogue | None:
        top = self.mapping(root, "", TOP_KEYS, "a mapping with at least `name:` and `turns:`")
        if not isinstance(root, MappingNode):
            return None
        nodes = {key: value for key, (_, value) in top.items()}
        for required in ("name", "turns"):
            if required not in top:
                self.problem(root, required, f"is missing; every dialogue file needs `{required}:`")
        self.name = self._name(nodes.get("name"))
        header = self._header(nodes)
        slots = self.slots(nodes.get("slots"))
        system = None
        if (node := nodes.get("system")) is not None:
            system, system_slots = self.template(node, "system")
            self.unknown_slots(node, "system", system_slots, slots)
        turns = self.turns(nodes.get("turns"), slots)
        if turns is not None and header.min_turns is not None and len(turns) < header.min_turns:
            self.problem(
                top["turns"][0],
                "turns",
                f"has {len(turns)} turns but the dialogue promises {header.min_turns} (min_turns); "
                f"expected at least {header.min_turns} turns",
            )
        if self.problems or self.name is None or slots is None or turns is None:
            return None
        dialogue = self._build(self.name, header, system, slots, turns)
        if dialogue is None:
            return None
        self.check_probe_values(dialogue, nodes.get("slots"))
        return None if self.problems else dialogue

    def _name(self, node: Node | None) -> str | None:
        if node is None:
            return None
        name = self.text(node, "name", what="a name of lower-case letters, digits and _")
        self.name_line = line_of(node)
        if name is not None and not NAME_RE.match(name):
            self.problem(node, "name", f"{name!r} has other characters; expected only a-z, 0-9 and _")
            return None
        return name

    def _header(self, nodes: dict[str, Node]) -> _Header:
        header = _Header("", DEFAULT_WEIGHT, DEFAULT_MIN_TURNS, DEFAULT_THINK_TIME, DEFAULT_MAX_TOKENS)
        if (node := nodes.get("description")) is not None:
            header.description = (self.text(node, "description") or "").strip()
        if (node := nodes.get("weight")) is not None:
            weight = self.number(node, "weight", integer=False, low=0.0, high=None, what="a number greater than 0")
            if weight is not None and weight <= 0:
                self.problem(node, "weight", f"{weight} is not positive; expected a number greater than 0")
                weight = None
            header.weight = weight
        if (node := nodes.get("min_turns")) is not None:
            header.min_turns = self._min_turns(node)
        if (node := nodes.get("think_time")) is not None:
            header.think = self.think_time(node, "think_time")
        if (node := nodes.get("max_tokens")) is not None:
            header.max_tokens = self.max_tokens(node, "max_tokens")
        header.shape = TokenShape(
            self._target(nodes.get("input_tokens"), "input_tokens", None),
            self._target(nodes.get("output_tokens"), "output_tokens", MAX_TOKENS_LIMIT),
        )
        return header

    def _target(self, node: Node | None, key: str, high: int | None) -> TokenTarget | None:
        if node is None:
            return None
        try:
            return parse_target(self.scalar(node), key, high=high)
        except ConfigError as exc:
            self.problem(node, key, str(exc).removeprefix(key).strip())
            return None

    def _min_turns(self, node: Node) -> int | None:
        what = f"a whole number >= {MIN_TURNS_FLOOR}"
        min_turns: int | None = self.number(node, "min_turns", integer=True, low=-math.inf, high=None, what=what)
        if min_turns is not None and min_turns < MIN_TURNS_FLOOR:
            self.problem(
                node,
                "min_turns",
                f"{min_turns} is below {MIN_TURNS_FLOOR}; conversations promise five or more turns, expected {what}",
            )
            return None
        return min_turns

    def _build(
        self, name: str, header: _Header, system: str | None, slots: dict[str, SlotSpec], turns: list[Turn]
    ) -> Dialogue | None:
        if header.weight is None or header.min_turns is None or header.think is None or header.max_tokens is None:
            return None
        return Dialogue(
            name=name,
            path=self.path,
            description=header.description,
            weight=float(header.weight),
            min_turns=header.min_turns,
            think_time=header.think,
            max_tokens=header.max_tokens,
            system=system,
            slots=MappingProxyType(dict(slots)),
            turns=tuple(turns),
            shape=header.shape,
        )


def _load_file(path: str, locale: str) -> tuple[Dialogue | None, list[Problem], str | None, int]:
    """(dialogue or None, problems, the file's `name` if readable, its line)."""
    problems: list[Problem] = []
    read = read_root(path, problems)
    if read is None:
        return None, problems, None, 0
    loader, root = read
    try:
        checker = _FileChecker(path, loader, locale)
        dialogue = checker.check(root)
        return dialogue, checker.problems, checker.name, checker.name_line
    finally:
        loader.dispose()


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[str], list[Problem]]:
    """Dialogue files named by ``paths``: a folder stands for its *.yaml/*.yml files, sorted by name."""
    if isinstance(paths, str | Path):
        paths = [paths]
    files: list[str] = []
    problems: list[Problem] = []
    seen: set[Path] = set()
    for given in paths:
        p = Path(given)
        if p.is_dir():
            found = sorted(c for c in p.iterdir() if c.suffix.lower() in DIALOGUE_SUFFIXES and c.is_file())
            if not found:
                problems.append(
                    Problem(str(p), None, "", "folder has no *.yaml or *.yml dialogue files; expected at least one")
                )
            candidates = [str(c) for c in found]
        else:
            candidates = [str(given)]
        for candidate in candidates:
            key = Path(candidate).resolve()
            if key in seen:
                continue
            seen.add(key)
            files.append(candidate)
    return files, problems


def load_dialogues(paths: Iterable[str | Path], *, locale: str = DEFAULT_LOCALE) -> list[Dialogue]:
    """Load and validate every dialogue in ``paths`` (files or folders).

    Collects the problems of all files and raises one :class:`DialogueError`; names must be unique across
    files. ``locale`` is the Faker locale slot providers are checked against.
    """
    locale = normalize_locale(locale)
    files, problems = expand_paths(paths)
    if not files and not problems:
        problems.append(Problem("(none)", None, "", "no dialogue files given; expected files or folders"))
    dialogues: list[Dialogue] = []
    first_seen: dict[str, tuple[str, int]] = {}
    for file in files:
        dialogue, file_problems, name, name_line = _load_file(file, locale)
        problems.extend(file_problems)
        if name is not None:
            earlier = first_seen.get(name)
            if earlier is not None:
                problems.append(
                    Problem(
                        file,
                        name_line,
                        "name",
                        f"`{name}` is already the name of the dialogue in {earlier[0]}:{earlier[1]}; "
                        "expected a unique name per dialogue",
                    )
                )
                continue
            first_seen[name] = (file, name_line)
        if dialogue is not None:
            dialogues.append(dialogue)
    if problems:
        raise DialogueError(problems)
    return dialogues


def load_dialogue(path: str | Path, *, locale: str = DEFAULT_LOCALE) -> Dialogue:
    """Load and validate one dialogue file (:class:`DialogueError` listing every problem)."""
    if Path(path).is_dir():
        raise DialogueError([Problem(str(path), None, "", "is a folder; expected one dialogue file")])
    return load_dialogues([path], locale=locale)[0]
