"""AMQP transport: request/reply over RabbitMQ with aio-pika, in the format of :mod:`loadgen.wire.amqp`.

A thin adapter over the wire contract: messages, headers and URL helpers are :mod:`loadgen.wire.amqp`, the key
goes as :mod:`loadgen.wire.auth` says, an error reply becomes the failure kind :mod:`loadgen.wire.status` gives
its code, and the reply is put together by :mod:`loadgen.transports.replies`. This module is the greenlet side
(the target, the registry of the process's connections, :class:`AmqpTransport`);
:mod:`loadgen.transports.amqp_client` is the asyncio side (the connection, the reply queue, each turn's timing).

Target: ``amqp(s)://user:pass@host:port/vhost?queue=NAME`` (``queue`` names the request queue, default
``loadgen.chat.requests``; it is taken off before the URL goes to aio-pika, whose own parameters such as
``heartbeat``, ``cafile`` or ``no_verify_ssl`` pass through).

Per Locust PROCESS, not per user: one connection, channel and reply queue (see
:mod:`loadgen.transports.amqp_client`) in the process's asyncio loop (:mod:`loadgen.transports.bridge`), made on
the first turn in the process that sends it (never at import, never before a fork), shared by every user of the
process. The connection closes when the last transport of the process closes, and at process exit; the reply
queue goes with it (exclusive), so nothing is left on the broker.

Timing: each reply message is stamped the moment it reaches the consumer callback in the asyncio thread, before
its JSON is decoded, so TTFT and ITL mean what they mean for REST and gRPC (a message of several chunks, which the
server had ready at once, is that many chunks with one stamp); ``t_sent`` is stamped just before the
publish, in the same thread (the ~0.3 ms hop from the greenlet to the loop and back is outside every measured
interval).

The turn timeout bounds the whole turn, connecting to the broker included (``connect_timeout_s`` bounds the
connect alone when shorter). A reply past ``max_reply_bytes`` (the bodies of its messages) is a
:class:`ProtocolError`; a first reply message with ``"session": "new"`` sets ``Reply.session_new``.

Errors: broker down or refusing at the first turn -> :class:`ConnectError` within ``connect_timeout_s``;
connection lost during a turn -> :class:`ConnectError` ("connection to broker lost ...") while the connection
recovers by itself (turns started during the outage fail at once, later ones succeed); no reply in time ->
:class:`TurnTimeout`; an error reply -> :class:`ServerError` / :class:`Overloaded` by its code; a malformed,
out-of-order or missing reply chunk -> :class:`ProtocolError`. Neither the password of the URL nor the API key
ever appears in a reason or a log line of this module.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import socket
import threading
import urllib.parse
from typing import Any, ClassVar

from loadgen.errors import ConfigError, ConnectError, TurnTimeout, WireError
from loadgen.transports.amqp_client import CLOSE_TIMEOUT_S, AmqpClient, AmqpTarget, connect_error, reply_error
from loadgen.transports.base import Transport, TransportConfig
from loadgen.transports.bridge import AsyncBridge, BridgeError
from loadgen.types import ChatRequest, Reply
from loadgen.wire.amqp import (
    broker_user,
    broker_where,
    encode_request,
    set_query,
    split_target,
    with_reconnect_interval,
)
from loadgen.wire.auth import AUTH_HEADER, bearer
from loadgen.wire.text import redact_url

log = logging.getLogger(__name__)

#: Added to a turn's own deadline (which covers connecting too) for the greenlet's wait on the asyncio loop: the
#: turn times out inside the loop first, with the precise reason; this only catches a loop that stopped answering.
BRIDGE_SLACK_S = 5.0


# ---------------------------------------------------------------------------------------------------------------
# the target


def parse_target(target: str, *, tls_verify: bool = True) -> AmqpTarget:
    """``amqp(s)://user:pass@host[:port]/vhost?queue=NAME`` -> :class:`AmqpTarget` (:class:`ConfigError` if bad)."""
    shown = redact_url(target)
    try:
        url = urllib.parse.urlsplit(target)
        _port = url.port  # ValueError for a port that is not a number
        broker_url, queue = split_target(target)
    except (ValueError, WireError) as exc:
        raise ConfigError(f"target {shown!r} is not a valid AMQP URL: {exc}") from None
    scheme = url.scheme.lower()
    if scheme not in AmqpTransport.schemes or not url.hostname:
        raise ConfigError(f"target {shown!r} must be amqp(s)://user:pass@host[:port]/vhost?queue=NAME")
    tls = scheme == "amqps"
    if tls and not tls_verify:
        broker_url = set_query(broker_url, "no_verify_ssl", "1")
    return AmqpTarget(
        broker_url=with_reconnect_interval(broker_url),
        queue=queue,
        where=broker_where(target),
        user=broker_user(target),
        tls=tls,
        shown=shown,
        password=urllib.parse.unquote(url.password) if url.password else None,
    )


# ---------------------------------------------------------------------------------------------------------------
# the registry of this process's clients (greenlets and threads side)

#: Guards the registry between plain threads (no yield happens while it is held, so greenlets never wait on it).
_registry_lock = threading.Lock()


def _new_lock_in_child() -> None:  # a fork may copy the lock held by another thread of the parent
    global _registry_lock
    _registry_lock = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_in_child)
_clients: dict[tuple[str, bool], AmqpClient] = {}
_clients_pid: int | None = None
_atexit_pid: int | None = None


def _acquire(target: AmqpTarget, tls_verify: bool) -> AmqpClient:
    global _clients_pid, _atexit_pid
    bridge = AsyncBridge.get()  # made first, so that its exit hook runs after ours (atexit runs in reverse)
    with _registry_lock:
        pid = os.getpid()
        if _clients_pid != pid:
            _clients.clear()  # a forked child: the parent's clients live in a loop that does not exist here
            _clients_pid = pid
        key = (target.broker_url, tls_verify)
        client = _clients.get(key)
        if client is None or client.bridge is not bridge:  # none yet, or one left on a bridge that was stopped
            client = _clients[key] = AmqpClient(target, bridge)
            if _atexit_pid != pid:
                atexit.register(_close_all_at_exit)
                _atexit_pid = pid
        client.users += 1
        return client


def _release(client: AmqpClient) -> None:
    with _registry_lock:
        client.users -= 1
        if client.users > 0 or os.getpid() != _clients_pid:
            return
        for key, value in list(_clients.items()):
            if value is client:
                del _clients[key]
    _close_client(client)  # outside the lock: this waits for the loop


def _close_client(client: AmqpClient) -> None:
    if client.bridge is not AsyncBridge.current():
        return  # its loop is gone (stopped, or another process's): so is its connection
    try:
        client.bridge.run(client.close, timeout=CLOSE_TIMEOUT_S)
    except (TimeoutError, BridgeError):
        log.warning("AMQP: closing the connection to %s took too long", client.target.where)


def _close_all_at_exit() -> None:
    with _registry_lock:
        if os.getpid() != _clients_pid:
            return
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        with contextlib.suppress(Exception):
            _close_client(client)


def open_clients() -> int:
    """How many broker connections this process holds (for tests)."""
    return len(_clients) if _clients_pid == os.getpid() else 0


# ---------------------------------------------------------------------------------------------------------------
# the transport


class AmqpTransport(Transport):
    """Chat turns as AMQP request/reply through RabbitMQ (streamed chunk messages or one whole reply)."""

    name: ClassVar[str] = "amqp"
    schemes: ClassVar[tuple[str, ...]] = ("amqp", "amqps")

    def __init__(self, config: TransportConfig) -> None:
        super().__init__(config)
        self._target = parse_target(config.target, tls_verify=config.tls_verify)
        if config.connect_timeout_s <= 0:
            raise ConfigError(f"connect timeout must be positive, got {config.connect_timeout_s!r}")
        self._model = config.model or None
        self._secret = config.api_key or None
        self._headers: dict[str, Any] = {}
        if self._secret is not None:
            self._headers[AUTH_HEADER] = bearer(self._secret)
        self._client: AmqpClient | None = None  # taken on the first turn: nothing is made before a fork
        self._closed = False

    @property
    def queue(self) -> str:
        return self._target.queue

    def preflight(self, timeout_s: float) -> None:
        """The broker must accept a TCP connection: without one no turn can even be sent."""
        host, _, port = self._target.where.rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
        except OSError as exc:
            reason = connect_error(exc, self._target, timeout_s).reason
            raise ConfigError(f"target {self._target.shown!r}: {reason}") from None

    def _send(self, request: ChatRequest, turn_timeout: float) -> Reply:
        if self._closed:
            raise ConnectError("the AMQP transport was closed")
        client = self._client
        if client is None or client.pid != os.getpid() or client.bridge is not AsyncBridge.current():
            client = self._client = _acquire(self._target, self.config.tls_verify)
        body, options = self._request(request)
        if request.trace_headers is not None:  # tracing on (loadgen.telemetry.tracing): the turn's span context
            options["headers"] = {**options["headers"], **request.trace_headers}
        connect_timeout = self.config.connect_timeout_s
        try:
            return client.bridge.run(
                lambda: client.turn(
                    body,
                    **options,
                    timeout=turn_timeout,
                    connect_timeout=connect_timeout,
                    max_reply_bytes=self.config.max_reply_bytes,
                ),
                timeout=turn_timeout + BRIDGE_SLACK_S,
            )
        except TimeoutError as exc:
            raise TurnTimeout(f"turn exceeded its timeout ({turn_timeout:g}s): no answer from the AMQP loop") from exc
        except BridgeError as exc:
            raise ConnectError(f"the AMQP transport's event loop is not running: {exc}") from exc

    def _request(self, request: ChatRequest) -> tuple[bytes, dict[str, Any]]:
        """One turn's request body, and the keywords of :meth:`AmqpClient.turn` that go with it."""
        body = encode_request(request, model=self._model)
        return body, {"stream": request.stream, "queue": self._target.queue, "headers": self._headers}

    def secrets(self) -> tuple[str | None, ...]:
        return (self._secret, self._target.password)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            _release(client)


__all__ = [
    "AmqpTarget",
    "AmqpTransport",
    "connect_error",
    "open_clients",
    "parse_target",
    "reply_error",
]
