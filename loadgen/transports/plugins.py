"""Where a transport comes from: built in, a plug-in's entry point, or ``package.module:Class``.

A name given to ``--transport`` is resolved in this order:

1. a built-in (:data:`loadgen.transports.TRANSPORTS`: ``rest``, ``grpc``, ``amqp``);
2. an entry point of the group :data:`ENTRY_POINT_GROUP` (``chat_loadgen.transports``) whose name is the
   transport's name, declared by an installed package, e.g. in its ``pyproject.toml``::

       [project.entry-points."chat_loadgen.transports"]
       websocket = "chat_loadgen_websocket:WebSocketTransport"

   An entry point that takes a built-in's name is ignored (``loadgen transports`` says so); of two installed
   packages declaring one name, the first found wins;
3. ``package.module:Class`` (anything with a ``:``): that class, imported from the Python path, no entry point
   needed. The spec itself is the transport's name in reports.

The class must subclass :class:`~loadgen.transports.base.Transport`, be concrete, and not ask for a newer transport
API than this build's :data:`~loadgen.transports.base.API_VERSION` (its ``api_version``). Anything else is a
:class:`~loadgen.errors.ConfigError` of one line. Entry points are read once per process and classes imported once
(a Locust user's start never scans the installed packages again).
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import inspect
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from loadgen import __version__
from loadgen.errors import ConfigError
from loadgen.registry import lookup
from loadgen.transports.base import API_VERSION, Transport
from loadgen.wire.text import short

ENTRY_POINT_GROUP = "chat_loadgen.transports"
BUILT_IN = "chat-loadgen (built-in)"

#: transport name -> "module:Class", the ones this package ships
TRANSPORTS: dict[str, str] = {
    "rest": "loadgen.transports.rest:RestTransport",
    "grpc": "loadgen.transports.grpc:GrpcTransport",
    "amqp": "loadgen.transports.amqp:AmqpTransport",
}

_SPEC = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_classes: dict[str, type[Transport]] = {}


def is_spec(name: str) -> bool:
    """Whether ``name`` names a class (``package.module:Class``) rather than a registered transport."""
    return ":" in name


@cache
def entry_points() -> dict[str, metadata.EntryPoint]:
    """The installed plug-ins by name (first one found per name), built-in names left out; read once."""
    found: dict[str, metadata.EntryPoint] = {}
    for point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if point.name not in TRANSPORTS and point.name not in found:
            found[point.name] = point
    return found


def shadowed_entry_points() -> list[metadata.EntryPoint]:
    """Entry points that are never used: a built-in's name, or a name another package declared first."""
    used = {_key(point) for point in entry_points().values()}
    return [p for p in metadata.entry_points(group=ENTRY_POINT_GROUP) if _key(p) not in used]


def _key(point: metadata.EntryPoint) -> tuple[str, str, str]:
    return point.name, point.value, _dist_name(point)


def registered_names() -> list[str]:
    """Every name ``--transport`` takes, sorted: the built-ins and the installed plug-ins."""
    return sorted({*TRANSPORTS, *entry_points()})


def check_name(name: str, what: str = "--transport") -> str:
    """``name`` when it is registered or a well-formed ``package.module:Class`` (not imported here), else
    :class:`ConfigError` naming ``what`` and the choices."""
    if is_spec(name):
        if not _SPEC.match(name):
            raise ConfigError(f"{what} {name!r}: a transport class is named package.module:Class")
        return name
    if name not in TRANSPORTS and name not in entry_points():
        raise ConfigError(
            f"{what} {name!r}: unknown transport; installed: {', '.join(registered_names())} "
            "(`loadgen transports` lists them), or give package.module:Class"
        )
    return name


def load(name: str) -> type[Transport]:
    """The transport class ``name`` stands for (imported on first use, then kept); :class:`ConfigError` if none."""
    cls = _classes.get(name)
    if cls is None:
        cls = _classes[name] = _load(name)
    return cls


def _load(name: str) -> type[Transport]:
    if name in TRANSPORTS:
        builtin: type[Transport] = lookup(TRANSPORTS, name, "transport")
        return builtin
    check_name(name)
    if is_spec(name):
        module_name, _, attribute = name.partition(":")
        return checked(_import(module_name, attribute, name), name)
    point = entry_points()[name]
    try:
        obj = point.load()
    except Exception as exc:
        raise ConfigError(f"transport {name!r} ({point.value}) cannot be loaded: {_why(exc)}") from exc
    return checked(obj, f"{name} ({point.value})")


def _import(module_name: str, attribute: str, spec: str) -> Any:
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.split(".")[0] == exc.name.split(".")[0]:
            raise ConfigError(
                f"--transport {spec}: no module named {exc.name!r} on this Python's path (is the package installed?)"
            ) from exc
        raise ConfigError(f"--transport {spec} cannot be imported: {_why(exc)}") from exc
    except Exception as exc:
        raise ConfigError(f"--transport {spec} cannot be imported: {_why(exc)}") from exc
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"--transport {spec}: {module_name} has no {attribute!r}")
        obj = getattr(obj, part)
    return obj


def checked(obj: Any, what: str) -> type[Transport]:
    """``obj`` when it is a usable transport class, else :class:`ConfigError` saying what is wrong with it."""
    if not (inspect.isclass(obj) and issubclass(obj, Transport)):
        raise ConfigError(f"transport {what} is not a subclass of loadgen.transports.base.Transport")
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
        raise ConfigError(f"transport {what} is abstract: it does not implement {missing}")
    wanted = getattr(obj, "api_version", API_VERSION)
    if not isinstance(wanted, int) or wanted > API_VERSION or wanted < 1:
        raise ConfigError(
            f"transport {what} was written for transport API version {wanted!r}; chat-loadgen {__version__} "
            f"speaks version {API_VERSION}: install a chat-loadgen that supports it"
        )
    schemes = getattr(obj, "schemes", ())
    if not isinstance(schemes, tuple) or not all(isinstance(s, str) for s in schemes):
        raise ConfigError(f"transport {what}: 'schemes' must be a tuple of URL schemes, e.g. ('ws', 'wss')")
    return obj


def _why(exc: BaseException) -> str:
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return f"it needs {exc.name!r}, which is not installed"
    return f"{type(exc).__name__}: {short(str(exc))}"


@dataclass(frozen=True)
class TransportInfo:
    """One row of ``loadgen transports``."""

    name: str
    module: str  # "module:Class"
    source: str  # the distribution that provides it
    version: str  # that distribution's version
    schemes: tuple[str, ...] = ()
    api_version: int | None = None
    error: str | None = None  # why it cannot be loaded


def describe() -> list[TransportInfo]:
    """Every registered transport, each loaded to read its schemes and API version (a broken one has ``error``),
    then every entry point that is never used (``error`` says why)."""
    rows: list[TransportInfo] = []
    points = entry_points()
    for name in registered_names():
        if name in TRANSPORTS:
            module, source, version = TRANSPORTS[name], BUILT_IN, __version__
        else:
            point = points[name]
            module, source, version = point.value, _dist_name(point), _dist_version(point)
        try:
            cls = load(name)
        except ConfigError as exc:
            rows.append(TransportInfo(name, module, source, version, error=str(exc)))
            continue
        api = getattr(cls, "api_version", API_VERSION)
        rows.append(TransportInfo(name, module, source, version, tuple(cls.schemes), api))
    for point in shadowed_entry_points():
        taken = "a built-in" if point.name in TRANSPORTS else "another package"
        reason = f"ignored: the name {point.name!r} is taken by {taken}"
        rows.append(TransportInfo(point.name, point.value, _dist_name(point), _dist_version(point), error=reason))
    return rows


def _dist_name(point: metadata.EntryPoint) -> str:
    dist = point.dist
    return dist.metadata["Name"] if dist is not None else "(unknown distribution)"


def _dist_version(point: metadata.EntryPoint) -> str:
    dist = point.dist
    return dist.version if dist is not None else "?"


def forget() -> None:
    """Read the entry points again and re-import on next use (tests that install or remove a plug-in)."""
    entry_points.cache_clear()
    _classes.clear()


__all__ = [
    "BUILT_IN",
    "ENTRY_POINT_GROUP",
    "TRANSPORTS",
    "TransportInfo",
    "check_name",
    "checked",
    "describe",
    "entry_points",
    "forget",
    "is_spec",
    "load",
    "registered_names",
    "shadowed_entry_points",
]
