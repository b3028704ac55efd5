"""The one interface every client transport implements.

A transport is synchronous from the caller's point of view (Locust users are gevent greenlets); whatever
async machinery it needs stays inside it. ``send`` either returns a :class:`~loadgen.types.Reply` or raises
a :class:`~loadgen.errors.TransportError` subclass that chains the library's own exception.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from loadgen.errors import ConfigError, TransportError
from loadgen.types import ChatRequest, Reply

API_KEY_ENV = "LOADGEN_API_KEY"
#: The largest reply a turn accepts, in bytes as they come off the wire (SSE framing, protobuf or AMQP bodies
#: included): a streamed reply of ~4,096 tokens is well under 1 MiB.
DEFAULT_MAX_REPLY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class TransportConfig:
    """Everything a transport needs to reach its target. Built once per Locust user.

    ``target`` is a URL: ``http(s)://host:port`` for REST, ``grpc(s)://host:port`` for gRPC,
    ``amqp(s)://user:pass@host:port/vhost?queue=NAME`` for AMQP.
    """

    target: str
    timeout_s: float = 60.0
    connect_timeout_s: float = 10.0
    api_key: str | None = field(default=None, repr=False)  # never logged, never written to a report
    tls_verify: bool = True
    #: model name sent with every request, overriding ``ChatRequest.model`` (``None``: the request's own)
    model: str | None = None
    #: REST only: the chat path under the target (``None``: ``/v1/chat/completions``)
    path: str | None = None
    #: a reply larger than this (bytes off the wire) fails the turn as a :class:`~loadgen.errors.ProtocolError`
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
    #: a whole (non-streamed) reply to a streaming request: ``False`` fails the turn as a ProtocolError; ``True``
    #: accepts it, flagged (``Reply.status`` :data:`~loadgen.types.UNSTREAMED`; its TTFT is the whole reply's time)
    accept_unstreamed: bool = False

    @staticmethod
    def api_key_from_env() -> str | None:
        value = os.environ.get(API_KEY_ENV, "").strip()
        return value or None


class Transport(abc.ABC):
    """A connection to one chat service for one Locust user."""

    name: ClassVar[str]
    #: URL schemes this transport accepts as targets.
    schemes: ClassVar[tuple[str, ...]]

    def __init__(self, config: TransportConfig) -> None:
        self.config = config

    def send(self, request: ChatRequest, *, timeout: float | None = None) -> Reply:
        """Send one turn and wait for the whole reply (streamed or not).

        ``timeout`` (seconds, default ``config.timeout_s``) bounds the whole turn. Every secret the
        transport holds (:meth:`secrets`) is replaced by ``***`` in the reason of an error it raises.
        """
        turn_timeout = self.config.timeout_s if timeout is None else timeout
        if turn_timeout <= 0:
            raise ConfigError(f"turn timeout must be positive, got {turn_timeout!r}")
        try:
            return self._send(request, turn_timeout)
        except TransportError as err:
            scrub_secrets(err, self.secrets())
            raise

    @abc.abstractmethod
    def _send(self, request: ChatRequest, turn_timeout: float) -> Reply:
        """One turn, bounded by ``turn_timeout`` seconds; raise a TransportError subclass on failure."""

    def secrets(self) -> Iterable[str | None]:
        """Values that must never appear in an error reason (API key, broker password)."""
        return (self.config.api_key,)

    def preflight(self, timeout_s: float) -> None:  # noqa: B027 - optional hook
        """Check, before any load starts, what must hold for any turn to succeed and that a user can fix (e.g. a
        broker that accepts connections); raise :class:`ConfigError` with one line saying what to do. A target that
        merely does not answer is NOT refused here: a failing target gets counted failures."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Safe to call twice."""


def scrub_secrets(err: TransportError, secrets: Iterable[str | None]) -> None:
    """Replace every secret in ``err.reason`` (and its args) by ``***``."""
    reason = err.reason
    for secret in secrets:
        if secret and secret in reason:
            reason = reason.replace(secret, "***")
    if reason != err.reason:
        err.reason = reason
        err.args = (reason,)
