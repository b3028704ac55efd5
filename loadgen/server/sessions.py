"""Server-side conversation history: a bounded store, least-recently-used eviction plus an idle TTL.

Eviction and expiry are real context loss: the next turn of that session starts from an empty history, so a
later probe of a fact planted before it fails. ``stats()`` counts both, so a run can tell why.

The clock is injectable (``clock=``, monotonic seconds) so tests can move time without sleeping.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from loadgen.types import ChatMessage


class _Session:
    __slots__ = ("messages", "touched")

    def __init__(self, now: float) -> None:
        self.messages: list[ChatMessage] = []
        self.touched = now


class SessionStore:
    """``capacity`` sessions at most (LRU); a session idle longer than ``ttl_s`` seconds is gone.

    Not thread-safe: the server uses it from its one event loop.
    """

    def __init__(self, capacity: int, ttl_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if capacity < 1:
            raise ValueError(f"session capacity must be at least 1, got {capacity}")
        if ttl_s <= 0:
            raise ValueError(f"session TTL must be positive, got {ttl_s}")
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._clock = clock
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self.evictions = 0
        self.expirations = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions

    def get(self, session_id: str) -> list[ChatMessage]:
        """The session's history (a copy), oldest first; empty when unknown, evicted or expired.

        A hit counts as use: it refreshes the session's LRU position and its TTL.
        """
        now = self._clock()
        self._expire(now)
        session = self._sessions.get(session_id)
        if session is None:
            self.misses += 1
            return []
        self.hits += 1
        session.touched = now
        self._sessions.move_to_end(session_id)
        return list(session.messages)

    def append(self, session_id: str, *messages: ChatMessage) -> None:
        """Add messages to the session (creating it, which may evict the least recently used one)."""
        now = self._clock()
        self._expire(now)
        session = self._sessions.get(session_id)
        if session is None:
            session = self._sessions[session_id] = _Session(now)
            while len(self._sessions) > self.capacity:
                self._sessions.popitem(last=False)
                self.evictions += 1
        else:
            self._sessions.move_to_end(session_id)
        session.touched = now
        session.messages.extend(messages)

    def drop(self, session_id: str) -> bool:
        """Forget a session on purpose (not counted as an eviction). True if it existed."""
        return self._sessions.pop(session_id, None) is not None

    def _expire(self, now: float) -> None:
        # the front of the LRU order is the least recently touched: expired sessions are all at the front
        limit = now - self.ttl_s
        sessions = self._sessions
        while sessions:
            session = next(iter(sessions.values()))
            if session.touched > limit:
                break
            sessions.popitem(last=False)
            self.expirations += 1

    def stats(self) -> dict[str, float]:
        self._expire(self._clock())
        return {
            "sessions": len(self._sessions),
            "capacity": self.capacity,
            "ttl_s": self.ttl_s,
            "evictions": self.evictions,
            "expirations": self.expirations,
            "hits": self.hits,
            "misses": self.misses,
        }


__all__ = ["SessionStore"]
