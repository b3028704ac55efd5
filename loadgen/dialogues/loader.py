"""Read and validate dialogue scripts (YAML, one dialogue per file).

Every problem in every file is collected before one :class:`DialogueError` is raised, each naming the file,
the line and the field (``FILE:LINE: field `turns[3].probe`: what is wrong; what is expected``). Line numbers
come from PyYAML's composed node tree, so the loader walks nodes rather than plain Python values. Field paths
index lists from 0 as YAML readers do (``turns[3]`` is the fourth turn, "turn 4" in messages and metric names).

File format (see README.md, "Writing dialogues")::

    name: travel_booking            # [a-z0-9_]+, unique across files
    description: ...                # optional
    weight: 3                       # > 0, default 1
    min_turns: 5                    # >= 5 (the default); the file must have at least this many turns
    think_time: {min: 1, max: 3}    # seconds before each turn after the first; default 1-3 s
    max_tokens: 64                  # reply length asked per turn; default 64
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

import difflib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from loadgen.dialogues.conversation import (
    DEFAULT_LOCALE,
    TemplateError,
    check_slot_spec,
    clean_value,
    dialogue_wording,
    normalize_locale,
    probe_value_problem,
    template_slots,
    validation_faker,
)
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

DIALOGUE_SUFFIXES = (".yaml", ".yml")
TOP_KEYS = ("name", "description", "weight", "min_turns", "think_time", "max_tokens", "system", "slots", "turns")
TURN_KEYS = ("user", "plant", "probe", "think_time", "max_tokens")
THINK_KEYS = ("min", "max")
SLOT_KEYS = ("faker", "args", "choice")
NAME_RE = re.compile(r"^[a-z0-9_]+$")
SLOT_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Share of sampled values of a probed Faker slot that must be distinctive (see probe_value_problem).
PROBE_SAMPLES = 20
PROBE_SAMPLES_NEEDED = 10

_MISSING: Any = object()


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _describe(value: Any) -> str:
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the text {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`? " if close else ""


@dataclass
class _FileChecker:
    """Walks one file's node tree, collecting problems."""

    path: str
    loader: yaml.SafeLoader
    locale: str
    problems: list[Problem] = field(default_factory=list)
    name: str | None = None
    name_line: int = 0

    # -- reporting and node access ------------------------------------------------------------------------

    def problem(self, where: Node | int | None, path: str, message: str) -> None:
        line = _line(where) if isinstance(where, Node) else where
        self.problems.append(Problem(self.path, line, path, message))

    def describe_node(self, node: Node) -> str:
        if isinstance(node, MappingNode):
            return "a mapping"
        if isinstance(node, SequenceNode):
            return "a list"
        return _describe(self.scalar(node))

    def scalar(self, node: Node) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError:
            return node.value

    def mapping(
        self, node: Node, path: str, allowed: tuple[str, ...] | None, what: str
    ) -> dict[str, tuple[Node, Node]]:
        """The entries of a mapping node by key, reporting wrong types, duplicate and unknown keys
        (``allowed`` None: any key)."""
        if not isinstance(node, MappingNode):
            self.problem(node, path, f"is {self.describe_node(node)}; expected {what}")
            return {}
        try:
            self.loader.flatten_mapping(node)  # YAML merge keys (<<: *anchor)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = None if mark is None else mark.line + 1
            self.problem(line, path, f"bad merge key: {exc.problem}; expected `<<: *anchor` of a mapping")
            return {}
        out: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node) if isinstance(key_node, ScalarNode) else None
            sub = f"{path}.{key}" if path else str(key)
            if not isinstance(key, str):
                self.problem(key_node, path, f"key {self.describe_node(key_node)} is not a name; expected {what}")
                continue
            if key in out:
                first = _line(out[key][0])
                self.problem(key_node, sub, f"appears twice (first at line {first}); give each key once")
                continue
            if allowed is not None and key not in allowed:
                self.problem(
                    key_node, sub, f"unknown key `{key}`; {_suggest(key, allowed)}expected one of {', '.join(allowed)}"
                )
                continue
            out[key] = (key_node, value_node)
        return out

    def text(self, node: Node, path: str, *, what: str = "text") -> str | None:
        value = self.scalar(node) if isinstance(node, ScalarNode) else _MISSING
        if not isinstance(value, str):
            hint = " (quote it if YAML reads it as something else)" if isinstance(node, ScalarNode) else ""
            self.problem(node, path, f"is {self.describe_node(node)}; expected {what}{hint}")
            return None
        return value

    def number(self, node: Node, path: str, *, integer: bool, low: float, high: float | None, what: str) -> Any:
        value = self.scalar(node) if isinstance(node, ScalarNode) else _MISSING
        ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
        if value is _MISSING or isinstance(value, bool) or not ok_type:
            self.problem(node, path, f"is {self.describe_node(node)}; expected {what}")
            return None
        if (
            (isinstance(value, float) and not math.isfinite(value))
            or value < low
            or (high is not None and value > high)
        ):
            self.problem(node, path, f"{value} is out of range; expected {what}")
            return None
        return value

    def name_list(self, node: Node, path: str) -> list[tuple[str, Node]]:
        if not isinstance(node, SequenceNode):
            self.problem(node, path, f"is {self.describe_node(node)}; expected a list of slot names like [name, city]")
            return []
        out: list[tuple[str, Node]] = []
        seen: set[str] = set()
        for item in node.value:
            name = self.text(item, path, what="a slot name")
            if name is None:
                continue
            if name in seen:
                self.problem(item, path, f"`{name}` is listed twice; list each slot once")
                continue
            seen.add(name)
            out.append((name, item))
        return out

    def think_time(self, node: Node, path: str) -> ThinkTime | None:
        what = "a mapping like {min: 1.0, max: 3.0} (seconds, 0 <= min <= max)"
        entries = self.mapping(node, path, THINK_KEYS, what)
        if not isinstance(node, MappingNode):
            return None
        values: dict[str, float] = {}
        for key in THINK_KEYS:
            if key not in entries:
                self.problem(node, path, f"`{key}` is missing; expected {what}")
                continue
            value = self.number(entries[key][1], f"{path}.{key}", integer=False, low=0.0, high=None, what=what)
            if value is None:
                continue
            values[key] = float(value)
        if len(values) != 2:
            return None
        if values["min"] > values["max"]:
            self.problem(node, path, f"min {values['min']} is larger than max {values['max']}; expected min <= max")
            return None
        return ThinkTime(values["min"], values["max"])

    def template(self, node: Node, path: str) -> tuple[str | None, tuple[str, ...]]:
        """A message template and the slots it uses."""
        text = self.text(node, path)
        if text is None:
            return None, ()
        if not text.strip():
            self.problem(node, path, "is empty; expected the message text")
            return None, ()
        try:
            return text, template_slots(text)
        except TemplateError as exc:
            self.problem(node, path, f"bad template: {exc}")
            return None, ()

    # -- the file ---------------------------------------------------------------------------------------

    def check(self, root: Node) -> Dialogue | None:
        top = self.mapping(root, "", TOP_KEYS, "a mapping with at least `name:` and `turns:`")
        if not isinstance(root, MappingNode):
            return None

        def get(key: str) -> Node | None:
            entry = top.get(key)
            return None if entry is None else entry[1]

        for required in ("name", "turns"):
            if required not in top:
                self.problem(root, required, f"is missing; every dialogue file needs `{required}:`")

        name = None
        if (node := get("name")) is not None:
            name = self.text(node, "name", what="a name of lower-case letters, digits and _")
            self.name_line = _line(node)
            if name is not None and not NAME_RE.match(name):
                self.problem(node, "name", f"{name!r} has other characters; expected only a-z, 0-9 and _")
                name = None
            self.name = name

        description = ""
        if (node := get("description")) is not None:
            description = (self.text(node, "description") or "").strip()

        weight: float | None = DEFAULT_WEIGHT
        if (node := get("weight")) is not None:
            weight = self.number(node, "weight", integer=False, low=0.0, high=None, what="a number greater than 0")
            if weight is not None and weight <= 0:
                self.problem(node, "weight", f"{weight} is not positive; expected a number greater than 0")
                weight = None

        min_turns: int | None = DEFAULT_MIN_TURNS
        if (node := get("min_turns")) is not None:
            what = f"a whole number >= {MIN_TURNS_FLOOR}"
            min_turns = self.number(node, "min_turns", integer=True, low=-math.inf, high=None, what=what)
            if min_turns is not None and min_turns < MIN_TURNS_FLOOR:
                self.problem(
                    node,
                    "min_turns",
                    f"{min_turns} is below {MIN_TURNS_FLOOR}; conversations promise five or more turns, "
                    f"expected {what}",
                )
                min_turns = None

        think: ThinkTime | None = DEFAULT_THINK_TIME
        if (node := get("think_time")) is not None:
            think = self.think_time(node, "think_time")

        max_tokens: int | None = DEFAULT_MAX_TOKENS
        if (node := get("max_tokens")) is not None:
            max_tokens = self._max_tokens(node, "max_tokens")

        slots = self.slots(get("slots"))

        system = None
        system_slots: tuple[str, ...] = ()
        if (node := get("system")) is not None:
            system, system_slots = self.template(node, "system")
            self.unknown_slots(node, "system", system_slots, slots)

        turns = self.turns(get("turns"), slots)

        if turns is not None and min_turns is not None and len(turns) < min_turns:
            self.problem(
                top["turns"][0],
                "turns",
                f"has {len(turns)} turns but the dialogue promises {min_turns} (min_turns); "
                f"expected at least {min_turns} turns",
            )

        if (
            not self.problems
            and name is not None
            and weight is not None
            and min_turns is not None
            and think is not None
            and max_tokens is not None
            and slots is not None
            and turns is not None
        ):
            dialogue = Dialogue(
                name=name,
                path=self.path,
                description=description,
                weight=float(weight),
                min_turns=min_turns,
                think_time=think,
                max_tokens=max_tokens,
                system=system,
                slots=MappingProxyType(dict(slots)),
                turns=tuple(turns),
            )
            self.check_probe_values(dialogue, get("slots"))
            return None if self.problems else dialogue
        return None

    def _max_tokens(self, node: Node, path: str) -> int | None:
        what = f"a whole number from 1 to {MAX_TOKENS_LIMIT}"
        value = self.number(node, path, integer=True, low=1, high=MAX_TOKENS_LIMIT, what=what)
        return None if value is None else int(value)

    def unknown_slots(self, node: Node, path: str, used: Iterable[str], slots: dict[str, SlotSpec] | None) -> None:
        if slots is None:
            return  # the slots block itself is broken and already reported
        for slot in used:
            if slot not in slots:
                defined = ", ".join(slots) or "none"
                self.problem(
                    node,
                    path,
                    f"uses unknown slot `{{{slot}}}`; {_suggest(slot, slots)}define it under `slots:` "
                    f"(defined: {defined})",
                )

    def slots(self, node: Node | None) -> dict[str, SlotSpec] | None:
        if node is None:
            return {}
        what = "a mapping of slot name -> Faker provider, {faker: name, args: {...}} or {choice: [...]}"
        entries = self.mapping(node, "slots", None, what)
        if not isinstance(node, MappingNode):
            return None
        out: dict[str, SlotSpec] = {}
        ok = True
        for slot, (key_node, value_node) in entries.items():
            path = f"slots.{slot}"
            if not SLOT_NAME_RE.match(slot):
                self.problem(key_node, path, f"{slot!r} is not a slot name; expected letters, digits and _")
                ok = False
                continue
            spec = self.slot_spec(slot, value_node, path)
            if spec is None:
                ok = False
                continue
            why = check_slot_spec(validation_faker(self.locale), spec, self.locale)
            if why is not None:
                self.problem(value_node, path, why)
                ok = False
                continue
            out[slot] = spec
        return out if ok else None

    def slot_spec(self, slot: str, node: Node, path: str) -> SlotSpec | None:
        line = _line(node)
        if isinstance(node, ScalarNode):
            provider = self.text(node, path, what="a Faker provider name such as first_name")
            if provider is None:
                return None
            return SlotSpec(slot, provider=provider.strip(), line=line)
        what = "{faker: provider, args: {...}} or {choice: [a, b, ...]}"
        entries = self.mapping(node, path, SLOT_KEYS, what)
        if not isinstance(node, MappingNode):
            return None
        if "faker" in entries and "choice" in entries:
            self.problem(node, path, f"has both `faker` and `choice`; expected one of {what}")
            return None
        if "choice" in entries:
            if "args" in entries:
                self.problem(entries["args"][0], f"{path}.args", "goes with `faker`, not `choice`; remove it")
                return None
            return self.choice_spec(slot, entries["choice"][1], f"{path}.choice", line)
        if "faker" not in entries:
            self.problem(node, path, f"needs `faker` or `choice`; expected {what}")
            return None
        provider = self.text(entries["faker"][1], f"{path}.faker", what="a Faker provider name such as bothify")
        if provider is None:
            return None
        args: dict[str, Any] = {}
        if "args" in entries:
            args_node = entries["args"][1]
            self.mapping(args_node, f"{path}.args", None, "a mapping of keyword name -> value")
            if not isinstance(args_node, MappingNode):
                return None
            value = self.scalar(args_node)
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                self.problem(args_node, f"{path}.args", "expected a mapping of keyword name -> value")
                return None
            args = value
        return SlotSpec(slot, provider=provider.strip(), args=MappingProxyType(args), line=line)

    def choice_spec(self, slot: str, node: Node, path: str, line: int) -> SlotSpec | None:
        what = "a non-empty list of values like [Paris, Rome, Lisbon]"
        if not isinstance(node, SequenceNode) or not node.value:
            self.problem(node, path, f"is {self.describe_node(node)}; expected {what}")
            return None
        choices: list[str] = []
        ok = True
        for item in node.value:
            value = self.scalar(item) if isinstance(item, ScalarNode) else _MISSING
            if value is _MISSING or value is None or isinstance(value, bool | list | dict):
                self.problem(item, path, f"an entry is {self.describe_node(item)}; expected text or a number")
                ok = False
                continue
            text = clean_value(value)
            if not text:
                self.problem(item, path, "an entry is empty; expected text")
                ok = False
                continue
            if text in choices:
                self.problem(item, path, f"{text!r} is listed twice; list each value once")
                ok = False
                continue
            choices.append(text)
        return SlotSpec(slot, choices=tuple(choices), line=line) if ok else None

    # -- turns ------------------------------------------------------------------------------------------

    def turns(self, node: Node | None, slots: dict[str, SlotSpec] | None) -> list[Turn] | None:
        if node is None:
            return None
        if not isinstance(node, SequenceNode) or not node.value:
            shown = "an empty list" if isinstance(node, SequenceNode) else self.describe_node(node)
            self.problem(node, "turns", f"is {shown}; expected a list of turns (- user: ...)")
            return None
        turns: list[Turn] = []
        planted_at: dict[str, int] = {}  # slot -> turn index it was (last) planted at
        raw_plants = [self._raw_plant(turn_node) for turn_node in node.value]
        plant_later: dict[str, int] = {}  # slot -> first turn index that plants it
        for i, names in enumerate(raw_plants):
            for slot in names:
                plant_later.setdefault(slot, i + 1)
        ok = True
        for i, turn_node in enumerate(node.value):
            turn = self.turn(i, turn_node, slots, planted_at, plant_later)
            # a broken turn still counts as planting what it lists: no knock-on errors for later probes
            for slot in turn.plant if turn is not None else raw_plants[i]:
                planted_at[slot] = i + 1
            if turn is None:
                ok = False
                continue
            turns.append(turn)
        return turns if ok else None

    @staticmethod
    def _raw_plant(turn_node: Node) -> list[str]:
        if isinstance(turn_node, MappingNode):
            for key_node, value_node in turn_node.value:
                if isinstance(key_node, ScalarNode) and key_node.value == "plant":
                    if isinstance(value_node, ScalarNode):
                        return [str(value_node.value)]
                    if isinstance(value_node, SequenceNode):
                        return [str(item.value) for item in value_node.value if isinstance(item, ScalarNode)]
        return []

    def turn(
        self,
        i: int,
        node: Node,
        slots: dict[str, SlotSpec] | None,
        planted_at: dict[str, int],
        plant_later: dict[str, int],
    ) -> Turn | None:
        base = f"turns[{i}]"
        index = i + 1
        before = len(self.problems)
        entries = self.mapping(node, base, TURN_KEYS, "a mapping like {user: 'message', plant: [...], probe: [...]}")
        if not isinstance(node, MappingNode):
            return None
        if "user" not in entries:
            self.problem(node, f"{base}.user", f"is missing; turn {index} needs `user:` with the message text")
        text: str | None = None
        used: tuple[str, ...] = ()
        if "user" in entries:
            user_node = entries["user"][1]
            text, used = self.template(user_node, f"{base}.user")
            self.unknown_slots(user_node, f"{base}.user", used, slots)
        plant: list[tuple[str, Node]] = []
        probe: list[tuple[str, Node]] = []
        if "plant" in entries:
            plant = self.name_list(entries["plant"][1], f"{base}.plant")
        if "probe" in entries:
            probe = self.name_list(entries["probe"][1], f"{base}.probe")
        known = slots if slots is not None else None
        for slot, item in plant:
            path = f"{base}.plant"
            if known is not None and slot not in known:
                self.problem(
                    item, path, f"unknown slot `{slot}`; {_suggest(slot, known)}expected a slot under `slots:`"
                )
            elif text is not None and slot not in used:
                self.problem(
                    item,
                    path,
                    f"`{slot}` is not used in turn {index}'s text; a turn plants only slots its `user:` text "
                    f"contains as {{{slot}}}",
                )
        for slot, item in probe:
            path = f"{base}.probe"
            if known is not None and slot not in known:
                self.problem(
                    item, path, f"unknown slot `{slot}`; {_suggest(slot, known)}expected a slot under `slots:`"
                )
            elif slot not in planted_at:
                later = plant_later.get(slot)
                where = (
                    f"it is planted only in turn {later}"
                    if later is not None and later >= index
                    else "no turn plants it"
                )
                self.problem(
                    item,
                    path,
                    f"`{slot}` is never planted before turn {index} ({where}); expected a fact listed in an "
                    "earlier turn's `plant:`",
                )
            elif text is not None and slot in used:
                self.problem(
                    item,
                    path,
                    f"turn {index} probes `{slot}` but its own text contains {{{slot}}}, so any echo would pass; "
                    "expected a question that does not give the answer",
                )
        think = None
        if "think_time" in entries:
            key_node, think_node = entries["think_time"]
            think = self.think_time(think_node, f"{base}.think_time")
            if index == 1:
                self.problem(
                    key_node,
                    f"{base}.think_time",
                    "the first turn starts at once, with no think time before it; expected think_time only on "
                    "later turns",
                )
        max_tokens = None
        if "max_tokens" in entries:
            max_tokens = self._max_tokens(entries["max_tokens"][1], f"{base}.max_tokens")
        if len(self.problems) != before or text is None:
            return None
        return Turn(
            index=index,
            user=text,
            plant=tuple(s for s, _ in plant),
            probe=tuple(s for s, _ in probe),
            think_time=think,
            max_tokens=max_tokens,
            line=_line(node),
        )

    def check_probe_values(self, dialogue: Dialogue, slots_node: Node | None) -> None:
        """Probed slots must give values a probe can fail on (not short, not common words, not the script's words)."""
        avoid = dialogue_wording(dialogue)
        fake = validation_faker(self.locale)
        for slot in sorted(dialogue.probed_slots):
            spec = dialogue.slots[slot]
            path = f"slots.{slot}"
            if spec.choices is not None:
                for choice in spec.choices:
                    why = probe_value_problem(choice, avoid)
                    if why is not None:
                        self.problem(
                            spec.line,
                            path,
                            f"choice {why}, so a probe of `{slot}` could pass by accident; expected distinctive "
                            "values (names, codes, numbers of 3+ characters)",
                        )
                continue
            fake.seed_instance(12345)
            bad: list[str] = []
            for _ in range(PROBE_SAMPLES):
                value = clean_value(getattr(fake, spec.provider or "")(**spec.args))
                if probe_value_problem(value, avoid) is not None:
                    bad.append(value)
            if PROBE_SAMPLES - len(bad) < PROBE_SAMPLES_NEEDED:
                examples = ", ".join(repr(v) for v in bad[:3])
                self.problem(
                    spec.line,
                    path,
                    f"{len(bad)} of {PROBE_SAMPLES} sample values of Faker `{spec.provider}` (e.g. {examples}) are "
                    f"too short or common words, so a probe of `{slot}` could pass by accident; expected a more "
                    "distinctive provider, or a pattern such as {faker: bothify, args: {text: '??-####'}}",
                )


def _read_root(path: str, problems: list[Problem]) -> tuple[yaml.SafeLoader, Node] | None:
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        problems.append(Problem(path, None, "", "no such file; expected a dialogue .yaml file or a folder of them"))
        return None
    except OSError as exc:
        problems.append(Problem(path, None, "", f"cannot be read: {exc.strerror or exc}"))
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.append(Problem(path, line, "", "is not UTF-8 text; save the file as UTF-8"))
        return None
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        problems.append(
            Problem(path, None if mark is None else mark.line + 1, "", f"YAML syntax: {what}; fix the YAML syntax")
        )
        loader.dispose()
        return None
    except yaml.YAMLError as exc:
        problems.append(Problem(path, None, "", f"YAML syntax: {exc}; fix the YAML syntax"))
        loader.dispose()
        return None
    if root is None:
        problems.append(Problem(path, 1, "", "is empty; expected a mapping with at least `name:` and `turns:`"))
        loader.dispose()
        return None
    return loader, root


def _load_file(path: str, locale: str) -> tuple[Dialogue | None, list[Problem], str | None, int]:
    """(dialogue or None, problems, the file's `name` if readable, its line)."""
    problems: list[Problem] = []
    read = _read_root(path, problems)
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
