"""Client transports, one small module each, behind :class:`loadgen.transports.base.Transport`.

Each transport is a thin adapter over the wire contract of its protocol (:mod:`loadgen.wire`: message formats,
the bearer rule, the status table that says which failure kind an error answer is), keeping only its library's
part: connections, its exceptions mapped to :mod:`loadgen.errors`, and the timing of each turn.
:mod:`loadgen.transports.replies` puts a :class:`~loadgen.types.Reply` together the same way for all three.

Transports are imported lazily by name so that, for example, grpcio is not initialised for a REST run. Besides the
built-in ones (:data:`TRANSPORTS`), a transport may come from an installed plug-in (entry point group
:data:`ENTRY_POINT_GROUP`) or be named ``package.module:Class`` (:mod:`loadgen.transports.plugins`). What a transport
must do is the public transport API, version :data:`API_VERSION`: :mod:`loadgen.transports.base` and
``docs/TRANSPORT_API.md``.
"""

from __future__ import annotations

from loadgen.errors import ConfigError
from loadgen.registry import lookup
from loadgen.transports.base import API_VERSION, Transport, TransportConfig
from loadgen.transports.plugins import ENTRY_POINT_GROUP, TRANSPORTS, check_name, load, registered_names
from loadgen.wire.text import redact_url

#: Declarative adapters (:mod:`loadgen.adapters`), one transport per protocol: selected by ``--adapter FILE|NAME``
#: (which carries the adapter in the transport's config), never by ``--transport``.
ADAPTER_TRANSPORTS: dict[str, str] = {
    "adapter-rest": "loadgen.transports.adapter_rest:AdapterRestTransport",
    "adapter-grpc": "loadgen.transports.adapter_grpc:AdapterGrpcTransport",
    "adapter-amqp": "loadgen.transports.adapter_amqp:AdapterAmqpTransport",
}

#: The URL scheme of the default target of each built-in transport (used to tell a transport from a --host); a
#: plug-in's are its class's ``schemes``.
DEFAULT_SCHEMES: dict[str, tuple[str, ...]] = {
    "rest": ("http", "https"),
    "grpc": ("grpc", "grpcs"),
    "amqp": ("amqp", "amqps"),
    # declarative adapters: the schemes of their protocols
    "adapter-rest": ("http", "https"),
    "adapter-grpc": ("grpc", "grpcs"),
    "adapter-amqp": ("amqp", "amqps"),
}


def transport_class(name: str) -> type[Transport]:
    """The class ``name`` stands for: a built-in, an installed plug-in, ``package.module:Class``
    (:mod:`loadgen.transports.plugins`), or an adapter transport (selected by ``--adapter``); :class:`ConfigError`
    with one line if there is none."""
    if name in ADAPTER_TRANSPORTS:
        cls: type[Transport] = lookup(ADAPTER_TRANSPORTS, name, "transport")
        return cls
    return load(name)


def make_transport(name: str, config: TransportConfig) -> Transport:
    cls = transport_class(name)
    allowed = DEFAULT_SCHEMES.get(name) or cls.schemes
    scheme = config.target.split("://", 1)[0].lower() if "://" in config.target else ""
    if allowed and scheme not in allowed:
        raise ConfigError(
            f"target {redact_url(config.target)!r} does not suit transport {name!r}: "
            f"expected a URL starting with {' or '.join(s + '://' for s in allowed)}"
        )
    return cls(config)


#: How long :func:`preflight` waits for a broker to accept a connection.
PREFLIGHT_TIMEOUT_S = 5.0


def preflight(name: str, config: TransportConfig, timeout_s: float = PREFLIGHT_TIMEOUT_S) -> None:
    """Before any user starts: a target that does not suit the transport, is malformed, or (AMQP) whose broker
    does not accept connections is a :class:`ConfigError` with one line that says what to do."""
    transport = make_transport(name, config)
    try:
        transport.preflight(timeout_s)
    finally:
        transport.close()


__all__ = [
    "ADAPTER_TRANSPORTS",
    "API_VERSION",
    "DEFAULT_SCHEMES",
    "ENTRY_POINT_GROUP",
    "PREFLIGHT_TIMEOUT_S",
    "TRANSPORTS",
    "Transport",
    "TransportConfig",
    "check_name",
    "make_transport",
    "preflight",
    "redact_url",
    "registered_names",
    "transport_class",
]
