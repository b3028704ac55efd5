"""The values an adapter's templates are filled with for one turn (see :mod:`loadgen.adapters.template`).

:func:`turn_values` reads them off a :class:`~loadgen.types.ChatRequest`: the new user message is the request's
last message; ``{history}`` is every message written as the adapter's history item (roles renamed, a role mapped
to null left out), ``{previous}`` the same without the new message; ``{system}`` the first system message's
content, or null. Only what the adapter's templates use is computed. :func:`secret_values` holds the values of
``{api_key}`` and ``{env:NAME}``, read once when a transport is made.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from typing import Any

from loadgen.adapters.spec import Adapter, HistoryShape
from loadgen.adapters.template import ENV_PREFIX, SECRET_NAMES, Template, env_names
from loadgen.errors import ConfigError
from loadgen.transports.base import API_KEY_ENV
from loadgen.types import ChatMessage, ChatRequest


def shape_messages(shape: HistoryShape, messages: tuple[ChatMessage, ...]) -> list[Any]:
    """The messages as the adapter writes them (``{history}``)."""
    out: list[Any] = []
    for message in messages:
        role = shape.roles.get(message.role, message.role)
        if role is None:
            continue
        out.append(shape.item.render({"role": role, "content": message.content}))
    return out


def turn_values(
    request: ChatRequest,
    shape: HistoryShape,
    names: Collection[str],
    *,
    model: str | None,
    secrets: Mapping[str, str],
) -> dict[str, Any]:
    """Every value in ``names`` for ``request`` (``model``: the run's model option, else the request's)."""
    messages = request.messages
    values: dict[str, Any] = dict(secrets)
    if "message" in names:
        values["message"] = messages[-1].content if messages else ""
    if "history" in names:
        values["history"] = shape_messages(shape, messages)
    if "previous" in names:
        values["previous"] = shape_messages(shape, messages[:-1])
    if "system" in names:
        values["system"] = next((m.content for m in messages if m.role == "system"), None)
    values["session_id"] = request.session_id
    values["max_tokens"] = request.max_tokens
    values["model"] = model or request.model
    values["stream"] = request.stream
    return values


def _is_secret(name: str) -> bool:
    return name in SECRET_NAMES or name.startswith(ENV_PREFIX)


def secret_values(adapter: Adapter, api_key: str | None) -> dict[str, str]:
    """The values of the secrets the adapter's templates use that are set (``api_key``: LOADGEN_API_KEY's).

    A header (or metadata entry) whose secret is not set is left out (:func:`usable_headers`), as the built-in
    transports send no ``authorization`` without a key; a secret the path or body needs is a :class:`ConfigError`.
    """
    names = adapter.names()
    values: dict[str, str] = {}
    if SECRET_NAMES & names and api_key:
        values["api_key"] = api_key
    for env in env_names(names):
        value = os.environ.get(env, "")
        if value:
            values[ENV_PREFIX + env] = value
    for name in sorted(adapter.names(headers=False)):
        if _is_secret(name) and name not in values:
            where = API_KEY_ENV if name == "api_key" else f"the environment variable {name[len(ENV_PREFIX) :]}"
            raise ConfigError(f"adapter {adapter.name!r} sends {{{name}}} in its request: set {where}")
    return values


def usable_headers(
    headers: tuple[tuple[str, Template], ...], secrets: Mapping[str, str]
) -> tuple[tuple[str, Template], ...]:
    """The headers whose secrets are all set."""
    return tuple((k, t) for k, t in headers if all(n in secrets for n in t.names if _is_secret(n)))


class TurnWriter:
    """What a transport needs to write the turns of an adapter: each turn's template values and headers.

    Made with the transport (:class:`ConfigError` for a secret its request needs that is not set); ``model`` is the
    run's model option (None: each request's own)."""

    __slots__ = ("adapter", "headers", "model", "names", "secrets")

    def __init__(self, adapter: Adapter, api_key: str | None, model: str | None) -> None:
        self.adapter = adapter
        self.names = adapter.names()
        self.secrets = secret_values(adapter, api_key)
        self.headers = usable_headers(adapter.headers(), self.secrets)
        self.model = model

    def values(self, request: ChatRequest) -> dict[str, Any]:
        return turn_values(request, self.adapter.history, self.names, model=self.model, secrets=self.secrets)

    def header_values(self, values: Mapping[str, Any]) -> dict[str, str]:
        return {name: template.render_text(values) for name, template in self.headers}


__all__ = ["TurnWriter", "secret_values", "shape_messages", "turn_values", "usable_headers"]
