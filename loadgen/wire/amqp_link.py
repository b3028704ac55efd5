"""The AMQP broker connection, for the client transport and the server's front alike (no I/O): a failed connection
in words, the libraries' logs kept quiet, and one log line per change of the connection's state.

- :func:`connect_failure_reason`: why connecting to a broker failed, in one line that names ``host:port`` (never a
  URL) and what to do;
- :func:`quiet_frame_logs`: the loggers that print frames and headers (a password, an API key) stay above DEBUG;
- :func:`quiet_connection_logs`: aio-pika's and aiormq's connection life-cycle loggers (about three lines a second
  while a broker is away, with a traceback when a connection drops) speak only when the process logs at DEBUG;
- :class:`LinkState`: the one line per change of state (lost, reconnected) that the transport and the front log
  instead.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import time
from typing import Final

import aiormq.exceptions as amqp_exc

from loadgen.errors import cause_of
from loadgen.wire.text import short

#: Seconds between reconnection attempts after a lost connection (aio-pika's default is 5): a broker that is back
#: is seen within about half a second by the client and the server's front alike; a URL's own
#: ``reconnect_interval`` parameter wins (:func:`loadgen.wire.amqp.with_reconnect_interval`).
RECONNECT_INTERVAL_S: Final = 0.5

# ---------------------------------------------------------------------------------------------------------------
# logging


#: Loggers that, at DEBUG, print what goes on the wire: aiormq every frame it sends as raw bytes (the login's
#: password among them), aio-pika every message it publishes with its headers (the API key among them).
WIRE_LOGGERS: Final = ("aiormq.connection", "aio_pika.exchange")


def quiet_frame_logs() -> None:
    """Keep :data:`WIRE_LOGGERS` at INFO or above, so that no secret reaches a log through them (a process run
    at DEBUG still gets everything else). Called before each connection is made."""
    for name in WIRE_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


#: Loggers of aio-pika's and aiormq's connection life cycle. While a broker is away they log about three lines a
#: second (every reconnection attempt, and a traceback when the connection drops); the transport and the front
#: log one line of their own per change of state instead (lost, reconnected).
CONNECTION_LOGGERS: Final = (
    "aiormq.connection",
    "aiormq.connection.marshall",
    "aio_pika.connection",
    "aio_pika.robust_connection",
    "aio_pika.channel",
    "aio_pika.robust_channel",
    "aio_pika.tools",
)


class _OnlyAtDebug(logging.Filter):
    """Passes a record only when its logger is enabled for DEBUG (someone asked for everything), or CRITICAL."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.CRITICAL or logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_ONLY_AT_DEBUG = _OnlyAtDebug()


def quiet_connection_logs() -> None:
    """Keep :data:`CONNECTION_LOGGERS` quiet unless the process logs at DEBUG (idempotent). Called before each
    connection is made, with :func:`quiet_frame_logs`."""
    for name in CONNECTION_LOGGERS:
        logger = logging.getLogger(name)
        if _ONLY_AT_DEBUG not in logger.filters:
            logger.addFilter(_ONLY_AT_DEBUG)


class LinkState:
    """Whether a robust connection is up, logged once per change: ``lost(exc)`` and ``back()`` each write one
    line (WARNING) when the state really changes, never per reconnection attempt. ``who`` starts each line."""

    __slots__ = ("_log", "_lost_at", "_where", "_who")

    def __init__(self, log: logging.Logger, who: str, where: str) -> None:
        self._log = log
        self._who = who
        self._where = where
        self._lost_at: float | None = None

    @property
    def lost(self) -> bool:
        return self._lost_at is not None

    def went_down(self, exc: BaseException | None) -> None:
        if self._lost_at is None:
            self._lost_at = time.monotonic()
            why = short(str(exc)) if exc is not None and str(exc) else type(exc).__name__ if exc else "closed"
            self._log.warning(
                "%s: connection to the broker at %s lost (%s); reconnecting every %g s",
                self._who,
                self._where,
                why,
                RECONNECT_INTERVAL_S,
            )

    def came_back(self) -> None:
        lost_at, self._lost_at = self._lost_at, None
        if lost_at is not None:
            self._log.warning(
                "%s: reconnected to the broker at %s after %.1f s", self._who, self._where, time.monotonic() - lost_at
            )


# ---------------------------------------------------------------------------------------------------------------
# connection failures, in words (client and server alike)

#: getaddrinfo's EAI_NONAME / EAI_AGAIN / EAI_NODATA (aiormq passes them on as the errno, negative).
_RESOLVE_ERRNOS = frozenset({socket.EAI_NONAME, socket.EAI_AGAIN, getattr(socket, "EAI_NODATA", -5)})


def connect_failure_reason(exc: BaseException, *, where: str, user: str, timeout_s: float) -> str:
    """Why connecting to the broker at ``where`` (``host:port``, never a URL) failed, in one line.

    Library messages are only quoted for the cases not recognised here; aio-pika and aiormq mask the password
    in the URLs they print.
    """
    if isinstance(exc, TimeoutError):
        return f"connect timeout to the broker at {where} after {timeout_s:g}s"
    if isinstance(exc, amqp_exc.ProbableAuthenticationError | amqp_exc.AuthenticationError):
        return f"the broker at {where} refused the login of user {user!r} (wrong password?)"
    cause = cause_of(exc, ssl.SSLError)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"TLS certificate of the broker at {where} not trusted: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError):
        return f"TLS handshake with the broker at {where} failed: {cause.reason or cause}"
    text = short(str(exc))
    lower = text.lower()
    code = exc.errno if isinstance(exc, OSError) else None
    if code == errno.ECONNREFUSED or "connection refused" in lower or "connect call failed" in lower:
        return (
            f"connection refused to the broker at {where}: is RabbitMQ running? "
            "(start one with `rabbitmq-server -detached`)"
        )
    if code in _RESOLVE_ERRNOS or "name or service not known" in lower or "nodename nor servname" in lower:
        return f"cannot resolve the host of the broker at {where}"
    if "vhost" in lower or "not_allowed" in lower or "connection.close" in lower.replace(" ", ""):
        return f"the broker at {where} refused the connection (unknown vhost, or no access to it)"
    return f"cannot connect to the broker at {where}: {type(exc).__name__}: {text}"


__all__ = [
    "CONNECTION_LOGGERS",
    "RECONNECT_INTERVAL_S",
    "WIRE_LOGGERS",
    "LinkState",
    "connect_failure_reason",
    "quiet_connection_logs",
    "quiet_frame_logs",
]
