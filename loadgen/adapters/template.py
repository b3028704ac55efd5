"""Templates of adapter files: a request body, a header, a path, written once with placeholders.

A template is any YAML value. In its strings ``{name}`` is a placeholder filled for each turn, and ``{{`` and ``}}``
stand for literal braces. A string that is ONE placeholder and nothing else takes the value's own type:
``"{history}"`` becomes a list, ``"{max_tokens}"`` a number, ``"{stream}"`` true or false, and ``"{session_id}"``
null in client history mode. A key (or list item) whose value is null is left out, whether the null was written
or came from a placeholder. A placeholder among other text is written as text: a list of texts one per line, any
other list or mapping as JSON, null as nothing.

The placeholders of a turn (:data:`TURN_NAMES`)::

    message      the new user message
    history      every message of the request, the new one last, each written as the adapter's history item
    previous     the same without the new message
    system       the system prompt (null where the request has none: server history sends it on turn 1 only)
    session_id   the conversation's id in server history mode, null in client mode
    max_tokens   the reply length asked for
    model        the model name (--model)
    stream       true unless the run has --no-stream
    api_key      the key in LOADGEN_API_KEY: a secret, never shown in a reason or a report
    env:NAME     the environment variable NAME: a secret, as api_key

and in the adapter's history item, ``{role}`` and ``{content}`` (:data:`ITEM_NAMES`). A template is compiled
once (:func:`text_template` and friends raise :class:`TemplateError` naming what is wrong) into a small tree that
:meth:`Template.render` walks per turn.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

#: Placeholders of a turn.
TURN_NAMES: Final = (
    "message",
    "history",
    "previous",
    "system",
    "session_id",
    "max_tokens",
    "model",
    "stream",
    "api_key",
)
#: Placeholders of a history item.
ITEM_NAMES: Final = ("role", "content")
#: ``{env:NAME}``: an environment variable.
ENV_PREFIX: Final = "env:"
#: Placeholders whose values are secrets.
SECRET_NAMES: Final = frozenset({"api_key"})

_TOKENS = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Escape = Callable[[str], str]


class TemplateError(ValueError):
    """A template that cannot be compiled; the text says what is wrong and what is expected."""


class _Node(Protocol):
    def render(self, values: Mapping[str, Any]) -> Any: ...


@dataclass(frozen=True, slots=True)
class _Literal:
    value: Any

    def render(self, values: Mapping[str, Any]) -> Any:
        return self.value


@dataclass(frozen=True, slots=True)
class _Lone:
    name: str

    def render(self, values: Mapping[str, Any]) -> Any:
        return values[self.name]


@dataclass(frozen=True, slots=True)
class _Text:
    parts: tuple[tuple[bool, str], ...]  # (is a placeholder, literal text or name)
    escape: Escape | None

    def render(self, values: Mapping[str, Any]) -> str:
        out: list[str] = []
        for is_name, part in self.parts:
            if not is_name:
                out.append(part)
                continue
            text = as_text(values[part])
            out.append(self.escape(text) if self.escape is not None else text)
        return "".join(out)


@dataclass(frozen=True, slots=True)
class _Map:
    items: tuple[tuple[str, _Node], ...]

    def render(self, values: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, node in self.items:
            value = node.render(values)
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True, slots=True)
class _List:
    items: tuple[_Node, ...]

    def render(self, values: Mapping[str, Any]) -> list[Any]:
        out: list[Any] = []
        for node in self.items:
            value = node.render(values)
            if value is not None:
                out.append(value)
        return out


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled template and the placeholders it uses."""

    root: _Node
    names: frozenset[str]

    def render(self, values: Mapping[str, Any]) -> Any:
        """The value for one turn: ``values`` holds every name in :attr:`names`."""
        return self.root.render(values)

    def render_text(self, values: Mapping[str, Any]) -> str:
        """The rendered value as text (a header, a path)."""
        return as_text(self.render(values))


def as_text(value: Any) -> str:
    """How a value is written inside text (see the module doc)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "\n".join(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def literal(value: Any) -> Template:
    """A value with no placeholder (a number, a boolean, null)."""
    return Template(_Literal(value), frozenset())


def text_template(text: str, allowed: Collection[str], *, escape: Escape | None = None) -> Template:
    """A string with placeholders; ``allowed`` names those it may use (``env:NAME`` is allowed where ``api_key``
    is); ``escape`` is applied to every value written into it (e.g. URL quoting for a path)."""
    parts: list[tuple[bool, str]] = []
    names: set[str] = set()
    at = 0
    for match in _TOKENS.finditer(text):
        if match.start() > at:
            parts.append((False, text[at : match.start()]))
        token = match.group()
        at = match.end()
        if token in ("{{", "}}"):
            parts.append((False, token[0]))
            continue
        if match.group(1) is None:
            raise TemplateError(f"a lone `{token}` in {text!r}; write `{token}{token}` for a literal brace")
        name = match.group(1).strip()
        _check_name(name, allowed, text)
        parts.append((True, name))
        names.add(name)
    if at < len(text):
        parts.append((False, text[at:]))
    if len(parts) == 1 and parts[0][0] and escape is None:
        return Template(_Lone(parts[0][1]), frozenset(names))
    if not names:
        return Template(_Literal("".join(part for _, part in parts)), frozenset())
    return Template(_Text(tuple(parts), escape), frozenset(names))


def mapping_template(items: Sequence[tuple[str, Template]]) -> Template:
    """A mapping of templates (a key whose value renders null is left out)."""
    return Template(_Map(tuple((key, t.root) for key, t in items)), frozenset().union(*(t.names for _, t in items)))


def list_template(items: Sequence[Template]) -> Template:
    return Template(_List(tuple(t.root for t in items)), frozenset().union(*(t.names for t in items)))


def _check_name(name: str, allowed: Collection[str], text: str) -> None:
    if name.startswith(ENV_PREFIX):
        env = name[len(ENV_PREFIX) :]
        if "api_key" not in allowed:
            raise TemplateError(f"`{{{name}}}` cannot be used here; placeholders here: {_listing(allowed)}")
        if not _ENV_NAME.fullmatch(env):
            raise TemplateError(f"`{{{name}}}`: expected {{env:NAME}} with NAME an environment variable's name")
        return
    if name not in allowed:
        hint = " (write `{{` and `}}` for literal braces)" if not name or " " in name or '"' in name else ""
        raise TemplateError(f"unknown placeholder `{{{name}}}` in {text!r}; expected one of {_listing(allowed)}{hint}")


def _listing(allowed: Collection[str]) -> str:
    return ", ".join(f"{{{name}}}" for name in allowed) or "none"


def env_names(names: Collection[str]) -> list[str]:
    """The environment variables a set of placeholders reads (``env:NAME`` -> ``NAME``)."""
    return sorted(name[len(ENV_PREFIX) :] for name in names if name.startswith(ENV_PREFIX))


__all__ = [
    "ENV_PREFIX",
    "ITEM_NAMES",
    "SECRET_NAMES",
    "TURN_NAMES",
    "Template",
    "TemplateError",
    "as_text",
    "env_names",
    "list_template",
    "literal",
    "mapping_template",
    "text_template",
]
