"""The asyncio side of the AMQP transport: one broker connection per process and the replies of each turn.

Everything here runs in the process's asyncio loop (:mod:`loadgen.transports.bridge`); :mod:`loadgen.transports.amqp`
keeps one :class:`AmqpClient` per broker URL and process and hands it turns from the greenlets. The shape is the
RPC pattern of ``aio_pika/patterns/rpc.py``:

- one robust connection (``aio_pika.RobustConnection``: it reconnects by itself after a lost connection) and
  one channel with publisher confirms;
- ONE exclusive, auto-delete reply queue (``loadgen.reply.<hex>``), consumed with ``no_ack``; a map
  ``correlation_id -> turn`` routes every reply message to the :class:`Turn` that waits for it.

The reply queue is consumed on aiormq's channel under aio-pika's (:meth:`AmqpClient._consume`), not with
``queue.consume``: aio-pika wraps every delivery in an ``IncomingMessage`` (all its properties decoded) and runs
the callback in a second task, which cost ~45 µs of the ~100 µs per reply message (measured, reports/BENCHMARKS.md).
aiormq calls :meth:`AmqpClient._on_delivery` as soon as it has read the message, and only the correlation id and
the body are looked at. aio-pika's robust channel restores the queue after a reconnect but not this consumer: the
client consumes again before it counts the link as back (:meth:`AmqpClient._resume_after_reconnect`).

A turn publishes one request (``mandatory``: a queue nobody declared fails at once as :class:`Unroutable`
instead of waiting out the timeout; ``expiration`` = the turn timeout; the API key in a header) and waits for
its replies. Each reply message is stamped with ``time.perf_counter()`` the moment it reaches the consumer
callback, before its JSON is decoded (:func:`loadgen.wire.amqp.decode_chunk`); ``t_sent`` just before the
publish. A message that carries several token chunks (those the server had ready at the same moment) gives that
many chunks, all with the message's stamp, as REST stamps the events of one read. An error reply is the failure
kind :mod:`loadgen.wire.status` gives its code (:func:`reply_error`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import aiormq.exceptions as amqp_exc
from aio_pika.abc import (
    AbstractExchange,
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustQueue,
)
from aiormq.abc import DeliveredMessage
from yarl import URL

from loadgen import __version__
from loadgen.errors import ConnectError, ProtocolError, ServerError, TransportError, TurnTimeout, Unroutable, WireError
from loadgen.transports.base import DEFAULT_MAX_REPLY_BYTES
from loadgen.transports.bridge import AsyncBridge
from loadgen.transports.replies import reply_too_large, streamed_reply
from loadgen.types import Reply, Usage
from loadgen.wire.amqp import (
    CONTENT_TYPE,
    REQUEST_TYPE,
    SENT_AT_HEADER,
    Chunk,
    decode_chunk,
)
from loadgen.wire.amqp_link import LinkState, connect_failure_reason, quiet_connection_logs, quiet_frame_logs
from loadgen.wire.status import amqp_kind, amqp_label
from loadgen.wire.text import short

log = logging.getLogger(__name__)

#: How long closing the process's connection may take (last close, process exit).
CLOSE_TIMEOUT_S = 5.0
#: After a reconnect, how long to wait between attempts to consume the reply queue again.
RECONSUME_RETRY_S = 1.0
REPLY_QUEUE_PREFIX = "loadgen.reply."


@dataclass(frozen=True, slots=True)
class AmqpTarget:
    broker_url: str = field(repr=False)  # with credentials: only ever given to aio-pika
    queue: str
    where: str  # host:port, safe to show
    user: str
    tls: bool
    shown: str  # the target as given, password hidden: safe to log
    password: str | None = field(default=None, repr=False)


# ---------------------------------------------------------------------------------------------------------------
# library errors -> loadgen.errors


def connect_error(exc: BaseException, target: AmqpTarget, timeout_s: float) -> ConnectError:
    """The :class:`ConnectError` for a failed first connect (the caller chains ``exc``)."""
    return ConnectError(connect_failure_reason(exc, where=target.where, user=target.user, timeout_s=timeout_s))


def reply_error(code: str, message: str) -> ServerError:
    """The failure for an error reply of the server: the kind the status table gives its code."""
    return amqp_kind(code)(f"{amqp_label(code)}: {short(message) or code}", code=code)


# ---------------------------------------------------------------------------------------------------------------
# one turn, seen from the asyncio loop


class Turn:
    """The replies of one request, fed by the consumer callback (loop thread only)."""

    __slots__ = (
        "bytes_left",
        "chunk_times",
        "chunk_tokens",
        "done",
        "finish_reason",
        "max_bytes",
        "next_seq",
        "parts",
        "session_new",
        "stream",
        "t_first_byte",
        "usage",
    )

    def __init__(self, stream: bool, done: asyncio.Future[None], max_bytes: int = DEFAULT_MAX_REPLY_BYTES) -> None:
        self.stream = stream
        self.done = done
        self.max_bytes = self.bytes_left = max_bytes
        self.session_new = False
        self.next_seq = 0
        self.parts: list[str] = []
        self.chunk_times: list[float] = []
        self.chunk_tokens: list[float] = []
        self.t_first_byte: float | None = None
        self.usage: Usage | None = None
        self.finish_reason: str | None = None

    def fail(self, error: TransportError) -> None:
        if not self.done.done():
            self.done.set_exception(error)

    def feed(self, at: float, body: bytes) -> None:
        if self.done.done():
            return  # a chunk after the end (or after a failure): ignored
        if self.t_first_byte is None:
            self.t_first_byte = at
        self.bytes_left -= len(body)
        if self.bytes_left < 0:
            self.fail(reply_too_large(self.max_bytes))
            return
        try:
            chunk = decode_chunk(body)
        except WireError as exc:
            self.fail(ProtocolError(f"malformed reply chunk: {exc}"))
            return
        if chunk.seq != self.next_seq:
            if chunk.seq > self.next_seq:
                missing = f"chunk {self.next_seq} missing (got {chunk.seq})"
            else:
                missing = f"chunk {chunk.seq} out of order or repeated (expected {self.next_seq})"
            self.fail(ProtocolError(f"reply stream broken: {missing}"))
            return
        if self.next_seq == 0:
            self.session_new = chunk.session_new
        self.next_seq += 1
        if chunk.error is not None:
            self.fail(reply_error(chunk.error.code, chunk.error.message))
            return
        self._add(at, chunk)
        if chunk.final:
            self.usage = chunk.usage
            self.finish_reason = chunk.finish_reason
            self.done.set_result(None)

    def _add(self, at: float, chunk: Chunk) -> None:
        if chunk.parts:  # a message of several chunks: each is a chunk that arrived now (loadgen.wire.amqp)
            for text, count in chunk.parts:
                if text:
                    self.parts.append(text)
                    self.chunk_times.append(at)
                    self.chunk_tokens.append(float(count) if count > 0 else 0.0)
            return
        if not chunk.text:
            return
        self.parts.append(chunk.text)
        self.chunk_times.append(at)
        tokens = float(chunk.tokens)
        if tokens <= 0 and chunk.final and chunk.usage is not None and not self.stream:
            tokens = float(chunk.usage.completion_tokens)
        self.chunk_tokens.append(tokens if tokens > 0 else 0.0)

    def reply(self, t_sent: float, t_done: float) -> Reply:
        reply = streamed_reply(
            list(self.parts),
            list(self.chunk_times),
            list(self.chunk_tokens),
            self.usage,
            t_sent=t_sent,
            t_first_byte=self.t_first_byte,
            t_done=t_done,
        )
        reply.session_new = self.session_new
        return reply


#: Makes the :class:`Turn` that reads one request's replies: ``(stream, done future) -> Turn``.
TurnFactory = Callable[[bool, asyncio.Future[None]], Turn]

# ---------------------------------------------------------------------------------------------------------------
# the process's connection (lives in the bridge's loop)


class AmqpClient:
    """One robust connection, channel and reply queue; shared by every transport of the process that uses the
    same broker URL. Every ``async`` method runs in the bridge's loop thread."""

    def __init__(self, target: AmqpTarget, bridge: AsyncBridge) -> None:
        self.target = target
        self.bridge = bridge
        self.pid = os.getpid()
        self.users = 0  # transports holding it (changed from greenlets/threads, under _registry_lock)
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._reply_queue: AbstractRobustQueue | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._turns: dict[str, Turn] = {}
        self._exchanges: dict[str, AbstractExchange] = {}  # named exchanges checked to exist
        self._link = LinkState(log, "AMQP", target.where)  # the connection dropped and has not come back yet
        self._closed = False
        self._resuming: asyncio.Task[None] | None = None  # consuming again after a reconnect

    # -- connecting --------------------------------------------------------------------------------------------

    async def ready(self, connect_timeout: float) -> None:
        """Connected (connecting first if needed, one attempt shared by every turn that waits for it)."""
        if self._closed:
            raise ConnectError("the AMQP transport was closed")
        if self._channel is not None:
            if self._link.lost or self._connection is None or not self._connection.connected.is_set():
                raise ConnectError(
                    f"not connected: the connection to the broker at {self.target.where} was lost and is "
                    "reconnecting by itself"
                )
            return
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect(connect_timeout))
        attempt = self._connecting
        try:
            await asyncio.shield(attempt)
        except ConnectError as shared:  # every waiter raises an error of its own (they end up in other threads)
            raise ConnectError(shared.reason) from shared.__cause__
        finally:
            if attempt.done() and self._connecting is attempt and self._channel is None:
                self._connecting = None  # failed: the next turn tries again
                if not attempt.cancelled():
                    attempt.exception()  # retrieved (each waiter got it already)

    async def _connect(self, timeout: float) -> None:
        target = self.target
        quiet_frame_logs()
        quiet_connection_logs()
        connection = aio_pika.RobustConnection(
            URL(target.broker_url),
            client_properties={"connection_name": f"chat-loadgen {__version__} pid {os.getpid()}"},
        )
        try:
            async with asyncio.timeout(timeout):
                await connection.connect(timeout=timeout)
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                queue = await channel.declare_queue(
                    f"{REPLY_QUEUE_PREFIX}{uuid.uuid4().hex}", exclusive=True, auto_delete=True, durable=False
                )
                await self._consume(channel, queue.name)
        except BaseException as exc:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(connection.close(), CLOSE_TIMEOUT_S)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise connect_error(exc, target, timeout) from exc
        connection.close_callbacks.add(self._on_connection_lost)
        connection.reconnect_callbacks.add(self._on_reconnected)
        self._connection, self._channel, self._reply_queue = connection, channel, queue
        log.info("AMQP transport connected to %s (reply queue %s)", target.shown, queue.name)

    def _on_connection_lost(self, _sender: Any, exc: BaseException | None = None) -> None:
        if self._closed:
            return
        self._link.went_down(exc)
        reason = f"connection to broker lost during the turn ({self.target.where}): {_describe(exc)}"
        for turn in list(self._turns.values()):
            turn.fail(ConnectError(reason))

    def _on_reconnected(self, _sender: Any) -> None:
        if self._resuming is None or self._resuming.done():
            self._resuming = asyncio.ensure_future(self._resume_after_reconnect())

    async def _resume_after_reconnect(self) -> None:
        """The robust channel has declared the reply queue again: consume it again (retrying while the
        connection stays up), and only then count the link as back, so that no turn publishes into a reply queue
        nobody reads."""
        while not self._closed:
            channel, queue = self._channel, self._reply_queue
            if channel is None or queue is None:
                return
            try:
                await self._consume(channel, queue.name)
            except Exception as exc:
                log.debug("AMQP: consuming the reply queue again failed: %s", _describe(exc))
                await asyncio.sleep(RECONSUME_RETRY_S)
                continue
            self._link.came_back()
            return

    # -- turns ---------------------------------------------------------------------------------------------

    async def _consume(self, channel: AbstractRobustChannel, queue: str) -> None:
        """Consume the reply queue on ``channel``'s aiormq channel (see the module's docstring)."""
        underlay = await channel.get_underlay_channel()
        await underlay.basic_consume(queue, self._on_delivery, no_ack=True, exclusive=True)

    def _on_delivery(self, message: DeliveredMessage) -> Coroutine[Any, Any, None]:
        """aiormq's consumer callback: called as soon as a reply message has been read (stamped first, before any
        decoding), and handed on to its turn; aiormq runs what it returns as a task, so it returns a coroutine
        that does nothing."""
        at = time.perf_counter()
        turn = self._turns.get(message.header.properties.correlation_id or "")
        if turn is not None:
            turn.feed(at, message.body)
        return _nothing()

    async def turn(
        self,
        body: bytes,
        *,
        stream: bool,
        queue: str,
        headers: dict[str, Any],
        timeout: float,
        connect_timeout: float,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        exchange: str = "",
        new_turn: TurnFactory | None = None,
    ) -> Reply:
        """One request (to ``exchange`` with routing key ``queue``; "": the default exchange, i.e. the queue of that
        name) and its replies, read by the :class:`Turn` that ``new_turn`` makes (default: ours, holding at most
        ``max_reply_bytes``); the whole turn, connecting included, ends within ``timeout``."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        turn = new_turn(stream, done) if new_turn is not None else Turn(stream, done, max_reply_bytes)
        connected = False
        try:
            async with asyncio.timeout(timeout):
                await self.ready(min(connect_timeout, timeout))
                connected = True
                return await self._publish_and_wait(turn, body, exchange, queue, headers, timeout)
        except TimeoutError as exc:
            when = "while streaming the reply" if turn.chunk_times else "before the reply started"
            when = when if connected else "while connecting to the broker"
            raise TurnTimeout(f"turn exceeded its timeout ({timeout:g}s) {when}") from exc

    async def _publish_and_wait(
        self, turn: Turn, body: bytes, exchange: str, queue: str, headers: dict[str, Any], timeout: float
    ) -> Reply:
        channel, reply_queue = self._channel, self._reply_queue
        assert channel is not None and reply_queue is not None
        correlation_id = uuid.uuid4().hex
        self._turns[correlation_id] = turn
        message = aio_pika.Message(
            body,
            content_type=CONTENT_TYPE,
            correlation_id=correlation_id,
            reply_to=reply_queue.name,
            expiration=timeout,
            type=REQUEST_TYPE,
            headers={**headers, SENT_AT_HEADER: int(time.time() * 1000)},
            delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT,
        )
        t_sent = time.perf_counter()
        try:
            try:
                target = await self._exchange(channel, exchange)
                await target.publish(message, routing_key=queue, mandatory=True)
            except amqp_exc.PublishError as exc:
                if exchange:
                    raise Unroutable(f"nothing is bound to routing key {queue!r} on exchange {exchange!r} at "
                                     f"{self.target.where}: is the service running?") from exc  # fmt: skip
                raise Unroutable(
                    f"no queue named {queue!r} is bound on the broker at {self.target.where}: is the server "
                    "running? (start it with `loadgen serve --amqp-url ...`, or set ?queue= in the target)"
                ) from exc
            except amqp_exc.DeliveryError as exc:
                raise ServerError(f"the broker refused the request (nack): {short(str(exc))}") from exc
            except (amqp_exc.ChannelInvalidStateError, amqp_exc.AMQPError, ConnectionError) as exc:
                raise ConnectError(
                    f"connection to broker lost while sending the request ({self.target.where}): {_describe(exc)}"
                ) from exc
            await turn.done
            t_done = time.perf_counter()
        finally:
            self._turns.pop(correlation_id, None)
        return turn.reply(t_sent, t_done)

    async def _exchange(self, channel: AbstractRobustChannel, name: str) -> AbstractExchange:
        """The exchange to publish to: the default one for "", else a named one, checked to exist once (on a
        channel of its own: a failed check closes the channel it ran on)."""
        if not name:
            return channel.default_exchange
        exchange = self._exchanges.get(name)
        if exchange is None:
            assert self._connection is not None
            probe = await self._connection.channel()
            try:
                await probe.get_exchange(name, ensure=True)
            except amqp_exc.ChannelClosed as exc:
                raise Unroutable(f"no exchange named {name!r} on the broker at {self.target.where}") from exc
            finally:
                with contextlib.suppress(Exception):
                    await probe.close()
            exchange = self._exchanges[name] = await channel.get_exchange(name, ensure=False)
        return exchange

    # -- closing -------------------------------------------------------------------------------------------

    async def close(self) -> None:
        self._closed = True
        resuming, self._resuming = self._resuming, None
        if resuming is not None and not resuming.done():
            resuming.cancel()
        for turn in list(self._turns.values()):
            turn.fail(ConnectError("the AMQP transport was closed"))
        connecting, self._connecting = self._connecting, None
        if connecting is not None and not connecting.done():
            connecting.cancel()
            with contextlib.suppress(BaseException):
                await connecting
        connection, self._connection = self._connection, None
        self._channel = self._reply_queue = None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()


async def _nothing() -> None:
    return None


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "closed"
    return short(str(exc)) or type(exc).__name__


__all__ = [
    "CLOSE_TIMEOUT_S",
    "REPLY_QUEUE_PREFIX",
    "AmqpClient",
    "AmqpTarget",
    "Turn",
    "TurnFactory",
    "connect_error",
    "reply_error",
]
