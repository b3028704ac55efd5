"""Server-side conversation history: a store bounded in sessions AND in bytes, least-recently-used eviction plus an
idle TTL, each session trimmed to what a prompt could ever hold.

Eviction and expiry are real context loss: the next turn of that session starts from an empty history, so a
later probe of a fact planted before it fails. ``stats()`` counts both, so a run can tell why; and
:meth:`SessionStore.history` tells a request whose session is not held (``None``) from one whose session is
empty, so the server can say "new session" (:mod:`loadgen.wire.session`).

Bounds:

- ``capacity`` sessions at most, and ``max_bytes`` bytes of history across all of them (a message weighs its
  content's length plus :data:`MESSAGE_OVERHEAD`): past either, the least recently used sessions go;
- each session keeps only its newest whole turns (a user message and the replies after it) that fit
  ``keep_tokens`` tokens (the context window: older turns could never be in a prompt again) and ``keep_bytes``
  bytes (a few huge "tokens" cannot make a session grow without end); its leading system message(s) stay, and
  so does its newest turn, whatever its size. So the work of a turn depends on what the window holds, never on
  how long the conversation has been going.

Token counts are taken once per message, when it is stored (``count``: the engine's tokenizer over the message as
rendered in a prompt). The clock is injectable (``clock=``, monotonic seconds) so tests can move time without
sleeping.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

from loadgen.types import ChatMessage

#: What a stored message weighs beyond its content's characters (the message, its string and its entry).
MESSAGE_OVERHEAD = 160


def message_bytes(message: ChatMessage) -> int:
    return len(message.content) + MESSAGE_OVERHEAD


class _Session:
    __slots__ = ("bytes", "head", "tokens", "touched", "turns")

    def __init__(self, now: float) -> None:
        self.head: list[ChatMessage] = []  # leading system message(s): always kept
        self.turns: deque[list[tuple[ChatMessage, int]]] = deque()  # oldest first; (message, its tokens)
        self.tokens = 0  # of the turns
        self.bytes = 0  # of head and turns
        self.touched = now

    def messages(self) -> list[ChatMessage]:
        return [*self.head, *(message for turn in self.turns for message, _ in turn)]

    def add(self, message: ChatMessage, tokens: int) -> None:
        self.bytes += message_bytes(message)
        if message.role == "system" and not self.turns:
            self.head.append(message)
            return
        if message.role == "user" or not self.turns:
            self.turns.append([(message, tokens)])
        else:
            self.turns[-1].append((message, tokens))
        self.tokens += tokens

    def trim(self, keep_tokens: int | None, keep_bytes: int | None) -> int:
        """Drop the oldest turns past either bound (the newest stays); return how many messages went."""
        dropped = 0
        turns = self.turns
        while len(turns) > 1 and (
            (keep_tokens is not None and self.tokens > keep_tokens)
            or (keep_bytes is not None and self.bytes > keep_bytes)
        ):
            for message, tokens in turns.popleft():
                self.tokens -= tokens
                self.bytes -= message_bytes(message)
                dropped += 1
        return dropped


class SessionStore:
    """``capacity`` sessions and ``max_bytes`` bytes at most (LRU); a session idle longer than ``ttl_s`` is gone.

    Not thread-safe: the server uses it from its one event loop.
    """

    def __init__(
        self,
        capacity: int,
        ttl_s: float,
        *,
        max_bytes: int | None = None,
        keep_tokens: int | None = None,
        keep_bytes: int | None = None,
        count: Callable[[ChatMessage], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"session capacity must be at least 1, got {capacity}")
        if ttl_s <= 0:
            raise ValueError(f"session TTL must be positive, got {ttl_s}")
        for name, value in (("max_bytes", max_bytes), ("keep_tokens", keep_tokens), ("keep_bytes", keep_bytes)):
            if value is not None and value < 1:
                raise ValueError(f"session {name} must be at least 1, got {value}")
        self.capacity = capacity
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self.keep_tokens = keep_tokens
        self.keep_bytes = keep_bytes
        self._count = count or (lambda _message: 0)
        self._clock = clock
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self.bytes = 0
        self.evictions = 0
        self.expirations = 0
        self.forgotten = 0
        self.trimmed = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions

    def history(self, session_id: str) -> list[ChatMessage] | None:
        """The session's history (a copy), oldest first; ``None`` when the store does not hold the session
        (never seen, evicted, expired or forgotten). A hit refreshes the session's LRU position and its TTL."""
        now = self._clock()
        self._expire(now)
        session = self._sessions.get(session_id)
        if session is None:
            self.misses += 1
            return None
        self.hits += 1
        session.touched = now
        self._sessions.move_to_end(session_id)
        return session.messages()

    def get(self, session_id: str) -> list[ChatMessage]:
        """:meth:`history`, empty when the session is not held."""
        return self.history(session_id) or []

    def append(self, session_id: str, *messages: ChatMessage, create: bool = True) -> None:
        """Add messages to the session (creating it, unless ``create`` is False: then a session no longer held
        stays gone), trim it to its bounds, then evict the least recently used sessions while the store is past
        its count or its bytes (never the session just written)."""
        now = self._clock()
        self._expire(now)
        session = self._sessions.get(session_id)
        if session is None:
            if not create:
                return
            session = self._sessions[session_id] = _Session(now)
        else:
            self._sessions.move_to_end(session_id)
        session.touched = now
        before = session.bytes
        for message in messages:
            session.add(message, self._count(message))
        self.trimmed += session.trim(self.keep_tokens, self.keep_bytes)
        self.bytes += session.bytes - before
        sessions = self._sessions
        while len(sessions) > 1 and (
            len(sessions) > self.capacity or (self.max_bytes is not None and self.bytes > self.max_bytes)
        ):
            _, evicted = sessions.popitem(last=False)
            self.bytes -= evicted.bytes
            self.evictions += 1

    def drop(self, session_id: str) -> bool:
        """Forget a session on purpose (not counted as an eviction). True if it existed."""
        session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        self.bytes -= session.bytes
        return True

    def forget_all(self) -> int:
        """Drop every session (the ``forget-sessions`` fault); return how many there were."""
        count = len(self._sessions)
        self._sessions.clear()
        self.bytes = 0
        self.forgotten += count
        return count

    def _expire(self, now: float) -> None:
        # the front of the LRU order is the least recently touched: expired sessions are all at the front
        limit = now - self.ttl_s
        sessions = self._sessions
        while sessions:
            session = next(iter(sessions.values()))
            if session.touched > limit:
                break
            sessions.popitem(last=False)
            self.bytes -= session.bytes
            self.expirations += 1

    def stats(self) -> dict[str, float]:
        self._expire(self._clock())
        return {
            "sessions": len(self._sessions),
            "capacity": self.capacity,
            "ttl_s": self.ttl_s,
            "bytes": self.bytes,
            "max_bytes": self.max_bytes or 0,
            "evictions": self.evictions,
            "expirations": self.expirations,
            "forgotten": self.forgotten,
            "trimmed_messages": self.trimmed,
            "hits": self.hits,
            "misses": self.misses,
        }


__all__ = ["MESSAGE_OVERHEAD", "SessionStore", "message_bytes"]
