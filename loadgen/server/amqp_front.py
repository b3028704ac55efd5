"""The AMQP front of the reference server: chat turns as request/reply through RabbitMQ (aio-pika).

A thin adapter over the wire contract: messages, headers and URL helpers are :mod:`loadgen.wire.amqp`, the key
is read by :func:`loadgen.wire.auth.parse_bearer`, a failure is answered with the code of its row of
:mod:`loadgen.wire.status`. An aio-pika consumer in the server's own event loop, over the same
:class:`ChatService` as every other front:

- one robust connection to ``config.amqp_url`` (it reconnects, re-declares the queue and re-subscribes by
  itself after the broker restarts), one channel with QoS ``prefetch_count = config.amqp_prefetch``: at most
  that many requests are in the server at once, the rest wait in the queue;
- the request queue ``config.amqp_queue`` is declared **non-durable and auto-delete**: a reference server's
  requests are worth nothing after it stops, and the broker deletes the queue once its last consumer goes, so
  a stopped server leaves nothing behind; several servers may consume one queue (competing consumers). A queue
  that already exists with other arguments (declared by someone else, e.g. durable) is used as it is, and
  never deleted: this front deletes nothing;
- each request runs in its own task (aio-pika starts one per delivery): ``service.chat(...)``, then one reply
  message per chunk to ``reply_to`` through the default exchange with the request's ``correlation_id`` (with
  ``--amqp-coalesce ready``, the default, one message per batch of the chunks the engine had ready at the same
  moment, :class:`loadgen.server.ready.ReadyBatches`: a chunk that had to be waited for goes out alone at once), the
  last one with ``finish_reason`` and usage (or one whole reply when the request does not stream); the first one
  says ``"session": "new"`` when the server did not hold the session the request named
  (:mod:`loadgen.wire.session`). The request is acked once its reply went out, and also after an error reply.
  Replies are published without publisher confirms (no broker round trip between two chunks) and not
  ``mandatory`` (a client that went away loses its replies, nothing else happens);
- a request whose ``expiration`` has already passed when it reaches the front (the client's publish time is
  in the header ``x-loadgen-sent-at-ms``) is acked and dropped unserved; a stream whose client's deadline
  passes mid-way is stopped, freeing its engine slot.

Errors (see :mod:`loadgen.server.fronts`) are a final message with ``error.code``: ``bad_request``
(:class:`BadChatRequest`, malformed JSON), ``unauthorized`` (wrong or missing key, sent as the header
``authorization: Bearer <key>``), ``overloaded`` (:class:`EngineOverloaded`), ``engine_stopped`` (the engine
stopped mid-reply), ``internal``.

:meth:`AmqpFront.start` returns the broker URL as given, credentials included, with ``?queue=NAME``: the
embedded launcher hands it to clients on the same machine. It is never logged (only with the password hidden).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, ClassVar

import aio_pika
import aiormq.exceptions as amqp_exc
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustConnection, AbstractRobustQueue
from yarl import URL

from loadgen.errors import ConfigError, WireError
from loadgen.server.fronts import Front
from loadgen.server.ready import ReadyBatches
from loadgen.server.service import failure_message, failure_of, is_bug
from loadgen.telemetry.serve_tracing import carrier_of
from loadgen.types import Usage
from loadgen.wire.amqp import (
    CHUNK_TYPE,
    CONTENT_TYPE,
    SENT_AT_HEADER,
    Chunk,
    broker_user,
    broker_where,
    decode_request,
    encode_chunk,
    failure_chunk,
    several,
    split_target,
    with_queue,
    with_reconnect_interval,
)
from loadgen.wire.amqp_link import LinkState, connect_failure_reason, quiet_connection_logs, quiet_frame_logs
from loadgen.wire.auth import AUTH_HEADER, parse_bearer
from loadgen.wire.session import SESSION_NEW
from loadgen.wire.text import redact_url

if TYPE_CHECKING:
    from loadgen.server.config import ServerConfig
    from loadgen.server.service import ChatService, ChatStream

log = logging.getLogger(__name__)

#: How long stop() lets in-flight requests finish before cancelling them.
STOP_GRACE_S = 1.0
#: Connecting to the broker at start (and each step of the set-up) may take this long.
CONNECT_TIMEOUT_S = 10.0
#: ``--amqp-coalesce ready``: at most this many token chunks in one reply message.
MAX_CHUNKS_PER_MESSAGE = 256


class AmqpFrontError(ConfigError):
    """The AMQP front could not start (broker unreachable, login refused, queue locked by another client): a
    target error found before any request, so ``loadgen serve`` says it in one line and exits 2."""


def bearer_key(headers: dict[str, Any] | None) -> str | None:
    """The API key of the ``authorization`` header, read by the one rule of :mod:`loadgen.wire.auth`."""
    return parse_bearer((headers or {}).get(AUTH_HEADER))


def deadline_of(message: AbstractIncomingMessage) -> float | None:
    """The wall-clock time (``time.time()``) after which the client no longer waits for this request: its
    publish time (header) plus its ``expiration``; ``None`` when it did not say both."""
    expiration = message.expiration  # seconds, as aio-pika decodes it
    sent_at = (message.headers or {}).get(SENT_AT_HEADER)
    if not isinstance(expiration, int | float) or isinstance(sent_at, bool) or not isinstance(sent_at, int | float):
        return None
    return float(sent_at) / 1000.0 + float(expiration)


class AmqpFront(Front):
    name: ClassVar[str] = "amqp"

    def __init__(self, service: ChatService, config: ServerConfig) -> None:
        super().__init__(service, config)
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._queue: AbstractRobustQueue | None = None
        self._consumer_tag: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._where = "the broker"
        self._link = LinkState(log, "AMQP front", self._where)
        #: requests seen, by outcome (for tests and stats)
        self.counts: dict[str, int] = dict.fromkeys(
            ("received", "replied", "errors", "expired", "no_reply_to", "publish_failed"), 0
        )

    # -- life cycle ------------------------------------------------------------------------------------------------

    async def start(self) -> str:
        if not self.config.amqp_url:
            raise AmqpFrontError("no --amqp-url given")
        queue_name = self.config.amqp_queue
        try:
            broker_url, _ = split_target(self.config.amqp_url)  # a ?queue= in the URL gives way to amqp_queue
            url = urllib.parse.urlsplit(broker_url)
            _port = url.port  # ValueError for a port that is not a number
            with_queue(broker_url, queue_name)  # validates the name
        except (ValueError, WireError) as exc:
            raise AmqpFrontError(f"bad AMQP URL or queue: {exc}") from None
        if url.scheme.lower() not in ("amqp", "amqps") or not url.hostname:
            raise AmqpFrontError("the AMQP URL must be amqp(s)://user:pass@host[:port]/vhost")
        self._where = broker_where(broker_url)
        self._link = LinkState(log, "AMQP front", self._where)
        broker_url = with_reconnect_interval(broker_url)
        quiet_frame_logs()
        quiet_connection_logs()
        connection = aio_pika.RobustConnection(
            URL(broker_url), client_properties={"connection_name": f"chat-loadgen server ({queue_name})"}
        )
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await connection.connect(timeout=CONNECT_TIMEOUT_S)
                channel = await connection.channel(publisher_confirms=False)
                await channel.set_qos(prefetch_count=max(1, self.config.amqp_prefetch))
                queue = await self._declare(connection, channel, queue_name)
                self._consumer_tag = await queue.consume(self._on_request)
        except BaseException as exc:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(connection.close(), CONNECT_TIMEOUT_S)
            if isinstance(exc, AmqpFrontError | asyncio.CancelledError):
                raise
            reason = connect_failure_reason(
                exc, where=self._where, user=broker_user(broker_url), timeout_s=CONNECT_TIMEOUT_S
            )
            raise AmqpFrontError(f"AMQP front cannot start: {reason}") from exc
        connection.close_callbacks.add(self._on_connection_lost)
        connection.reconnect_callbacks.add(self._on_reconnected)
        self._connection, self._channel, self._queue = connection, channel, queue
        log.info(
            "AMQP front consuming queue %r on %s (prefetch %d)",
            queue_name,
            redact_url(self.config.amqp_url),
            self.config.amqp_prefetch,
        )
        return with_queue(self.config.amqp_url, queue_name)

    async def _declare(
        self, connection: AbstractRobustConnection, channel: AbstractRobustChannel, name: str
    ) -> AbstractRobustQueue:
        """Our queue (non-durable, auto-delete), or one that exists with other arguments, used as it is."""
        probe = await connection.channel(publisher_confirms=False)
        try:
            await probe.declare_queue(name, durable=False, auto_delete=True)
            ours = True
        except amqp_exc.ChannelPreconditionFailed:
            ours = False  # it exists, declared differently: not ours to shape (or to delete)
        except amqp_exc.ChannelAccessRefused as exc:
            raise AmqpFrontError(f"AMQP front cannot use queue {name!r}: {exc}") from exc
        except amqp_exc.ChannelLockedResource as exc:
            raise AmqpFrontError(
                f"AMQP front cannot use queue {name!r}: another connection holds it exclusively"
            ) from exc
        finally:
            if not probe.is_closed:
                with contextlib.suppress(Exception):
                    await probe.close()
        if ours:
            return await channel.declare_queue(name, durable=False, auto_delete=True)
        log.info("AMQP front: queue %r exists with other arguments; using it as it is", name)
        return await channel.declare_queue(name, passive=True)

    async def stop(self) -> None:
        connection, self._connection = self._connection, None
        queue, tag = self._queue, self._consumer_tag
        self._queue = self._consumer_tag = None
        if connection is None:
            return
        if queue is not None and tag is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(queue.cancel(tag), STOP_GRACE_S * 2)  # the broker auto-deletes our queue
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=STOP_GRACE_S)
        self._channel = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), CONNECT_TIMEOUT_S)

    async def go_down(self) -> None:
        """The consumer is cancelled (the broker deletes our auto-delete queue with it, so a client's publish comes
        back unroutable) and the requests in flight are cancelled, unanswered. The connection stays."""
        queue, tag = self._queue, self._consumer_tag
        self._consumer_tag = None
        if queue is not None and tag is not None:
            await asyncio.wait_for(queue.cancel(tag), CONNECT_TIMEOUT_S)
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_GRACE_S)

    async def come_up(self) -> None:
        """The same queue declared again (as before: ours, or someone else's as it is) and consumed."""
        queue = self._queue
        if queue is None or self._consumer_tag is not None:
            return
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await queue.declare()
            self._consumer_tag = await queue.consume(self._on_request)

    def _on_connection_lost(self, _sender: Any, exc: BaseException | None = None) -> None:
        if self._connection is None:
            return  # stopping
        self._link.went_down(exc)

    def _on_reconnected(self, _sender: Any) -> None:
        self._link.came_back()

    # -- one request -----------------------------------------------------------------------------------------------

    async def _on_request(self, message: AbstractIncomingMessage) -> None:
        received_at = time.monotonic()
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.counts["received"] += 1
        try:
            await self._serve(message, received_at)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("AMQP front: a request failed")
        finally:
            if task is not None:
                self._tasks.discard(task)
            with contextlib.suppress(Exception):
                await message.ack()  # a no-op if already acked; fails harmlessly when the channel is gone

    async def _serve(self, message: AbstractIncomingMessage, received_at: float) -> None:
        reply_to = message.reply_to
        if not reply_to:
            self.counts["no_reply_to"] += 1
            log.warning("AMQP front: a request without reply_to was dropped")
            return
        deadline = deadline_of(message)
        if deadline is not None and time.time() > deadline:
            self.counts["expired"] += 1
            return  # the client gave up already: do no work for it
        replier = _Replier(self, message, reply_to)
        try:
            request = decode_request(message.body, default_max_tokens=self.config.default_max_tokens)
            api_key = bearer_key(message.headers)
            trace = None if self.service.tracing is None else carrier_of(message.headers)  # --otel: the client's span
            stream = await self.service.chat(request, api_key=api_key, received_at=received_at, trace=trace)
        except Exception as exc:
            await replier.fail(exc)
            return
        replier.session_new = stream.session_new
        try:
            await self._stream(replier, stream, streaming=request.stream, deadline=deadline)
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()

    async def _stream(self, replier: _Replier, stream: ChatStream, *, streaming: bool, deadline: float | None) -> None:
        parts: list[str] = []
        batches = ReadyBatches(stream, limit=1 if self.config.amqp_coalesce == "off" else MAX_CHUNKS_PER_MESSAGE)
        try:
            async for batch in batches:
                if streaming:
                    message = several(replier.seq, [(chunk.text, chunk.n_tokens) for chunk in batch])
                    if not await replier.send(message):
                        return
                else:
                    parts.extend(chunk.text for chunk in batch)
                if deadline is not None and time.time() > deadline:
                    self.counts["expired"] += 1
                    return  # the client has stopped waiting: stop generating (aclose frees the slot)
        except Exception as exc:
            await replier.fail(exc)
            return
        finally:
            if batches.waiting:  # stopped early while the next chunk was being waited for: the stream goes first
                with contextlib.suppress(Exception):
                    await stream.aclose()
                batches.close()
        usage = Usage(prompt_tokens=stream.prompt_tokens, completion_tokens=stream.completion_tokens)
        final = Chunk(
            seq=replier.seq,
            text="" if streaming else "".join(parts),
            tokens=0 if streaming else stream.completion_tokens,
            final=True,
            finish_reason=stream.finish_reason or "stop",
            usage=usage,
        )
        if await replier.send(final):
            self.counts["replied"] += 1

    async def _publish(self, body: bytes, correlation_id: str | None, reply_to: str) -> bool:
        channel = self._channel
        if channel is None:
            return False
        message = aio_pika.Message(
            body,
            content_type=CONTENT_TYPE,
            correlation_id=correlation_id,
            type=CHUNK_TYPE,
            delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT,
        )
        try:
            await channel.default_exchange.publish(message, routing_key=reply_to, mandatory=False)
        except (amqp_exc.AMQPError, ConnectionError, RuntimeError) as exc:
            self.counts["publish_failed"] += 1
            log.debug("AMQP front: a reply could not be published: %s", exc)
            return False
        return True


class _Replier:
    """Publishes the reply messages of one request, numbering them."""

    __slots__ = ("_correlation_id", "_front", "_reply_to", "seq", "session_new")

    def __init__(self, front: AmqpFront, message: AbstractIncomingMessage, reply_to: str) -> None:
        self._front = front
        self._correlation_id = message.correlation_id
        self._reply_to = reply_to
        self.seq = 0
        self.session_new = False  # the first reply says so (loadgen.wire.session)

    async def send(self, chunk: Chunk) -> bool:
        if self.seq == 0 and self.session_new:
            chunk = dataclasses.replace(chunk, session=SESSION_NEW)
        ok = await self._front._publish(encode_chunk(chunk), self._correlation_id, self._reply_to)
        if ok:
            self.seq += 1
        return ok

    async def fail(self, exc: Exception) -> None:
        """Answer ``exc`` with the error reply of its row of the status table (an internal error is logged)."""
        failure = failure_of(exc)
        if is_bug(exc):
            log.error("AMQP front: a request failed", exc_info=exc)
        self._front.counts["errors"] += 1
        await self.send(failure_chunk(self.seq, failure, failure_message(failure, exc)))


__all__ = ["AmqpFront", "AmqpFrontError", "bearer_key", "deadline_of"]
