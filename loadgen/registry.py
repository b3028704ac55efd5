"""Plug-in points named ``"module:Class"`` (transports, server fronts), imported only when chosen."""

from __future__ import annotations

import importlib
from typing import Any

from loadgen.errors import ConfigError


def lookup(registry: dict[str, str], name: str, what: str) -> Any:
    """Import and return the object registered under ``name``; a clear ConfigError for unknown names and
    for plug-ins that are not part of this build."""
    try:
        spec = registry[name]
    except KeyError:
        raise ConfigError(f"unknown {what} {name!r}: choose one of {', '.join(sorted(registry))}") from None
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("loadgen"):
            raise ConfigError(f"the {name} {what} is not part of this build ({module_name} is missing)") from exc
        raise
    return getattr(module, attribute)
