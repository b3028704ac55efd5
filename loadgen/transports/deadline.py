"""The REST transport's whole-turn deadline, held on every socket operation httpx makes.

httpx's timeouts are per operation: its read timeout restarts with every read, so a server that sends its
headers after 4 s and then nothing held a 5 s turn for 9 s. Here the network backend under httpx's connection
pool (:class:`DeadlineBackend`) shortens the timeout of every connect, TLS handshake, read and write to what
is left of the turn (:class:`TurnDeadline`, set by the transport for the duration of one turn), so whatever the
server does - silence before the headers, headers then silence, a dribble - the turn ends at its deadline. A
deadline already passed fails the operation at once, as httpcore's own timeout of that phase (httpx maps it to
its ``TimeoutException`` subclass; the transport names the turn's limit in the reason).

Outside a turn (``TurnDeadline.at`` is ``None``) the operations keep httpx's own timeouts.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

#: httpx's defaults for a client's connection pool (``httpx.HTTPTransport``); one turn at a time uses one.
_POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)


class TurnDeadline:
    """When the current turn must end (``time.perf_counter()`` seconds), or ``None`` between turns."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at: float | None = None

    def bound(self, timeout: float | None, error: type[Exception]) -> float | None:
        """``timeout`` shortened to what is left of the turn; ``error`` raised when nothing is left."""
        at = self.at
        if at is None:
            return timeout
        left = at - time.perf_counter()
        if left <= 0:
            raise error("the turn's deadline has passed")
        return left if timeout is None or left < timeout else timeout


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every operation waits no longer than the turn has left."""

    __slots__ = ("_deadline", "_inner")

    def __init__(self, inner: httpcore.NetworkStream, deadline: TurnDeadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.bound(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.bound(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        bounded = self._deadline.bound(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, bounded), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own synchronous backend, its connections wrapped in :class:`DeadlineStream`."""

    def __init__(self, deadline: TurnDeadline, inner: httpcore.NetworkBackend | None = None) -> None:
        self.deadline = deadline
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = self.deadline.bound(timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, bounded, local_address, socket_options)
        return DeadlineStream(stream, self.deadline)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:  # pragma: no cover - the transport takes http(s) URLs only
        bounded = self.deadline.bound(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._inner.connect_unix_socket(path, bounded, socket_options), self.deadline)

    def sleep(self, seconds: float) -> None:  # pragma: no cover - httpcore sleeps only between retries (none here)
        self._inner.sleep(seconds)


def deadline_transport(ssl_context: ssl.SSLContext, deadline: TurnDeadline) -> httpx.HTTPTransport:
    """httpx's transport (HTTP/1.1, no retries, its default pool limits) over a :class:`DeadlineBackend`.

    httpx has no parameter for the network backend: its connection pool is replaced by one built with the same
    settings and ours (a test checks that the transport really uses it)."""
    transport = httpx.HTTPTransport(verify=ssl_context)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=ssl_context,
        max_connections=_POOL_LIMITS.max_connections,
        max_keepalive_connections=_POOL_LIMITS.max_keepalive_connections,
        keepalive_expiry=_POOL_LIMITS.keepalive_expiry,
        http1=True,
        http2=False,
        retries=0,
        network_backend=DeadlineBackend(deadline),
    )
    return transport


__all__ = ["DeadlineBackend", "DeadlineStream", "TurnDeadline", "deadline_transport"]
