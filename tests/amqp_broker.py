"""Helpers for tests that need the RabbitMQ broker on 127.0.0.1:5672 (guest/guest).

Without a broker the tests skip with :data:`tests.conftest.BROKER_HINT`; in CI (``CI=true``, where ``.ci/run``
starts one) they FAIL instead: :func:`require_broker`.

Also here: ``rabbitmqctl`` helpers (list the queues, stop and start the broker's app for fault tests, always
restored), a unique queue name per test, a tiny AMQP client for crafting raw messages (it runs on the test
process's :class:`~loadgen.transports.bridge.AsyncBridge` loop), and a TLS-terminating proxy in front of the
broker for ``amqps://`` tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.broker_proxy import CutProxy
from tests.conftest import BROKER_HINT, IN_CI, broker_available, make_certificate, require_broker

T = TypeVar("T")

BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/"
#: A loopback port no broker listens on (the "missing broker" tests).
NO_BROKER_PORT = 5999


def unique_queue(prefix: str = "loadgen.test") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:12]}"


# ---------------------------------------------------------------------------------------------------------------
# rabbitmqctl


def rabbitmqctl_path() -> str:
    path = shutil.which("rabbitmqctl") or ("/usr/sbin/rabbitmqctl" if Path("/usr/sbin/rabbitmqctl").exists() else None)
    if path is None:
        reason = "rabbitmqctl is not installed (apt-get install rabbitmq-server)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def rabbitmqctl(*args: str, timeout: float = 60.0) -> str:
    done = subprocess.run([rabbitmqctl_path(), *args], capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


@dataclass(frozen=True)
class QueueInfo:
    name: str
    consumers: int
    ready: int
    unacked: int
    durable: bool
    auto_delete: bool


def list_queues() -> dict[str, QueueInfo]:
    """Every queue of vhost ``/`` as the broker lists it now."""
    out = rabbitmqctl(
        "list_queues", "-q", "--formatter", "json",
        "name", "consumers", "messages_ready", "messages_unacknowledged", "durable", "auto_delete",
    )  # fmt: skip
    rows: list[dict[str, Any]] = json.loads(out or "[]")
    return {
        r["name"]: QueueInfo(
            name=r["name"],
            consumers=int(r["consumers"]),
            ready=int(r["messages_ready"]),
            unacked=int(r["messages_unacknowledged"]),
            durable=bool(r["durable"]),
            auto_delete=bool(r["auto_delete"]),
        )
        for r in rows
    }


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@contextlib.contextmanager
def broker_app_stopped(restart_timeout: float = 120.0) -> Iterator[Callable[[], None]]:
    """Stop the broker's app (``rabbitmqctl stop_app``: much faster than restarting the server) and ALWAYS
    start it again on the way out, even when the test failed. Yields ``start()`` to restart it earlier."""
    rabbitmqctl_path()
    started = False

    def start() -> None:
        nonlocal started
        if started:
            return
        started = True
        rabbitmqctl("start_app", timeout=restart_timeout)
        rabbitmqctl("await_startup", timeout=restart_timeout)
        if not wait_until(broker_available, restart_timeout):
            raise RuntimeError("the broker did not come back on 127.0.0.1:5672")

    rabbitmqctl("stop_app", timeout=restart_timeout)
    try:
        yield start
    finally:
        start()


# ---------------------------------------------------------------------------------------------------------------
# a raw AMQP client for crafting messages (on the test process's bridge loop)


class RawAmqp:
    """A plain aio-pika connection and channel on this process's asyncio bridge loop, for tests that publish or
    consume messages by hand. Every method blocks the calling thread until done."""

    def __init__(self, url: str = BROKER_URL) -> None:
        from loadgen.transports.bridge import AsyncBridge

        self.bridge = AsyncBridge.get()
        self.url = url
        self.connection: Any = None
        self.channel: Any = None
        self.run(self._open())

    def run(self, coro: Awaitable[T], timeout: float = 30.0) -> T:
        async def wrapper() -> T:
            return await coro

        return self.bridge.run(wrapper, timeout=timeout)

    async def _open(self) -> None:
        import aio_pika

        self.connection = await aio_pika.connect(self.url, timeout=10)
        self.channel = await self.connection.channel()

    def declare(self, name: str, **kwargs: Any) -> Any:
        return self.run(self.channel.declare_queue(name, **kwargs))

    def delete(self, name: str) -> None:
        async def go() -> None:
            channel = await self.connection.channel()
            with contextlib.suppress(Exception):
                await channel.queue_delete(name)
            with contextlib.suppress(Exception):
                await channel.close()

        self.run(go())

    def publish(self, routing_key: str, body: bytes, **properties: Any) -> None:
        import aio_pika

        self.run(self.channel.default_exchange.publish(aio_pika.Message(body, **properties), routing_key=routing_key))

    def reply_queue(self) -> tuple[str, Callable[[float], list[Any]]]:
        """An exclusive queue and ``collect(seconds)``: the messages it received by then (IncomingMessages)."""
        received: list[Any] = []

        async def go() -> str:
            queue = await self.channel.declare_queue(f"loadgen.test.reply.{uuid.uuid4().hex[:8]}", exclusive=True)

            async def on_message(message: Any) -> None:
                received.append(message)

            await queue.consume(on_message, no_ack=True)
            name: str = queue.name
            return name

        name = self.run(go())

        def collect(seconds: float) -> list[Any]:
            time.sleep(seconds)
            return list(received)

        return name, collect

    def serve(self, queue: str, handler: Callable[[Any, Callable[[bytes], Awaitable[None]]], Awaitable[None]]) -> None:
        """Consume ``queue`` (declared auto-delete) and call ``handler(message, reply)`` for each request, where
        ``await reply(body)`` publishes one reply message to the request's ``reply_to``."""
        import aio_pika

        async def go() -> None:
            q = await self.channel.declare_queue(queue, auto_delete=True)

            async def on_message(message: Any) -> None:
                async def reply(body: bytes) -> None:
                    await self.channel.default_exchange.publish(
                        aio_pika.Message(body, correlation_id=message.correlation_id),
                        routing_key=message.reply_to,
                        mandatory=False,
                    )

                await handler(message, reply)
                await message.ack()

            await q.consume(on_message)

        self.run(go())

    def transit_ms(self, count: int = 20) -> list[float]:
        """One message's trip through the broker, ``count`` times: from the publish call to the consumer callback
        (the same path, through aio-pika and the broker, as each leg of a chat turn)."""
        import asyncio

        import aio_pika

        async def go() -> list[float]:
            queue = await self.channel.declare_queue(f"loadgen.test.ping.{uuid.uuid4().hex[:8]}", exclusive=True)
            arrived: asyncio.Queue[float] = asyncio.Queue()

            async def on_message(message: Any) -> None:
                arrived.put_nowait(time.perf_counter())

            tag = await queue.consume(on_message, no_ack=True)
            trips: list[float] = []
            for _ in range(count):
                sent = time.perf_counter()
                await self.channel.default_exchange.publish(aio_pika.Message(b"ping"), routing_key=queue.name)
                trips.append((await asyncio.wait_for(arrived.get(), 5) - sent) * 1000)
                await asyncio.sleep(0.005)
            await queue.cancel(tag)
            await queue.delete()
            return trips

        return self.bridge.run(go, timeout=60)

    def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(Exception):
                self.run(self.connection.close(), timeout=10)
            self.connection = None


# ---------------------------------------------------------------------------------------------------------------
# TLS in front of the broker (amqps:// tests)


class TlsProxy(CutProxy):
    """Terminates TLS on a loopback port and forwards the bytes to the broker's plain port (threads)."""

    def __init__(self, cert: Path, key: Path, upstream: tuple[str, int] = ("127.0.0.1", 5672)) -> None:
        self._ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ctx.load_cert_chain(cert, key)
        super().__init__(upstream)

    def _wrap(self, raw: socket.socket) -> socket.socket:
        return self._ctx.wrap_socket(raw, server_side=True)

    def stop(self) -> None:
        self.close()


__all__ = [
    "BROKER_HINT",
    "BROKER_URL",
    "NO_BROKER_PORT",
    "QueueInfo",
    "RawAmqp",
    "TlsProxy",
    "broker_app_stopped",
    "broker_available",
    "list_queues",
    "make_certificate",
    "rabbitmqctl",
    "require_broker",
    "unique_queue",
    "wait_until",
]


def broker_round_trip_ms(pings: int = 60) -> float:
    """The broker's own request/reply floor: the median time for a message to go client -> broker -> echoing
    consumer -> broker -> client, with plain aio-pika (no project code), in a loop of its own."""
    import statistics

    import aio_pika

    async def measure() -> float:
        a = await aio_pika.connect(BROKER_URL, timeout=10)
        b = await aio_pika.connect(BROKER_URL, timeout=10)
        try:
            ca, cb = await a.channel(), await b.channel()
            back = await ca.declare_queue("", exclusive=True, auto_delete=True)
            echo = await cb.declare_queue("", exclusive=True, auto_delete=True)
            arrivals: asyncio.Queue[float] = asyncio.Queue()

            async def on_echo(message: Any) -> None:
                await cb.default_exchange.publish(aio_pika.Message(message.body), routing_key=back.name)

            async def on_back(message: Any) -> None:
                arrivals.put_nowait(time.perf_counter())

            await echo.consume(on_echo, no_ack=True)
            await back.consume(on_back, no_ack=True)
            trips = []
            for _ in range(pings):
                sent = time.perf_counter()
                await ca.default_exchange.publish(aio_pika.Message(b"ping"), routing_key=echo.name)
                trips.append((await asyncio.wait_for(arrivals.get(), 10) - sent) * 1000.0)
                await asyncio.sleep(0.005)
            return statistics.median(trips)
        finally:
            await a.close()
            await b.close()

    return asyncio.run(measure())
