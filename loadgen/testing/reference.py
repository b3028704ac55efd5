"""The reference server as the contract kit's service: fixed timing, one front, in a thread of this process.

``with reference_target("rest") as target: check(target)`` starts ``loadgen serve``'s service with the ``sim``
engine in fixed mode (first token ``ttft_ms`` after the front received the request, then one every ``itl_ms``) and
the front the transport speaks to (``rest``, ``grpc``, ``amqp``: the local RabbitMQ, a queue of its own,
``websocket``), and yields a :class:`~loadgen.testing.target.ContractTarget` that knows that timing and reads the
server's counters.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from loadgen.errors import ConfigError
from loadgen.server.app import run_in_thread
from loadgen.server.config import LOCAL_AMQP_URL, ServerConfig, SimEngineConfig
from loadgen.server.launcher import SERVED_TRANSPORTS
from loadgen.testing.target import ContractTarget
from loadgen.transports import transport_class
from loadgen.transports.base import Transport

#: The reference server's fixed timing for the kit: long enough to time out before the first token and mid-stream.
TTFT_MS = 50.0
ITL_MS = 10.0


def front_for(transport: str | type[Transport]) -> str:
    """The reference server's front a transport speaks to: its registered name, else its class's ``name``."""
    if isinstance(transport, str) and transport in SERVED_TRANSPORTS:
        return transport
    cls = transport_class(transport) if isinstance(transport, str) else transport
    name = getattr(cls, "name", "")
    if name not in SERVED_TRANSPORTS:
        raise ConfigError(
            f"the reference server has no front for transport {name or transport!r} (it serves "
            f"{', '.join(SERVED_TRANSPORTS)}): give the URL of a service that speaks it"
        )
    return str(name)


def server_config(front: str, *, ttft_ms: float, itl_ms: float, amqp_url: str) -> ServerConfig:
    """A reference server with ``front`` only, on a free loopback port, with fixed timing."""
    return ServerConfig(
        rest_port=0 if front == "rest" else None,
        grpc_port=0 if front == "grpc" else None,
        amqp_url=amqp_url if front == "amqp" else None,
        amqp_queue=f"loadgen.contract.{secrets.token_hex(4)}",
        ws_port=0 if front == "websocket" else None,
        sim=SimEngineConfig(fixed=True, fixed_ttft_ms=ttft_ms, fixed_itl_ms=itl_ms),
    )


@contextmanager
def reference_target(
    transport: str | type[Transport],
    *,
    front: str | None = None,
    ttft_ms: float = TTFT_MS,
    itl_ms: float = ITL_MS,
    amqp_url: str = LOCAL_AMQP_URL,
    **target: Any,
) -> Iterator[ContractTarget]:
    """A :class:`ContractTarget` for ``transport`` against a reference server running meanwhile (``target``: more
    fields of the target, e.g. ``timeout_s``)."""
    config = server_config(front or front_for(transport), ttft_ms=ttft_ms, itl_ms=itl_ms, amqp_url=amqp_url)
    with run_in_thread(config) as server:
        url = next(iter(server.urls.values()))
        yield ContractTarget(transport, url, fixed_ttft_ms=ttft_ms, fixed_itl_ms=itl_ms, stats=server.stats, **target)


__all__ = ["ITL_MS", "TTFT_MS", "front_for", "reference_target", "server_config"]
