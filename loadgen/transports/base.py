"""The one interface every client transport implements: the public transport API, version :data:`API_VERSION`.

Built-in transports and plug-ins (``docs/TRANSPORT_API.md``: how to write, register and test one) implement the
same contract; what this version promises is stated here and there, and a change to it raises the version.

- **The class.** Subclass :class:`Transport`; set ``name``, ``schemes`` (the URL schemes its targets use;
  ``()``: the transport checks its own targets) and, for a plug-in, ``api_version`` (the API it was written
  against; a class asking for a newer one than this build's is refused before any user starts). Implement
  :meth:`Transport._send`; override :meth:`~Transport.secrets`, :meth:`~Transport.preflight` and
  :meth:`~Transport.close` where needed. ``__init__(config)`` only checks the target (a malformed one is a
  :class:`~loadgen.errors.ConfigError`) and must not connect: it runs in the master too, and before a fork.
- **Timing** (:class:`~loadgen.types.Reply`, ``time.perf_counter()`` seconds on the client, as close to the wire as
  the library allows): ``t_sent`` just before the request is handed to the library (a connect the library makes
  for this turn is inside the turn); ``t_first_byte`` when the first byte, header or message of the answer came
  back (``None`` where the library cannot tell); ``chunk_times[i]`` when the i-th chunk that carries text arrived,
  before it is decoded, with ``chunk_tokens[i]`` tokens (0: unknown, see :mod:`loadgen.transports.replies`);
  ``t_done`` when the end of the reply was seen. Always ``t_sent <= t_first_byte <= chunk_times[0] <= ... <=
  chunk_times[-1] <= t_done``. TTFT is ``chunk_times[0] - t_sent``; ``text`` is the whole reply, on which
  retention is checked. A whole (non-streamed) reply is one chunk stamped at ``t_done``.
- **Failures** (:mod:`loadgen.errors`; ``raise ... from`` the library's exception): the target cannot be reached
  (refused, DNS, TLS, connection lost before any reply) -> :class:`~loadgen.errors.ConnectError`; the turn (connect
  included) outlives ``timeout`` -> :class:`~loadgen.errors.TurnTimeout`, raised by the deadline, not long after
  it; the peer answers an error -> :class:`~loadgen.errors.ServerError` with ``code``, or
  :class:`~loadgen.errors.Overloaded` for "no capacity now" (HTTP 429/503, RESOURCE_EXHAUSTED; the status table
  :mod:`loadgen.wire.status` maps codes to kinds); an answer that cannot be parsed, or a stream cut short ->
  :class:`~loadgen.errors.ProtocolError`; no consumer for the message -> :class:`~loadgen.errors.Unroutable`.
  Nothing else may escape ``send``. A ``reason`` is one short line, safe to show and to group by: no request ids,
  no URL with credentials (name ``host:port``; :func:`loadgen.wire.text.redact_url`).
- **Secrets.** :meth:`Transport.send` replaces every value :meth:`Transport.secrets` returns (the API key by
  default; add a broker password, a token) by ``***`` in the reason of any error it raises. Never log a secret.
- **Threads and gevent.** Locust runs each user as a gevent greenlet in a monkey-patched process: one transport per
  user, whose ``send`` is never called twice at once, while other users' transports run in the same process.
  Blocking I/O must yield to the hub: pure-Python sockets do once patched; a C library needs its gevent integration,
  or runs its asyncio API on :class:`loadgen.transports.bridge.AsyncBridge` (one loop in a real thread per process),
  as the gRPC transport runs ``grpc.aio`` and the AMQP transport aio-pika. Never block the hub (no unpatched waits,
  ``run_coroutine_threadsafe(...).result()`` hangs). State shared by a process's users is built lazily, in the
  process that uses it (Locust forks after import). A turn may be killed at any wait (``GreenletExit``: a user being
  stopped): leave no half-read reply that the next turn could take for its own. ``close()`` is called once the user
  stops; it must be safe to call twice and never raise. Outside Locust (the contract kit :mod:`loadgen.testing`,
  scripts) ``send`` runs in plain threads: it must work there too.
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
#: The version of the transport API this build implements (this module, :class:`~loadgen.types.Reply`'s timing
#: fields, the failure kinds of :mod:`loadgen.errors`); a plug-in states the one it was written for.
API_VERSION = 1
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
    #: URL schemes this transport accepts as targets (``()``: it checks its targets itself).
    schemes: ClassVar[tuple[str, ...]]
    #: The transport API version the class was written against (see the module); newer than this build's: refused.
    api_version: ClassVar[int] = API_VERSION

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
