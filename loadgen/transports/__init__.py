"""Client transports, one small module each, behind :class:`loadgen.transports.base.Transport`.

Each transport is a thin adapter over the wire contract of its protocol (:mod:`loadgen.wire`: message formats,
the bearer rule, the status table that says which failure kind an error answer is), keeping only its library's
part: connections, its exceptions mapped to :mod:`loadgen.errors`, and the timing of each turn.
:mod:`loadgen.transports.replies` puts a :class:`~loadgen.types.Reply` together the same way for all three.

Transports are imported lazily by name so that, for example, grpcio is not initialised for a REST run.
"""

from __future__ import annotations

from loadgen.errors import ConfigError
from loadgen.registry import lookup
from loadgen.transports.base import Transport, TransportConfig
from loadgen.wire.text import redact_url

#: transport name -> "module:Class"
TRANSPORTS: dict[str, str] = {
    "rest": "loadgen.transports.rest:RestTransport",
    "grpc": "loadgen.transports.grpc:GrpcTransport",
    "amqp": "loadgen.transports.amqp:AmqpTransport",
}

#: Declarative adapters (:mod:`loadgen.adapters`), one transport per protocol: selected by ``--adapter FILE|NAME``
#: (which carries the adapter in the transport's config), never by ``--transport``.
ADAPTER_TRANSPORTS: dict[str, str] = {
    "adapter-rest": "loadgen.transports.adapter_rest:AdapterRestTransport",
    "adapter-grpc": "loadgen.transports.adapter_grpc:AdapterGrpcTransport",
    "adapter-amqp": "loadgen.transports.adapter_amqp:AdapterAmqpTransport",
}

#: The URL scheme of the default target of each transport (used to tell a transport from a --host).
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
    registry = ADAPTER_TRANSPORTS if name in ADAPTER_TRANSPORTS else TRANSPORTS
    cls: type[Transport] = lookup(registry, name, "transport")
    return cls


def make_transport(name: str, config: TransportConfig) -> Transport:
    scheme = config.target.split("://", 1)[0].lower() if "://" in config.target else ""
    allowed = DEFAULT_SCHEMES.get(name, ())
    if scheme not in allowed:
        raise ConfigError(
            f"target {redact_url(config.target)!r} does not suit transport {name!r}: "
            f"expected a URL starting with {' or '.join(s + '://' for s in allowed)}"
        )
    return transport_class(name)(config)


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
    "PREFLIGHT_TIMEOUT_S",
    "TRANSPORTS",
    "Transport",
    "TransportConfig",
    "make_transport",
    "preflight",
    "redact_url",
    "transport_class",
]
