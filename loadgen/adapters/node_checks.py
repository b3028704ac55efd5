"""The checks every part of an adapter file shares: required keys, templates, header maps and paths, each
problem at the line of the node it is about (the file's reader: :mod:`loadgen.adapters.loader`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote

import orjson
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from loadgen.adapters.paths import Path, PathError, parse_path
from loadgen.adapters.template import (
    TURN_NAMES,
    Template,
    TemplateError,
    list_template,
    literal,
    mapping_template,
    text_template,
)
from loadgen.dialogues.yaml_nodes import NodeReader

HEADER_RE: Final = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
Entries = dict[str, tuple[Node, Node]]
MERGE_TAG: Final = "tag:yaml.org,2002:merge"


@dataclass
class AdapterNodes(NodeReader):
    """Node checks of adapter files."""

    #: The key node of each mapping value read so far (by the value's id): where "is missing" problems point.
    _keys: dict[int, Node] = field(default_factory=dict)

    def mapping(self, node: Node, path: str, allowed: tuple[str, ...] | None, what: str) -> Entries:
        """As :meth:`NodeReader.mapping`, where a key given beside a merge (``<<: *anchor``) overrides the one the
        merge brought, as YAML says (the check of keys given twice is for a mapping's own keys)."""
        if isinstance(node, MappingNode) and any(key.tag == MERGE_TAG for key, _ in node.value):
            own = [(key, value) for key, value in node.value if key.tag != MERGE_TAG]
            try:
                self.loader.flatten_mapping(node)
            except yaml.MarkedYAMLError:
                pass  # reported below
            else:
                merged = node.value[: len(node.value) - len(own)]
                own_keys = {key.value for key, _ in own if isinstance(key, ScalarNode)}
                node.value = [(k, v) for k, v in merged if getattr(k, "value", None) not in own_keys] + own
        entries = super().mapping(node, path, allowed, what)
        self._keys.update({id(value): key for key, value in entries.values()})
        return entries

    def required(self, parent: Node, entries: Entries, key: str, what: str, path: str = "") -> Node | None:
        """The value of ``key``, or a problem at the line that names the parent saying it is missing."""
        if key not in entries:
            where = self._keys.get(id(parent), parent)
            self.problem(where, f"{path}.{key}" if path else key, f"is missing; expected {what}")
            return None
        return entries[key][1]

    def template(self, node: Node, path: str, allowed: tuple[str, ...], *, escape: bool = False) -> Template | None:
        """The template written at ``node`` (problems at the line of each bad string)."""
        if isinstance(node, MappingNode):
            items = [(key, self.template(value, f"{path}.{key}", allowed))
                     for key, (_, value) in self.mapping(node, path, None, "a mapping").items()]  # fmt: skip
            done = [(key, t) for key, t in items if t is not None]
            return mapping_template(done) if len(done) == len(items) else None
        if isinstance(node, SequenceNode):
            listed = [self.template(item, f"{path}[{i}]", allowed) for i, item in enumerate(node.value)]
            kept = [t for t in listed if t is not None]
            return list_template(kept) if len(kept) == len(listed) else None
        value = self.scalar(node)
        if not isinstance(value, str):
            try:
                orjson.dumps(value)
            except TypeError:
                self.problem(node, path, f"is {self.describe_node(node)}; quote it to send it as text")
                return None
            return literal(value)
        try:
            return text_template(value, allowed, escape=quote if escape else None)
        except TemplateError as exc:
            self.problem(node, path, str(exc))
            return None

    def headers(self, node: Node, path: str) -> tuple[tuple[str, Template], ...] | None:
        """A mapping of header (or metadata) names to text templates; names lower-cased."""
        out: list[tuple[str, Template]] = []
        ok = True
        for key, (key_node, value_node) in self.mapping(node, path, None, "a mapping of name -> value").items():
            template = self.template(value_node, f"{path}.{key}", TURN_NAMES)
            if not HEADER_RE.match(key):
                self.problem(key_node, f"{path}.{key}", f"{key!r} is not a header name")
                ok = False
            elif template is None:
                ok = False
            else:
                out.append((key.lower(), template))
        return tuple(out) if ok else None

    def parse(self, node: Node, path: str) -> Path | None:
        """A path written at ``node`` (a problem at its line if it is not one)."""
        value = self.text(node, path, what="a path such as choices[0].message.content")
        if value is None:
            return None
        try:
            return parse_path(value)
        except PathError as exc:
            self.problem(node, path, f"{exc}")
            return None


__all__ = ["HEADER_RE", "AdapterNodes", "Entries"]
