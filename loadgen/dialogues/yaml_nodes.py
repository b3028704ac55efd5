"""Reading a YAML file as PyYAML's composed node tree, so that every problem can name its line.

:func:`read_root` turns a file into its root node (or a :class:`~loadgen.dialogues.model.Problem`: missing,
unreadable, not UTF-8, bad YAML syntax, empty). :class:`NodeReader` walks nodes and collects problems, each
naming the file, the line and the field path (``turns[3].probe``: lists are indexed from 0 as YAML readers
do), with what is wrong and what is expected; a check never stops at the first problem.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from loadgen.dialogues.model import Problem

#: Stands for "no value" where None is a value YAML can give.
MISSING: Any = object()


def line_of(node: Node) -> int:
    return int(node.start_mark.line) + 1


def describe(value: Any) -> str:
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


def suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`? " if close else ""


@dataclass
class NodeReader:
    """Walks one file's node tree, collecting problems."""

    path: str
    loader: yaml.SafeLoader
    locale: str
    problems: list[Problem] = field(default_factory=list)

    def problem(self, where: Node | int | None, path: str, message: str) -> None:
        line = line_of(where) if isinstance(where, Node) else where
        self.problems.append(Problem(self.path, line, path, message))

    def describe_node(self, node: Node) -> str:
        if isinstance(node, MappingNode):
            return "a mapping"
        if isinstance(node, SequenceNode):
            return "a list"
        return describe(self.scalar(node))

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
                first = line_of(out[key][0])
                self.problem(key_node, sub, f"appears twice (first at line {first}); give each key once")
                continue
            if allowed is not None and key not in allowed:
                self.problem(
                    key_node, sub, f"unknown key `{key}`; {suggest(key, allowed)}expected one of {', '.join(allowed)}"
                )
                continue
            out[key] = (key_node, value_node)
        return out

    def text(self, node: Node, path: str, *, what: str = "text") -> str | None:
        value = self.scalar(node) if isinstance(node, ScalarNode) else MISSING
        if not isinstance(value, str):
            hint = " (quote it if YAML reads it as something else)" if isinstance(node, ScalarNode) else ""
            self.problem(node, path, f"is {self.describe_node(node)}; expected {what}{hint}")
            return None
        return value

    def number(self, node: Node, path: str, *, integer: bool, low: float, high: float | None, what: str) -> Any:
        value = self.scalar(node) if isinstance(node, ScalarNode) else MISSING
        ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
        if value is MISSING or isinstance(value, bool) or not ok_type:
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


def read_root(path: str, problems: list[Problem]) -> tuple[yaml.SafeLoader, Node] | None:
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
