"""Run asyncio code (aio-pika) from gevent greenlets, or from plain threads, without blocking either.

One asyncio event loop per process, in a real OS thread, made on first use in the process that uses it
(Locust may fork after importing the locustfile: the pid is recorded and a forked child builds its own).
Under gevent monkey patching every piece of it is one gevent did not patch (see ``../shared/FIELD-NOTES.md``,
*aio-pika (asyncio) from gevent*):

- the thread is started with ``gevent.monkey.get_original('_thread', 'start_new_thread')`` (a patched
  ``threading.Thread`` would be a greenlet of the calling thread's hub);
- the loop runs on ``get_original('selectors', 'DefaultSelector')`` (gevent's selector would wait on a hub);
- the GIL switch interval drops from 5 ms to 1 ms (:data:`GEVENT_SWITCH_INTERVAL_S`): the hub never waits
  longer than that for the GIL while the loop thread works;
- the loop's default executor (``run_in_executor(None, ...)``: name resolution, aiormq's SSL context) runs
  each job on a real thread of its own and resolves names with the ORIGINAL ``socket.getaddrinfo``; asyncio's
  stock ThreadPoolExecutor would make patched threads, i.e. greenlets of a hub that never runs, and a connect
  to ``localhost`` hung forever.

A greenlet hands work to the loop with ``loop.call_soon_threadsafe`` and waits on a
:class:`gevent.event.AsyncResult`; the task's done-callback (in the loop thread) wakes it through the
greenlet's own hub, ``hub.loop.run_callback_threadsafe(result.set, outcome)``. On timeout, or when the
greenlet is killed (``GreenletExit``: Locust stopping a user), the task is cancelled with
``call_soon_threadsafe(task.cancel)``. Nothing here ever blocks the hub: ``run_coroutine_threadsafe(...)
.result()`` from a greenlet was measured stuck forever in 4 runs of 7, and waiting through gevent's threadpool
in 3 of 9. Without gevent (server-side tests, scripts), a caller thread waits on a plain
:class:`threading.Event` instead.

Usage::

    bridge = AsyncBridge.get()
    value = bridge.run(lambda: some_coroutine(args), timeout=5.0)   # TimeoutError, or the coroutine's exception

The coroutine is created inside the loop thread (``coro_factory`` is called there), so a call cancelled before
it starts never leaves an un-awaited coroutine behind.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib
import os
import sys
import time
from collections.abc import Awaitable, Callable
from contextvars import Context
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar, cast

T = TypeVar("T")

#: How long :meth:`AsyncBridge.stop` waits for pending tasks and the thread to end.
STOP_TIMEOUT_S = 5.0
#: The GIL switch interval set in a gevent-patched process when the bridge starts (CPython's default is 5 ms).
#: The loop thread is a second busy thread in a process that otherwise has one: while it holds the GIL (parsing
#: a burst of reply frames) the hub waits for it up to the switch interval. Measured with the loop thread busy in
#: 20 ms bursts: a 10 ms ticker's lag p50 5.3 ms / p99 ~9 ms at 5 ms, p50 1.3 ms / p99 ~5 ms at 1 ms. Only a
#: default interval is changed: one set on purpose by the user stays.
GEVENT_SWITCH_INTERVAL_S = 0.001
_DEFAULT_SWITCH_INTERVAL_S = 0.005


class BridgeError(RuntimeError):
    """The bridge cannot run the call (stopped, or called from its own loop thread)."""


# ---------------------------------------------------------------------------------------------------------------
# gevent detection and the originals gevent replaced


def gevent_patched() -> bool:
    """True when gevent has monkey-patched ``threading`` in this process (any Locust process, for one)."""
    monkey = sys.modules.get("gevent.monkey")  # never import gevent ourselves: nobody patched if it is not loaded
    return monkey is not None and bool(monkey.is_module_patched("threading"))


def original(module: str, name: str) -> Any:
    """``module.name`` as it was before gevent's monkey patching (the current one where nothing is patched)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        return monkey.get_original(module, name)
    return getattr(importlib.import_module(module), name)


# ---------------------------------------------------------------------------------------------------------------
# the loop


class _BridgeLoop(asyncio.SelectorEventLoop):
    """A selector loop whose default executor makes real threads, never patched ones."""

    def __init__(self) -> None:
        super().__init__(original("selectors", "DefaultSelector")())
        self._start_thread: Callable[..., int] = original("_thread", "start_new_thread")
        self._getaddrinfo: Callable[..., Any] = original("socket", "getaddrinfo")
        self._getnameinfo: Callable[..., Any] = original("socket", "getnameinfo")

    def run_in_executor(  # type: ignore[override]  # typeshed's TypeVarTuple signature, loosened
        self, executor: Any, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        if executor is not None:
            return super().run_in_executor(executor, func, *args)
        self._check_closed()  # type: ignore[attr-defined]  # BaseEventLoop's own guard
        future: asyncio.Future[T] = self.create_future()

        def work() -> None:
            try:
                value = func(*args)
            except BaseException as exc:  # delivered to the awaiting task, whatever it is
                self._deliver(future, None, exc)
            else:
                self._deliver(future, value, None)

        self._start_thread(work, ())
        return future

    def _deliver(self, future: asyncio.Future[T], value: T | None, exc: BaseException | None) -> None:
        def settle() -> None:
            if future.done():
                return
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(cast(T, value))

        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits any more
            self.call_soon_threadsafe(settle)

    async def getaddrinfo(
        self, host: Any, port: Any, *, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[tuple[Any, ...]]:
        result: list[tuple[Any, ...]] = await self.run_in_executor(
            None, self._getaddrinfo, host, port, family, type, proto, flags
        )
        return result

    async def getnameinfo(self, sockaddr: Any, flags: int = 0) -> tuple[str, str]:
        result: tuple[str, str] = await self.run_in_executor(None, self._getnameinfo, sockaddr, flags)
        return result


# ---------------------------------------------------------------------------------------------------------------
# one call across the bridge


@dataclass(slots=True)
class _Outcome(Generic[T]):
    value: T | None = None
    error: BaseException | None = None
    cancelled: bool = False


class _Call(Generic[T]):
    """One coroutine run on the loop for one waiting caller. Its methods run in the loop thread."""

    __slots__ = ("_deliver", "_factory", "_want_cancel", "task")

    def __init__(self, factory: Callable[[], Awaitable[T]], deliver: Callable[[_Outcome[T]], None]) -> None:
        self._factory = factory
        self._deliver = deliver
        self._want_cancel = False
        self.task: asyncio.Future[T] | None = None

    def start(self) -> None:
        if self._want_cancel:
            self._deliver(_Outcome(cancelled=True))
            return
        try:
            task = asyncio.ensure_future(self._factory())
        except BaseException as exc:  # the factory itself failed: the caller gets the exception
            self._deliver(_Outcome(error=exc))
            return
        self.task = task
        task.add_done_callback(self._done)

    def start_cancelled(self) -> None:
        self._deliver(_Outcome(cancelled=True))

    def cancel(self) -> None:
        self._want_cancel = True
        if self.task is not None:
            self.task.cancel()

    def _done(self, task: asyncio.Future[T]) -> None:
        if task.cancelled():
            self._deliver(_Outcome(cancelled=True))
            return
        exc = task.exception()
        self._deliver(_Outcome(error=exc) if exc is not None else _Outcome(value=task.result()))


# ---------------------------------------------------------------------------------------------------------------
# the bridge


class AsyncBridge:
    """The process's asyncio loop in a real thread; :meth:`run` a coroutine on it from a greenlet or a thread."""

    _instance: ClassVar[AsyncBridge | None] = None
    #: Bridges inherited through a fork: their thread does not exist in the child. Kept referenced so that no
    #: destructor ever touches a loop whose state another process owns.
    _abandoned: ClassVar[list[AsyncBridge]] = []

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop: asyncio.AbstractEventLoop = _BridgeLoop()
        self._thread_ident: int | None = None
        self._running = True
        self._finished = False
        self._stopping = False
        if gevent_patched() and abs(sys.getswitchinterval() - _DEFAULT_SWITCH_INTERVAL_S) < 1e-9:
            sys.setswitchinterval(GEVENT_SWITCH_INTERVAL_S)
        start_new_thread: Callable[..., int] = original("_thread", "start_new_thread")
        start_new_thread(self._thread_main, ())

    # -- the process's bridge ----------------------------------------------------------------------------------

    @classmethod
    def get(cls) -> AsyncBridge:
        """This process's bridge, made on first use (and again in a forked child, or after :meth:`stop`)."""
        bridge = cls._instance
        if bridge is not None and bridge.pid == os.getpid() and not bridge._stopping:
            return bridge
        # A real lock, for plain threads racing here without gevent. Building a bridge never yields to another
        # greenlet, so under gevent the lock is never held across a switch (it cannot block the hub).
        with _lock():
            bridge = cls._instance
            if bridge is not None and bridge.pid == os.getpid() and not bridge._stopping:
                return bridge
            if bridge is not None and bridge.pid != os.getpid():
                cls._abandoned.append(bridge)
            bridge = cls._instance = cls()
        atexit.register(bridge._stop_at_exit)
        return bridge

    @classmethod
    def current(cls) -> AsyncBridge | None:
        """This process's running bridge, if one was made (never makes one)."""
        bridge = cls._instance
        if bridge is not None and bridge.pid == os.getpid() and not bridge._stopping:
            return bridge
        return None

    # -- the loop thread -------------------------------------------------------------------------------------

    def _thread_main(self) -> None:
        self._thread_ident = original("_thread", "get_ident")()
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            # stop() was called: calls still queued start as cancelled (they see _stopping); running tasks are
            # cancelled and may unwind; then the loop closes
            for _ in range(3):
                loop.run_until_complete(asyncio.sleep(0))
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                if not pending:
                    break
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.wait(pending, timeout=STOP_TIMEOUT_S))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
            self._running = False
            self._finished = True

    @property
    def in_loop_thread(self) -> bool:
        return self._thread_ident is not None and original("_thread", "get_ident")() == self._thread_ident

    # -- calls ---------------------------------------------------------------------------------------------------

    def run(self, coro_factory: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        """Run ``coro_factory()`` on the loop and return its result (or raise its exception).

        Raises :class:`TimeoutError` after ``timeout`` seconds (the task is cancelled), :class:`BridgeError` if
        the bridge stopped or when called from the loop thread itself. If the waiting greenlet is killed
        (``GreenletExit``) or the waiting thread interrupted, the task is cancelled and the exception goes on.
        """
        if self.pid != os.getpid():
            raise BridgeError("this asyncio bridge belongs to another process (forked): use AsyncBridge.get()")
        if self._stopping or not self._running:
            raise BridgeError("the asyncio bridge has stopped")
        if self.in_loop_thread:
            raise BridgeError("AsyncBridge.run() called from its own loop thread: await the coroutine instead")
        if timeout is not None and timeout <= 0:
            raise TimeoutError("the time allowed for the call had already run out")
        if gevent_patched():
            outcome = self._run_gevent(coro_factory, timeout)
        else:
            outcome = self._run_threaded(coro_factory, timeout)
        if outcome.cancelled:
            raise BridgeError("the call was cancelled on the asyncio loop (the bridge is stopping)")
        if outcome.error is not None:
            raise outcome.error
        return cast(T, outcome.value)

    def _submit(self, call: _Call[Any]) -> None:
        def start() -> None:
            if self._stopping:
                call.start_cancelled()
            else:
                call.start()

        try:
            self.loop.call_soon_threadsafe(start, context=Context())
        except RuntimeError as exc:  # the loop was closed under us
            raise BridgeError("the asyncio bridge has stopped") from exc

    def _cancel(self, call: _Call[Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone, and the task with it
            self.loop.call_soon_threadsafe(call.cancel)

    def _run_gevent(self, coro_factory: Callable[[], Awaitable[T]], timeout: float | None) -> _Outcome[T]:
        import gevent  # only ever reached in a gevent-patched process
        from gevent.event import AsyncResult

        hub = gevent.get_hub()  # the CALLER's hub: woken from the loop thread, thread-safely
        result: Any = AsyncResult()

        def deliver(outcome: _Outcome[T]) -> None:  # loop thread
            hub.loop.run_callback_threadsafe(result.set, outcome)

        call: _Call[T] = _Call(coro_factory, deliver)
        self._submit(call)
        try:
            outcome = result.wait(timeout)  # yields to the hub; GreenletExit comes out of here
        except BaseException:
            self._cancel(call)
            raise
        if not result.ready():
            self._cancel(call)
            raise TimeoutError(f"no result from the asyncio loop within {timeout:g}s")
        return cast(_Outcome[T], outcome)

    def _run_threaded(self, coro_factory: Callable[[], Awaitable[T]], timeout: float | None) -> _Outcome[T]:
        import threading  # not patched here (gevent_patched() said so)

        done = threading.Event()
        box: list[_Outcome[T]] = []

        def deliver(outcome: _Outcome[T]) -> None:  # loop thread
            box.append(outcome)
            done.set()

        call: _Call[T] = _Call(coro_factory, deliver)
        self._submit(call)
        try:
            finished = done.wait(timeout)
        except BaseException:
            self._cancel(call)
            raise
        if not finished:
            self._cancel(call)
            raise TimeoutError(f"no result from the asyncio loop within {timeout:g}s")
        return box[0]

    # -- stopping ------------------------------------------------------------------------------------------------

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Cancel pending tasks, stop the loop and let its thread end; True if it ended within ``timeout``.

        Waits by sleeping in short steps (``time.sleep`` is gevent's under patching), never on a real lock, so
        a greenlet may call it. A no-op in a forked child (the thread is the parent's).
        """
        if self.pid != os.getpid():
            return False
        self._stopping = True
        if type(self)._instance is self:
            type(self)._instance = None
        if self._finished:
            return True
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:
            return self._finished
        if self.in_loop_thread:
            return False  # it stops once the current callback returns
        deadline = time.monotonic() + timeout + STOP_TIMEOUT_S
        while not self._finished and time.monotonic() < deadline:
            time.sleep(0.005)
        return self._finished

    def _stop_at_exit(self) -> None:
        if self.pid == os.getpid() and not self._finished:
            self.stop(timeout=1.0)


_LOCK: Any = None
_LOCK_PID: int | None = None


def _lock() -> Any:
    """The module's real (unpatched) lock; a new one in a forked child (a fork may copy it held)."""
    global _LOCK, _LOCK_PID
    if _LOCK is None or os.getpid() != _LOCK_PID:
        _LOCK = original("_thread", "allocate_lock")()
        _LOCK_PID = os.getpid()
    return _LOCK


__all__ = ["AsyncBridge", "BridgeError", "gevent_patched", "original"]
