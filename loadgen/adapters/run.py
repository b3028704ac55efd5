"""An adapter in a run: the ``--adapter`` option, the transport it selects, and the config that carries it.

``--adapter FILE|NAME`` is loaded when the options are read (:func:`adapter_option`: a bad file stops the run before
any user starts with its first problem on one line, ``FILE:LINE: field `...`: ...``). :func:`resolve_transport`
then picks the adapter's transport (``adapter-rest``, ``adapter-grpc``, ``adapter-amqp``) and checks what the run
must agree with: a ``--transport`` other than the default or the adapter's own, the history mode the adapter
needs, a target (``--host``: the embedded reference server speaks its own protocols only), the secrets its
templates send. :func:`with_adapter` puts the adapter into the :class:`~loadgen.transports.base.TransportConfig`
each user's transport is made from; :func:`adapter_of` takes it out again in the transport.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from loadgen.adapters.loader import AdapterError, load_adapter
from loadgen.adapters.request import secret_values
from loadgen.adapters.spec import PROTOCOL_TRANSPORTS, Adapter, Protocol
from loadgen.errors import ConfigError
from loadgen.transports.base import TransportConfig
from loadgen.types import HistoryMode

#: The ``--transport`` a run has when it does not name one.
DEFAULT_TRANSPORT = "rest"


@dataclass(frozen=True)
class AdapterConfig(TransportConfig):
    """A transport config that also carries the run's adapter."""

    adapter: Adapter | None = field(default=None, repr=False)


def adapter_option(value: str | None, flag: str) -> Adapter | None:
    """The validator of ``--adapter``: the adapter, or :class:`ConfigError` with its first problem on one line."""
    if not value:
        return None
    try:
        return load_adapter(value)
    except AdapterError as exc:
        raise ConfigError(f"{flag}: {exc.first_line()}") from None


def resolve_transport(adapter: Adapter | None, transport: str, history: HistoryMode, parsed: Any) -> str:
    """The transport of the run (``parsed``: Locust's options, for ``--host`` and whether this is a worker)."""
    adapter_transports = set(PROTOCOL_TRANSPORTS.values())
    if adapter is None:
        if transport in adapter_transports:
            raise ConfigError(f"--transport {transport} needs --adapter FILE (an adapter file or a shipped profile)")
        return transport
    own = adapter.transport
    if transport not in (DEFAULT_TRANSPORT, own, adapter.protocol.value):
        raise ConfigError(f"--adapter {adapter.name} speaks {adapter.protocol}: leave --transport out (it was "
                          f"{transport!r})")  # fmt: skip
    needed = adapter.history.mode
    if needed is not None and needed is not history:
        raise ConfigError(f"adapter {adapter.name!r} needs --history {needed} (its file says history.mode: {needed})")
    if not getattr(parsed, "host", None) and not getattr(parsed, "worker", False):
        raise ConfigError(f"--adapter {adapter.name} needs --host: the URL of the service it describes "
                          f"({_target_hint(adapter.protocol)})")  # fmt: skip
    secret_values(adapter, TransportConfig.api_key_from_env())
    return own


def _target_hint(protocol: Protocol) -> str:
    return {
        Protocol.REST: "http(s)://host:port",
        Protocol.GRPC: "grpc(s)://host:port",
        Protocol.AMQP: "amqp(s)://user:pass@host:port/vhost",
    }[protocol]


def with_adapter(config: TransportConfig, adapter: Adapter | None) -> TransportConfig:
    """``config`` carrying ``adapter`` (``config`` itself when there is none)."""
    if adapter is None:
        return config
    values = {f.name: getattr(config, f.name) for f in fields(config)}
    return AdapterConfig(**values, adapter=adapter)


def adapter_of(config: TransportConfig, protocol: Protocol) -> Adapter:
    """The adapter ``config`` carries for a transport of ``protocol`` (:class:`ConfigError` if none, or another's)."""
    adapter = getattr(config, "adapter", None)
    name = PROTOCOL_TRANSPORTS[protocol]
    if not isinstance(adapter, Adapter):
        raise ConfigError(f"the {name} transport needs --adapter FILE (an adapter file or a shipped profile)")
    if adapter.protocol is not protocol:
        raise ConfigError(f"adapter {adapter.name!r} speaks {adapter.protocol}, not {protocol}")
    return adapter


__all__ = ["DEFAULT_TRANSPORT", "AdapterConfig", "adapter_of", "adapter_option", "resolve_transport", "with_adapter"]
