"""Checks of a dialogue's ``slots:`` block, and of the values its probed slots can take.

A slot is a Faker provider name, ``{faker: NAME, args: {...}}`` or ``{choice: [...]}``; a provider must exist
for the locale and give text. A probed slot's values must be distinctive (see
:func:`loadgen.dialogues.text.probe_value_problem`): every choice, and at least
:data:`PROBE_SAMPLES_NEEDED` of :data:`PROBE_SAMPLES` sample values of a provider, or a probe could pass by
accident.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from loadgen.dialogues.fakers import check_slot_spec, validation_faker
from loadgen.dialogues.model import Dialogue, SlotSpec
from loadgen.dialogues.text import clean_value, dialogue_wording, probe_value_problem
from loadgen.dialogues.yaml_nodes import MISSING, NodeReader, line_of, suggest

SLOT_KEYS = ("faker", "args", "choice")
SLOT_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Share of sampled values of a probed Faker slot that must be distinctive (see probe_value_problem).
PROBE_SAMPLES = 20
PROBE_SAMPLES_NEEDED = 10


class SlotChecks(NodeReader):
    """The ``slots:`` block and the slots templates and turns name."""

    def unknown_slots(self, node: Node, path: str, used: Iterable[str], slots: dict[str, SlotSpec] | None) -> None:
        if slots is None:
            return  # the slots block itself is broken and already reported
        for slot in used:
            if slot not in slots:
                defined = ", ".join(slots) or "none"
                self.problem(
                    node,
                    path,
                    f"uses unknown slot `{{{slot}}}`; {suggest(slot, slots)}define it under `slots:` "
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
        line = line_of(node)
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
            value = self.scalar(item) if isinstance(item, ScalarNode) else MISSING
            if value is MISSING or value is None or isinstance(value, bool | list | dict):
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
