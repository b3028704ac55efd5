"""The reference server's assembly: one engine, one session store, one chat service, every enabled front.

:func:`serve` runs it in the current event loop until ``stop`` is set or SIGTERM/SIGINT arrives (signals are
handled when it runs in the main thread). :func:`run_in_thread` runs it in a thread with its own event loop,
for tests and embedding: ``with run_in_thread(config) as server: server.urls["rest"]``. Either takes an engine
made elsewhere in place of the one ``config`` names (``engine=``), e.g. a test engine that fails on cue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from loadgen.errors import ConfigError
from loadgen.registry import lookup
from loadgen.server.config import ServerConfig
from loadgen.server.context import render_message
from loadgen.server.engines import make_engine
from loadgen.server.engines.base import Engine
from loadgen.server.fault_control import FaultController
from loadgen.server.faults import FaultLog, FaultSchedule, parse_faults
from loadgen.server.fronts import Front
from loadgen.server.service import ChatService
from loadgen.server.sessions import SessionStore
from loadgen.wire.text import redact_url

logger = logging.getLogger(__name__)

#: front name -> "module:Class"; each is imported only when enabled.
FRONTS: dict[str, str] = {
    "rest": "loadgen.server.rest_front:RestFront",
    "grpc": "loadgen.server.grpc_front:GrpcFront",
    "amqp": "loadgen.server.amqp_front:AmqpFront",
    "websocket": "loadgen.server.ws_front:WsFront",
}

#: Time a front or the engine gets to stop before we give up on it and go on.
FRONT_STOP_TIMEOUT_S = 10.0

T = TypeVar("T")


def load_front(name: str) -> type[Front]:
    """The front class registered under ``name`` (imported now)."""
    cls: type[Front] = lookup(FRONTS, name, "front")
    return cls


def enabled_fronts(config: ServerConfig) -> list[str]:
    names = []
    if config.rest_port is not None:
        names.append("rest")
    if config.grpc_port is not None:
        names.append("grpc")
    if config.amqp_url:
        names.append("amqp")
    if config.ws_port is not None:
        names.append("websocket")
    return names


async def serve(
    config: ServerConfig,
    *,
    on_ready: Callable[[dict[str, str]], None] | None = None,
    stop: asyncio.Event | None = None,
    on_service: Callable[[ChatService], None] | None = None,
    engine: Engine | None = None,
    on_fault: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Run the server until ``stop`` is set (or SIGTERM/SIGINT in the main thread), then stop cleanly.

    ``on_ready({front: url})`` is called once every enabled front accepts requests; ``on_service`` gets the
    chat service first (tests use it to look inside). ``engine`` (not started yet) replaces the one ``config``
    names; it is started and stopped here all the same. ``config.faults`` (a ``--faults`` schedule) is applied
    from the moment every front is ready (:mod:`loadgen.server.fault_control`), each edge passed to ``on_fault``.
    """
    names = enabled_fronts(config)
    if not names:
        raise ConfigError("no front enabled: give --rest-port, --grpc-port, --amqp-url or --ws-port")
    schedule = FaultSchedule(parse_faults(config.faults)) if config.faults else None
    front_classes = [(name, load_front(name)) for name in names]
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = _handle_signals(loop, stop)
    running: Engine | None = None
    fronts: list[Front] = []
    faults: FaultController | None = None
    try:
        running = engine if engine is not None else make_engine(config)
        await running.start()
        sessions = make_session_store(config, running)
        service = ChatService(running, sessions, config)
        if config.otel:
            from loadgen.telemetry.serve_tracing import serve_tracing

            service.tracing = serve_tracing()
        if on_service is not None:
            on_service(service)
        urls: dict[str, str] = {}
        for name, cls in front_classes:
            front = cls(service, config)
            urls[name] = await front.start()
            fronts.append(front)
            logger.info("%s front ready at %s", name, redact_url(urls[name]))
        service.fault_log = FaultLog(started_at=time.time())
        if schedule is not None:
            faults = FaultController(schedule, service, fronts, service.fault_log, on_edge=on_fault).start()
        if on_ready is not None:
            on_ready(dict(urls))
        await stop.wait()
        logger.info("stopping")
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        if faults is not None:
            await faults.close()
        for front in reversed(fronts):
            await _bounded(front.stop(), f"{front.name} front")
        if running is not None:
            await _bounded(running.stop(), "engine")


def _handle_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> list[signal.Signals]:
    """SIGTERM and SIGINT set ``stop`` (only from the main thread); the signals handled, to remove later."""
    handled: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
                handled.append(sig)
    return handled


#: A session keeps at most this many bytes per token of the context window (a word of the sim engine's tokenizer
#: may be any length: without this, turns of a few huge "tokens" would grow a session without end).
SESSION_BYTES_PER_TOKEN = 16


def make_session_store(config: ServerConfig, engine: Engine) -> SessionStore:
    """The store ``config`` describes: each session trimmed to the context window (in tokens of ``engine``'s
    tokenizer, and :data:`SESSION_BYTES_PER_TOKEN` bytes a token), all of them to ``session_max_bytes``."""
    tokenizer = engine.tokenizer
    return SessionStore(
        config.session_capacity,
        config.session_ttl_s,
        max_bytes=config.session_max_bytes,
        keep_tokens=config.context_window,
        keep_bytes=config.context_window * SESSION_BYTES_PER_TOKEN,
        count=lambda message: tokenizer.count(render_message(message)),
    )


async def _bounded(coro: Coroutine[Any, Any, None], what: str) -> None:
    try:
        await asyncio.wait_for(coro, FRONT_STOP_TIMEOUT_S)
    except TimeoutError:
        logger.warning("%s did not stop within %.0f s", what, FRONT_STOP_TIMEOUT_S)
    except Exception:
        logger.exception("%s failed to stop cleanly", what)


class RunningServer:
    """The server running in a thread with its own event loop. Use as a context manager, or ``stop()``."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        start_timeout_s: float = 30.0,
        stop_timeout_s: float = 20.0,
        engine: Engine | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.urls: dict[str, str] = {}
        self.service: ChatService | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="loadgen-server", daemon=True)

    def start(self) -> RunningServer:
        self._thread.start()
        if not self._ready.wait(self.start_timeout_s):
            self.stop()
            raise TimeoutError(f"the server did not become ready within {self.start_timeout_s:g} s")
        if self._error is not None:
            self._thread.join(self.stop_timeout_s)
            raise self._error
        return self

    def _main(self) -> None:
        try:
            asyncio.run(self._amain())
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()

    async def _amain(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()

        def ready(urls: dict[str, str]) -> None:
            self.urls = urls
            self._ready.set()

        def got_service(service: ChatService) -> None:
            self.service = service

        await serve(self.config, on_ready=ready, stop=self._stop_event, on_service=got_service, engine=self.engine)

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
        """Run a coroutine in the server's event loop and return its result (for tests)."""
        if self.loop is None:
            raise RuntimeError("the server is not running")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def stats(self) -> dict[str, Any]:
        """The service's stats, read in the server's loop."""
        service = self.service
        if service is None:
            raise RuntimeError("the server is not running")

        async def read() -> dict[str, Any]:
            return service.stats()

        return self.call(read())

    def stop(self) -> None:
        loop, event = self.loop, self._stop_event
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop just closed
                loop.call_soon_threadsafe(event.set)
        if self._thread.is_alive():
            self._thread.join(self.stop_timeout_s)
            if self._thread.is_alive():
                logger.warning("server thread did not stop within %.0f s", self.stop_timeout_s)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def run_in_thread(
    config: ServerConfig,
    *,
    start_timeout_s: float = 30.0,
    stop_timeout_s: float = 20.0,
    engine: Engine | None = None,
) -> RunningServer:
    """Start the server in a thread (its own event loop) and wait until every front is ready.

    Raises what :func:`serve` raised if it failed to start, or :class:`TimeoutError`.
    """
    server = RunningServer(config, start_timeout_s=start_timeout_s, stop_timeout_s=stop_timeout_s, engine=engine)
    return server.start()


__all__ = [
    "FRONTS",
    "SESSION_BYTES_PER_TOKEN",
    "RunningServer",
    "enabled_fronts",
    "load_front",
    "make_session_store",
    "run_in_thread",
    "serve",
]
