"""Checks of a dialogue's ``turns:`` list, and of the values a turn shares with the file's top level
(think time, reply length, message templates).

A turn plants only slots its own text uses, probes only slots an earlier turn planted (and that its own text
does not give away), and the first turn has no think time before it. A broken turn still counts as planting
what it lists, so one mistake gives one problem, not a knock-on problem at every later probe.
"""

from __future__ import annotations

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from loadgen.dialogues.model import MAX_TOKENS_LIMIT, SlotSpec, ThinkTime, Turn
from loadgen.dialogues.slot_checks import SlotChecks
from loadgen.dialogues.text import TemplateError, template_slots
from loadgen.dialogues.yaml_nodes import line_of, suggest

TURN_KEYS = ("user", "plant", "probe", "think_time", "max_tokens")
THINK_KEYS = ("min", "max")


class TurnChecks(SlotChecks):
    """The ``turns:`` list, and think times, reply lengths and templates wherever they appear."""

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

    def max_tokens(self, node: Node, path: str) -> int | None:
        what = f"a whole number from 1 to {MAX_TOKENS_LIMIT}"
        value = self.number(node, path, integer=True, low=1, high=MAX_TOKENS_LIMIT, what=what)
        return None if value is None else int(value)

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
        plant = self.name_list(entries["plant"][1], f"{base}.plant") if "plant" in entries else []
        probe = self.name_list(entries["probe"][1], f"{base}.probe") if "probe" in entries else []
        uses = None if text is None else used
        self._check_plants(index, f"{base}.plant", plant, slots, uses)
        self._check_probes(index, f"{base}.probe", probe, slots, uses, planted_at, plant_later)
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
        max_tokens = (
            self.max_tokens(entries["max_tokens"][1], f"{base}.max_tokens") if "max_tokens" in entries else None
        )
        if len(self.problems) != before or text is None:
            return None
        return Turn(
            index=index,
            user=text,
            plant=tuple(s for s, _ in plant),
            probe=tuple(s for s, _ in probe),
            think_time=think,
            max_tokens=max_tokens,
            line=line_of(node),
        )

    def _check_plants(
        self,
        index: int,
        path: str,
        plant: list[tuple[str, Node]],
        slots: dict[str, SlotSpec] | None,
        used: tuple[str, ...] | None,
    ) -> None:
        """A turn plants known slots its own text uses (``used`` None: its text is broken, already reported)."""
        for slot, item in plant:
            if slots is not None and slot not in slots:
                self.problem(item, path, f"unknown slot `{slot}`; {suggest(slot, slots)}expected a slot under `slots:`")
            elif used is not None and slot not in used:
                self.problem(
                    item,
                    path,
                    f"`{slot}` is not used in turn {index}'s text; a turn plants only slots its `user:` text "
                    f"contains as {{{slot}}}",
                )

    def _check_probes(
        self,
        index: int,
        path: str,
        probe: list[tuple[str, Node]],
        slots: dict[str, SlotSpec] | None,
        used: tuple[str, ...] | None,
        planted_at: dict[str, int],
        plant_later: dict[str, int],
    ) -> None:
        """A turn probes known slots planted by an earlier turn, which its own text does not give away."""
        for slot, item in probe:
            if slots is not None and slot not in slots:
                self.problem(item, path, f"unknown slot `{slot}`; {suggest(slot, slots)}expected a slot under `slots:`")
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
            elif used is not None and slot in used:
                self.problem(
                    item,
                    path,
                    f"turn {index} probes `{slot}` but its own text contains {{{slot}}}, so any echo would pass; "
                    "expected a question that does not give the answer",
                )
