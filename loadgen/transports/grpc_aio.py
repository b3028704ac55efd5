"""grpcio's asyncio API (``grpc.aio``) on the process's asyncio loop (:mod:`loadgen.transports.bridge`) under gevent.

``grpc.aio`` polls its completion queue in a thread of its own, which it starts with ``threading.Thread``, and
wakes the loop through a ``socket.socketpair()``. In a gevent-patched process both are gevent's: the "thread"
is a greenlet of the loop thread's hub, which never runs, so no call ever completes (measured: a first call hung
until its timeout). :func:`prepare` points grpcio's module-level ``threading`` and ``socket`` at stand-ins that
start a real OS thread and make a real socket pair; everything else grpcio takes from those modules stays as it
was. It changes nothing in a process that gevent did not patch, and must run before the process's first
``grpc.aio`` channel (it is idempotent).

With it, the gRPC transport no longer needs ``grpc.experimental.gevent.init_gevent()``: every call runs on the
asyncio loop thread, and the greenlet that made the turn waits for the finished reply in one hop.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Callable
from typing import Any

from loadgen.transports.bridge import gevent_patched, original

_prepared = False


class _RealThread:
    """What grpcio's aio poller asks of ``threading.Thread``: ``start()`` and ``join()``, on a real OS thread."""

    def __init__(self, target: Callable[[], Any] | None = None, daemon: bool | None = None, **_: Any) -> None:
        self._target = target
        self._finished: Any = original("_thread", "allocate_lock")()

    def _main(self) -> None:
        try:
            if self._target is not None:
                self._target()
        finally:
            self._finished.release()

    def start(self) -> None:
        self._finished.acquire()
        original("_thread", "start_new_thread")(self._main, ())

    def join(self, timeout: float | None = None) -> None:
        if self._finished.acquire(True, -1 if timeout is None else timeout):
            self._finished.release()

    def is_alive(self) -> bool:
        if self._finished.acquire(False):
            self._finished.release()
            return False
        return True


class _Forward(types.ModuleType):
    """A module that answers from ``overrides`` first, then from ``module``."""

    def __init__(self, module: types.ModuleType, overrides: dict[str, Any]) -> None:
        super().__init__(module.__name__)
        self.__dict__.update(overrides)
        self._module = module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def prepare() -> bool:
    """Make ``grpc.aio`` usable from the bridge's loop thread in a gevent-patched process (see the module's
    docstring); True when the stand-ins are (now) in place, False when gevent did not patch this process."""
    global _prepared
    if _prepared:
        return True
    if not gevent_patched():
        return False
    import socket
    import threading

    # grpcio's compiled core (not in grpc-stubs): its module globals are looked up at run time
    cygrpc: Any = importlib.import_module("grpc._cython.cygrpc")

    cygrpc.threading = _Forward(threading, {"Thread": _RealThread})
    cygrpc.socket = _Forward(socket, {"socketpair": original("socket", "socketpair")})
    _prepared = True
    return True


__all__ = ["prepare"]
