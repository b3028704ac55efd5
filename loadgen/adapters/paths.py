"""The path language of adapter files: where the text, the counts and the markers sit in a reply.

One small language for JSON values (REST, AMQP) and protobuf messages (gRPC)::

    choices[0].delta.content        $.message.content        $[*].text        error["error-code"]

A path is a series of steps from the reply's root:

- ``name`` or ``.name``: the field of that name (a bare name may open the path; names are letters, digits, ``_``
  and ``-``); ``["any key"]`` for a key with other characters;
- ``[N]``: the N-th item of a list, from 0 (``[-1]``: the last);
- ``[*]``: every item of a list: the path then finds a list of values (texts are joined, see the adapter's
  ``join``);
- a leading ``$`` names the root and may be left out; ``$`` alone is the root itself.

:func:`parse_path` raises :class:`PathError` (its text says what is wrong, for a ``FILE:LINE`` problem).
:meth:`Path.find` walks a JSON value and gives :data:`MISSING` where a step finds nothing (a missing key, an index
past the end, a value of the wrong kind); :meth:`Path.find_in_message` walks a protobuf message the same way
(field names were checked against the message type at start-up, :func:`proto_field_of`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor

#: What a step found when there was nothing there (``None`` is JSON's null, a value).
MISSING: Final[Any] = object()

#: One step: a key (str), an index (int), or every item (None).
Step = str | int | None

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_INDEX = re.compile(r"\[(?:(-?\d+)|(\*)|\"((?:[^\"\\]|\\.)*)\"|'([^']*)')\]")


class PathError(ValueError):
    """A path that does not follow the language; the text says where and what is expected."""


@dataclass(frozen=True, slots=True)
class Path:
    """A parsed path: :attr:`source` as written, :attr:`steps` from the root."""

    source: str
    steps: tuple[Step, ...]

    @property
    def many(self) -> bool:
        """True when the path has a ``[*]`` step (it finds a list of values)."""
        return any(step is None for step in self.steps)

    def head(self) -> Path:
        """The path up to its first ``[*]`` (itself when it has none): where the list it walks should be."""
        if not self.many:
            return self
        return Path(self.source, self.steps[: self.steps.index(None)])

    def find(self, value: Any) -> Any:
        """The value at this path in a JSON value (a list of values for a ``[*]`` path), or :data:`MISSING`."""
        if self.many:
            return _find_all(value, self.steps)
        for step in self.steps:
            if type(step) is str:
                if type(value) is not dict:
                    return MISSING
                value = value.get(step, MISSING)
                if value is MISSING:
                    return MISSING
            else:
                assert isinstance(step, int)
                if type(value) is not list or not -len(value) <= step < len(value):
                    return MISSING
                value = value[step]
        return value

    def find_in_message(self, message: Any) -> Any:
        """The value at this path in a protobuf message (a list for a ``[*]`` path), or :data:`MISSING` for an
        index past the end of a repeated field. An unset field gives its default, as protobuf reads it."""
        values = [message]
        for step in self.steps:
            found: list[Any] = []
            for value in values:
                if isinstance(step, str):
                    found.append(getattr(value, step))
                elif step is None:
                    found.extend(value)
                elif -len(value) <= step < len(value):
                    found.append(value[step])
            values = found
        if self.many:
            return values
        return values[0] if values else MISSING

    def __str__(self) -> str:
        return self.source


def _find_all(value: Any, steps: tuple[Step, ...]) -> list[Any]:
    values = [value]
    for step in steps:
        found: list[Any] = []
        for item in values:
            if isinstance(step, str):
                if type(item) is dict and step in item:
                    found.append(item[step])
            elif step is None:
                if type(item) is list:
                    found.extend(item)
            elif type(item) is list and -len(item) <= step < len(item):
                found.append(item[step])
        values = found
    return values


def parse_path(source: str) -> Path:
    """The :class:`Path` written as ``source`` (:class:`PathError` if it is not one)."""
    text = source.strip()
    if not text:
        raise PathError("is empty; expected a path such as `choices[0].message.content` or `$[*].text`")
    at = 1 if text.startswith("$") else 0
    steps: list[Step] = []
    while at < len(text):
        char = text[at]
        if char == "[":
            match = _INDEX.match(text, at)
            if match is None:
                raise PathError(f'`{text}`: bad step at `{text[at:]}`; expected [N], [*] or ["key"]')
            number, star, double, single = match.groups()
            if star:
                steps.append(None)
            elif number is not None:
                steps.append(int(number))
            else:
                steps.append(json.loads(f'"{double}"') if double is not None else single)
            at = match.end()
            continue
        if char == ".":
            at += 1
        elif at > 0 and not (at == 1 and text[0] == "$"):
            raise PathError(f'`{text}`: unexpected `{char}` at `{text[at:]}`; expected `.name`, [N], [*] or ["key"]')
        match = _NAME.match(text, at)
        if match is None:
            raise PathError(f"`{text}`: expected a field name at `{text[at:] or 'the end'}`")
        steps.append(match.group())
        at = match.end()
    return Path(source=text, steps=tuple(steps))


def proto_field_of(path: Path, message: Descriptor) -> FieldDescriptor:
    """The field a path ends on, walking the message type (:class:`PathError` naming the step that is not a field,
    or an index on a field that is not repeated). Keys must be field names; ``$`` alone is refused."""
    descriptor: Descriptor | None = message
    field: FieldDescriptor | None = None
    indexed = True  # whether the current value is one item (not a whole repeated field)
    for step in path.steps:
        if isinstance(step, str):
            if not indexed:
                raise PathError(f"`{path}`: `{step}` follows a repeated field; pick items with [N] or [*] first")
            if descriptor is None:
                raise PathError(f"`{path}`: `{step}` follows a value that has no fields")
            field = descriptor.fields_by_name.get(step)
            if field is None:
                names = ", ".join(sorted(descriptor.fields_by_name)) or "none"
                raise PathError(f"`{path}`: {descriptor.full_name} has no field `{step}` (its fields: {names})")
            indexed = not _is_repeated(field)
            descriptor = field.message_type if field.type == FieldDescriptor.TYPE_MESSAGE else None
        else:
            if field is None or indexed:
                raise PathError(f"`{path}`: [{'*' if step is None else step}] indexes a value that is not repeated")
            indexed = True
    if field is None:
        raise PathError(f"`{path}`: name a field of {message.full_name}")
    if not indexed:
        raise PathError(f"`{path}`: {field.name} is repeated; pick items with [N] or [*]")
    return field


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


__all__ = ["MISSING", "Path", "PathError", "Step", "parse_path", "proto_field_of"]
