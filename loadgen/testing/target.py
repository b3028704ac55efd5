"""What the contract kit runs against: a transport and a service it can reach, with what is known about the service.

:class:`ContractTarget` names the transport (a registered name, ``package.module:Class`` or the class itself) and
the URL of a service answering normally. The more it says about the service, the more the kit checks: its fixed
timing (``fixed_ttft_ms``/``fixed_itl_ms``: the reference server's ``--fixed``) enables the TTFT and timeout checks;
``stats`` (the reference server's counters) lets the cancellation check see the server drop a stream; ``recall``
says that the service answers a question about an earlier message with that message (the reference server's
responder does), which the history checks rely on.
"""

from __future__ import annotations

import socket
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from loadgen.transports import make_transport
from loadgen.transports.base import Transport, TransportConfig
from loadgen.types import ChatMessage, ChatRequest, HistoryMode

#: A request every chat service refuses: it asks for far more tokens than any allows.
TOO_MANY_TOKENS = ChatRequest(messages=(ChatMessage("user", "Say something."),), max_tokens=100_000)


@dataclass(frozen=True)
class ContractTarget:
    """A transport and a service to hold it to the contract with."""

    transport: str | type[Transport]
    url: str
    #: The service's fixed timing: first token this long after it received the request, then one every
    #: ``fixed_itl_ms`` (``loadgen serve --fixed``). ``None``: unknown; the checks that need it are skipped.
    fixed_ttft_ms: float | None = None
    fixed_itl_ms: float | None = None
    #: A URL of the transport's scheme where nothing listens (default: ``url`` with a port just freed).
    refused_url: str | None = None
    #: A request the service answers with an error (``None``: the server-error check is skipped).
    error_request: ChatRequest | None = TOO_MANY_TOKENS
    #: The service repeats an earlier user message that a question shares words with (see the module doc).
    recall: bool = True
    #: The history modes the service supports.
    history_modes: tuple[HistoryMode, ...] = (HistoryMode.CLIENT, HistoryMode.SERVER)
    api_key: str | None = field(default=None, repr=False)
    model: str | None = None
    path: str | None = None
    #: The turn timeout of every check that does not test timeouts.
    timeout_s: float = 15.0
    connect_timeout_s: float = 5.0
    #: The service's counters, ``{"service": {"completed": n, "active": n, ...}}`` (the reference server's).
    stats: Callable[[], dict[str, Any]] | None = field(default=None, repr=False, compare=False)

    @property
    def fixed(self) -> bool:
        return self.fixed_ttft_ms is not None and self.fixed_itl_ms is not None

    @property
    def spec(self) -> str:
        """The transport as ``--transport`` takes it (a class as ``module:QualName``)."""
        if isinstance(self.transport, str):
            return self.transport
        return f"{self.transport.__module__}:{self.transport.__qualname__}"

    def config(self, **changes: Any) -> TransportConfig:
        """The transport's configuration for this target, with ``changes`` (e.g. ``timeout_s``, ``target``)."""
        base = TransportConfig(
            target=self.url,
            timeout_s=self.timeout_s,
            connect_timeout_s=self.connect_timeout_s,
            api_key=self.api_key,
            model=self.model,
            path=self.path,
        )
        return replace(base, **changes)

    def make(self, **changes: Any) -> Transport:
        """A new transport for this target (``changes`` as :meth:`config` takes them)."""
        config = self.config(**changes)
        if isinstance(self.transport, str):
            return make_transport(self.transport, config)
        return self.transport(config)

    def refused(self) -> str:
        """A URL of the target's scheme on which the connection is refused."""
        return self.refused_url or with_port(self.url, free_port())


def free_port() -> int:
    """A loopback port nothing listens on (just bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def with_port(url: str, port: int) -> str:
    """``url`` on 127.0.0.1:``port``, everything else (scheme, credentials, path, query) kept."""
    parts = urllib.parse.urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


__all__ = ["TOO_MANY_TOKENS", "ContractTarget", "free_port", "with_port"]
