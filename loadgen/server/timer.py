"""Sleeping until an absolute deadline with microsecond precision inside an asyncio event loop.

``asyncio.sleep`` wakes up to ~1 ms late: the selector's timeout is rounded *up* to whole milliseconds
(epoll) from the moment the loop polls, so a stream of 10 ms sleeps against absolute deadlines shows gaps of
10 ms plus the loop's own work per step, wrapping back every millisecond: p50 of 10.3 ms, not 10.0.
:class:`PreciseSleeper` arms one Linux ``timerfd`` (nanosecond resolution, ``CLOCK_MONOTONIC`` absolute
time) for the earliest pending deadline and watches it with ``loop.add_reader``; elsewhere (or if the
timerfd cannot be made) it falls back to ``asyncio.sleep``.

Deadlines are :func:`time.monotonic` seconds (``CLOCK_MONOTONIC`` on Linux), not ``loop.time()``: uvloop's
loop clock only moves in whole milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import heapq
import itertools
import logging
import os
import sys
import time

logger = logging.getLogger(__name__)

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = 0o2000000
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class _TimerFd:
    """A non-blocking ``CLOCK_MONOTONIC`` timerfd, armed at absolute times (ctypes: ``os.timerfd_*`` is 3.13+)."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._settime = libc.timerfd_settime
        self._settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec), ctypes.c_void_p]
        self._settime.restype = ctypes.c_int
        create = libc.timerfd_create
        create.argtypes = [ctypes.c_int, ctypes.c_int]
        create.restype = ctypes.c_int
        fd = create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.fd: int = fd
        self._spec = _Itimerspec()

    def arm(self, deadline: float) -> None:
        sec = int(deadline)
        nsec = int((deadline - sec) * 1e9)
        if sec <= 0 and nsec <= 0:
            nsec = 1  # all zero would disarm
        value = self._spec.it_value
        value.tv_sec, value.tv_nsec = sec, nsec
        if self._settime(self.fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self.fd, 8)

    def close(self) -> None:
        os.close(self.fd)


class PreciseSleeper:
    """``await sleeper.sleep_until(deadline)`` (a :func:`time.monotonic` time) in the loop that made it.

    Precise (timerfd) where it can be; ``precise`` says which. ``close()`` when done.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._armed: float | None = None
        self._timer: _TimerFd | None = None
        if sys.platform.startswith("linux"):
            try:
                timer = _TimerFd()
            except (OSError, AttributeError) as exc:
                logger.debug("no timerfd (%s): sleeps are ~1 ms coarse", exc)
            else:
                try:
                    self._loop.add_reader(timer.fd, self._fire)
                except (NotImplementedError, RuntimeError) as exc:
                    logger.debug("this event loop cannot watch a timerfd (%s): sleeps are ~1 ms coarse", exc)
                    timer.close()
                else:
                    self._timer = timer

    @property
    def precise(self) -> bool:
        return self._timer is not None

    async def sleep_until(self, deadline: float) -> None:
        timer = self._timer
        if timer is None:
            delay = deadline - time.monotonic()
            await asyncio.sleep(delay if delay > 0 else 0)
            return
        future: asyncio.Future[None] = self._loop.create_future()
        heapq.heappush(self._heap, (deadline, next(self._order), future))
        if self._armed is None or deadline < self._armed:
            self._armed = deadline
            timer.arm(deadline)
        await future  # cancelled: the entry stays in the heap and is skipped when due

    def _fire(self) -> None:
        timer = self._timer
        if timer is None:
            return
        timer.drain()
        heap = self._heap
        now = time.monotonic()
        while heap and heap[0][0] <= now:
            future = heapq.heappop(heap)[2]
            if not future.done():
                future.set_result(None)
        self._armed = None
        if heap:
            self._armed = heap[0][0]
            timer.arm(self._armed)

    def close(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            if not self._loop.is_closed():
                self._loop.remove_reader(timer.fd)
            timer.close()
        for _, _, future in self._heap:
            if not future.done():
                future.cancel()
        self._heap.clear()


__all__ = ["PreciseSleeper"]
