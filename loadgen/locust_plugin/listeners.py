"""Lists of listeners with Locust's own isolation: one that raises is logged and the others still run.

Locust's ``EventHook.fire`` catches what a listener raises, logs it and goes on with the next; our own lists
(a turn listener per finished turn, a summary listener per written run folder) do the same. A listener's first
failure is logged with its traceback; its later ones are counted (:meth:`Listeners.failures`), not logged, so a
broken per-turn listener cannot flood the log. A failing listener never changes the run's exit code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Generic, ParamSpec

logger = logging.getLogger("loadgen")

P = ParamSpec("P")


class Listeners(Generic[P]):
    """Listeners called in the order they were added, each isolated from the others."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._listeners: list[Callable[P, None]] = []
        self._failures: dict[Callable[P, None], int] = {}

    def add(self, listener: Callable[P, None]) -> Callable[P, None]:
        self._listeners.append(listener)
        return listener

    def remove(self, listener: Callable[P, None]) -> None:
        self._listeners.remove(listener)

    def __len__(self) -> int:
        return len(self._listeners)

    def fire(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for listener in tuple(self._listeners):  # a listener may add or remove listeners
            try:
                listener(*args, **kwargs)
            except Exception:
                failed = self._failures.get(listener, 0)
                self._failures[listener] = failed + 1
                if not failed:
                    logger.exception(
                        "%s listener %r failed (its later failures are counted, not logged)", self.what, listener
                    )

    def failures(self, listener: Callable[P, None]) -> int:
        """How many times ``listener`` raised."""
        return self._failures.get(listener, 0)
