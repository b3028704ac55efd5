"""One JSONL line -> a system prompt and turns, or a :class:`LineProblem` saying what is wrong with it.

Forms (detected per line, so one file may mix them):

* OpenAI: ``{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}``; ``content`` may
  also be a list of text parts, ``[{"type": "text", "text": "..."}, ...]``, joined with newlines.
* ShareGPT: ``{"conversations": [{"from": "human"|"gpt"|"system", "value": "..."}, ...]}``.

Either list may use either item shape (``role``/``content`` or ``from``/``value``): converted ShareGPT files
often keep the ``conversations`` key with OpenAI items. Roles are matched case-insensitively through
:data:`ROLE_ALIASES`: the ShareGPT names (``human``, ``gpt``) and those found in ShareGPT exports of other chat
services (``chatgpt``, ``bing``, ``bard``), plus OpenAI's ``developer`` for a system message. Other keys of the
line or of a message (``id``, ``name``, ``model``...) are ignored.

Normalisation, so each turn is one user message and the recorded reply to it:

* system messages before the first user message are the system prompt (several are joined with a blank line);
  one after it is a problem (a replay cannot move it);
* consecutive user messages are joined into one turn with a blank line, and so are consecutive assistant
  messages into one recorded reply;
* assistant messages before the first user message (a greeting) are dropped, as FastChat's ShareGPT cleaning
  does;
* a user message must have text; an assistant message may be empty.

Anything else (not a JSON object, no message list, a role such as ``tool``, a non-text content part) is a
:class:`LineProblem` whose message names the field, e.g. ``messages[3].role 'tool' is not a chat role ...``.
"""

from __future__ import annotations

from typing import Any

import orjson

from loadgen.datasets.model import DatasetTurn

#: Dataset role name (lower-cased) -> the chat role it stands for.
ROLE_ALIASES: dict[str, str] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
}
_FORMS = ("messages", "conversations")
_JOIN = "\n\n"


class LineProblem(ValueError):
    """What is wrong with one line, without its location (the reader adds ``FILE:LINE``)."""


def parse_line(raw: bytes) -> tuple[str | None, tuple[DatasetTurn, ...]]:
    """The system prompt (or ``None``) and the turns of one non-blank JSONL line."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise LineProblem(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise LineProblem(f"expected a JSON object with `messages` or `conversations`, got {_kind(obj)}")
    key = next((k for k in _FORMS if k in obj), None)
    if key is None:
        raise LineProblem("no `messages` (OpenAI form) or `conversations` (ShareGPT form) list")
    items = obj[key]
    if not isinstance(items, list):
        raise LineProblem(f"`{key}` must be a list of messages, got {_kind(items)}")
    return _normalise([_message(key, i, item) for i, item in enumerate(items)], key)


def _message(key: str, i: int, item: Any) -> tuple[str, str, int]:
    """(chat role, text, position) of one message item."""
    where = f"{key}[{i}]"
    if not isinstance(item, dict):
        raise LineProblem(f"{where} must be an object, got {_kind(item)}")
    role_key, text_key = ("role", "content") if "role" in item else ("from", "value")
    raw_role = item.get(role_key)
    if not isinstance(raw_role, str):
        raise LineProblem(f"{where} has no `role` (OpenAI) or `from` (ShareGPT) string")
    role = ROLE_ALIASES.get(raw_role.lower())
    if role is None:
        known = ", ".join(ROLE_ALIASES)
        raise LineProblem(f"{where}.{role_key} {raw_role!r} is not a chat role this replay can send (one of {known})")
    return role, _text(f"{where}.{text_key}", item.get(text_key)), i


def _text(where: str, content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else _kind(part)
                raise LineProblem(f"{where}[{j}] is not a text part ({{'type': 'text', 'text': ...}}): {kind!r}")
        return "\n".join(parts)
    raise LineProblem(f"{where} must be a string or a list of text parts, got {_kind(content)}")


def _normalise(messages: list[tuple[str, str, int]], key: str) -> tuple[str | None, tuple[DatasetTurn, ...]]:
    system: list[str] = []
    turns: list[tuple[list[str], list[str]]] = []  # (user parts, reply parts)
    for role, text, i in messages:
        if role == "system":
            if turns:
                raise LineProblem(f"{key}[{i}] is a system message after the first user message")
            system.append(text)
        elif role == "user":
            if not text.strip():
                raise LineProblem(f"{key}[{i}] is a user message without text")
            if not turns or turns[-1][1]:
                turns.append(([], []))
            turns[-1][0].append(text)
        elif turns:  # assistant; one before the first user message is dropped
            turns[-1][1].append(text)
    return (
        _JOIN.join(system) if system else None,
        tuple(DatasetTurn(_JOIN.join(user), _JOIN.join(reply) if reply else None) for user, reply in turns),
    )


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
