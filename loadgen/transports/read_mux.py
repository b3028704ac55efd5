"""Streamed response bodies read by the gevent event loop itself, without waking a greenlet per token.

Why: a model streams a reply token by token, 20 ms apart. Read the usual way, every token costs the generator a
wake-up of the turn's greenlet, a ``recv`` through gevent's socket (a timeout armed and disarmed, a failed
``recv`` first, a switch to the hub and back) and the parse, ~45 µs a token at 1,000 live conversations, most of
it the waiting (reports/BENCHMARKS.md, "Live conversations per generator core"). Here all the sockets whose bodies
are being read sit in one ``epoll`` set, which the loop watches as one file descriptor. When it is readable, one
callback in the hub takes every ready socket, stamps the moment (``time.perf_counter()``, once per wake-up:
every byte it then reads was already in the kernel), reads what each has, strips the framing
(:class:`~loadgen.transports.http1_stream.ChunkedDecoder` / ``PlainDecoder``) and keeps ``(time, piece)``. The
turn's greenlet sleeps until its body is complete, failed or past its deadline, then parses the pieces with their
arrival times: the same figures as reading them one at a time, at a fraction of the cost per token.

The gRPC transport's own HTTP/2 client (:mod:`loadgen.transports.grpc_h2`) reads its replies the same way: its
decoder strips the HTTP/2 and gRPC framing, acknowledges the server's PINGs and SETTINGS from the hub, and hands
over whole messages (:class:`BodyDecoder`: whatever ``feed`` returns is kept with its stamp).

One :class:`ReadMux` per thread's hub and per process (a fork makes a new one: an ``epoll`` set is shared with
the process it was inherited from). Every body has a deadline (a timer on the loop); a greenlet killed while it
waits takes its socket out of the set before anything else may close it. Errors (a framing error, the size limit,
a reset, the deadline) end the body: the pieces before it are handed over with the error, to be raised after them.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

import httpx

from loadgen.transports.bridge import original

if TYPE_CHECKING:
    import socket

#: Bytes one read takes from one socket per wake-up (what stays is read on the next one).
READ_BYTES: Final = 65536
#: ``select.EPOLLIN`` (Linux's value)
_EPOLLIN: Final = 0x001


class BodyDecoder(Protocol):
    """What strips a body's framing (:class:`~loadgen.transports.http1_stream.ChunkedDecoder`, the gRPC client's
    :class:`~loadgen.transports.grpc_h2.CallReader`): ``feed`` returns what the new bytes completed (anything
    falsy: nothing), ``eof`` is told of the connection's end, ``finished`` once the body is complete."""

    @property
    def finished(self) -> bool: ...

    def feed(self, data: bytes) -> Any: ...

    def eof(self) -> None: ...


@dataclass(slots=True)
class BodyRead:
    """What :meth:`ReadMux.read` collected: every piece of the body with its arrival time, the error that ended
    it (None: the body came to its end, at ``ended_at``)."""

    pieces: list[tuple[float, Any]] = field(default_factory=list)
    error: BaseException | None = None
    ended_at: float | None = None


class _Body:
    __slots__ = ("decoder", "fd", "read", "timer", "waiter")

    def __init__(self, fd: int, decoder: BodyDecoder, waiter: Any) -> None:
        self.fd = fd
        self.decoder = decoder
        self.waiter = waiter
        self.read = BodyRead()
        self.timer: Any = None


class ReadMux:
    """The bodies being read in one thread's gevent loop (see the module's docstring)."""

    def __init__(self) -> None:
        from gevent import get_hub

        self._hub = get_hub()
        self._epoll = original("select", "epoll")()
        self._bodies: dict[int, _Body] = {}
        self._watcher = self._hub.loop.io(self._epoll.fileno(), 1)
        self._watcher.start(self._ready)
        self._watcher.ref = False  # an idle set keeps no loop alive (a waiting body has its deadline timer)
        self.pid = os.getpid()

    def read(self, sock: socket.socket, decoder: BodyDecoder, buffered: bytes, deadline: float) -> BodyRead:
        """Read the rest of a body from ``sock`` (``buffered``: what came with the response head), in this
        thread's loop, until ``decoder`` says it is finished, it fails, the server closes, or ``deadline``
        (``time.perf_counter()`` seconds) passes (``httpx.ReadTimeout``)."""
        from gevent.hub import Waiter

        fd = sock.fileno()
        body = _Body(fd, decoder, Waiter(self._hub))
        read = body.read
        try:
            if buffered:
                piece = decoder.feed(buffered)
                if piece:
                    read.pieces.append((time.perf_counter(), piece))
            if decoder.finished:
                read.ended_at = time.perf_counter()
                return read
            left = deadline - time.perf_counter()
            if left <= 0:
                raise httpx.ReadTimeout("the turn's deadline has passed")
        except Exception as exc:  # the decoder's refusal or the deadline: after the pieces before it
            read.error = exc
            return read
        sock.settimeout(0.0)  # never a blocking read in the loop (gevent's sockets are non-blocking anyway)
        self._epoll.register(fd, _EPOLLIN)
        self._bodies[fd] = body
        self._hub.loop.update_now()  # the loop's clock may be a wake-up old: the timer would fire early
        body.timer = self._hub.loop.timer(left)
        body.timer.start(self._expired, body)
        try:
            body.waiter.get()
        finally:
            self._forget(body)
        return read

    def drop_inherited(self) -> None:
        """In a forked child: stop watching the parent's set (shared with it: its sockets' readiness would wake
        this loop for ever) and close this process's handle on it."""
        self._watcher.stop()
        self._watcher.close()
        self._bodies.clear()
        self._epoll.close()

    # -- in the hub --------------------------------------------------------------------------------------------

    def _ready(self) -> None:
        try:
            events = self._epoll.poll(0)
        except InterruptedError:  # pragma: no cover - a signal: the set is still readable, the loop calls again
            return
        now = time.perf_counter()
        ended: list[_Body] = []
        bodies = self._bodies
        read_fd = os.read
        for fd, _ in events:
            body = bodies.get(fd)
            if body is None:  # pragma: no cover - taken out in this wake-up's earlier wake of its greenlet
                continue
            try:
                data = read_fd(fd, READ_BYTES)
            except BlockingIOError:
                continue
            except OSError as exc:
                body.read.error = httpx.ReadError(str(exc))
                ended.append(body)
                continue
            decoder = body.decoder
            try:
                if data:
                    piece = decoder.feed(data)
                    if piece:
                        body.read.pieces.append((now, piece))
                else:
                    decoder.eof()  # the end of a body that lasts until the close, or an error
            except Exception as exc:
                body.read.error = exc
                ended.append(body)
                continue
            if decoder.finished:
                body.read.ended_at = now
                ended.append(body)
        for body in ended:
            self._wake(body)

    def _expired(self, body: _Body) -> None:
        if body.read.error is None and body.read.ended_at is None:
            body.read.error = httpx.ReadTimeout("timed out")
        self._wake(body)

    def _wake(self, body: _Body) -> None:
        if self._forget(body):
            body.waiter.switch(None)

    def _forget(self, body: _Body) -> bool:
        """Take ``body`` out of the set (once: True the first time)."""
        if self._bodies.get(body.fd) is not body:
            return False
        del self._bodies[body.fd]
        with contextlib.suppress(OSError, ValueError):  # closed already: the kernel dropped it from the set
            self._epoll.unregister(body.fd)
        if body.timer is not None:
            body.timer.stop()
            body.timer.close()
        return True


_muxes: dict[int, ReadMux] = {}  # by the id of the hub they serve (each holds its hub: no id is reused meanwhile)


def read_mux() -> ReadMux:
    """The :class:`ReadMux` of this thread's gevent hub (made on first use; again in a forked child)."""
    from gevent import get_hub

    key = id(get_hub())
    mux = _muxes.get(key)
    if mux is None or mux.pid != os.getpid():
        if mux is not None:
            mux.drop_inherited()
        mux = _muxes[key] = ReadMux()
    return mux


__all__ = ["READ_BYTES", "BodyDecoder", "BodyRead", "ReadMux", "read_mux"]
