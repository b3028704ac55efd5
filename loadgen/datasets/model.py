"""What a dataset line becomes: a frozen :class:`DatasetConversation` of user turns and recorded replies.

A conversation is normalised from either JSONL form (see :mod:`loadgen.datasets.parse`) to one shape:
an optional system prompt, then turns, each one user message and the dataset's own assistant reply to it
(``recorded_reply``). Every turn but the last has a recorded reply; the last has one when the line ended on an
assistant message, else ``None``.

A bad line is a :class:`DatasetError` (a :class:`~loadgen.errors.ConfigError`): ``FILE:LINE: what is wrong``,
one line, raised before any load starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadgen.errors import ConfigError

#: Conversations with fewer user turns are skipped (with a count): the project's dialogue minimum.
DEFAULT_MIN_USER_TURNS = 5


class DatasetError(ConfigError):
    """A dataset file cannot be used as it is. ``str()`` is ``FILE:LINE: problem`` (``FILE: problem`` when the
    problem is with the whole file; ``line`` is then 0)."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem = " ".join(problem.split())  # one line, whatever a library's message held
        super().__init__(f"{path}:{line}: {problem}" if line else f"{path}: {problem}")


@dataclass(frozen=True, slots=True)
class DatasetTurn:
    """One user message to replay, and the reply the dataset recorded for it (``None``: the line ended on it)."""

    user: str
    recorded_reply: str | None


@dataclass(frozen=True, slots=True)
class DatasetConversation:
    """One usable dataset conversation. ``index`` counts usable conversations from 0 across the files, in file
    order; ``path`` and ``line`` (1-based) say where it was read, for error messages and reports."""

    path: str
    line: int
    index: int
    system: str | None
    turns: tuple[DatasetTurn, ...]

    @property
    def source(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def user_turns(self) -> tuple[str, ...]:
        return tuple(turn.user for turn in self.turns)

    @property
    def assistant_turns(self) -> tuple[str, ...]:
        """The recorded replies, in order (one fewer than the turns when the line ended on a user message)."""
        return tuple(turn.recorded_reply for turn in self.turns if turn.recorded_reply is not None)

    def recorded_messages(self, turn: int) -> list[dict[str, str]]:
        """The OpenAI ``messages`` a server sees for turn ``turn`` (0-based) under recorded history: the system
        prompt, every earlier user message with its recorded reply, then this turn's user message."""
        if not 0 <= turn < len(self.turns):
            raise IndexError(f"turn {turn} of a conversation of {len(self.turns)} turns")
        messages = [{"role": "system", "content": self.system}] if self.system is not None else []
        for earlier in self.turns[:turn]:
            messages.append({"role": "user", "content": earlier.user})
            messages.append({"role": "assistant", "content": earlier.recorded_reply or ""})
        messages.append({"role": "user", "content": self.turns[turn].user})
        return messages
