"""The context window: which messages of a conversation the server still "sees" for a request.

:func:`fit_context` keeps the leading system message(s) and the newest turns, dropping the oldest *whole*
turns (a user message with the replies after it) until the rendered prompt plus the tokens reserved for the
reply fit the window. A fact planted in a dropped turn is gone for that request, as it would be for a real
model server with a smaller window.
"""

from __future__ import annotations

from collections.abc import Sequence

from loadgen.server.engines.base import Tokenizer
from loadgen.types import ChatMessage


class ContextOverflow(ValueError):
    """Even the system message and the newest turn alone do not fit the window with the reserve."""

    def __init__(self, needed: int, window: int, reserve: int) -> None:
        super().__init__(
            f"the prompt needs {needed} tokens even without older turns; with max_tokens={reserve} that exceeds "
            f"the context window of {window} tokens: send a shorter message or ask for fewer tokens"
        )
        self.needed = needed
        self.window = window
        self.reserve = reserve


def render_message(message: ChatMessage) -> str:
    return f"{message.role}: {message.content}\n"


def render_prompt(messages: Sequence[ChatMessage]) -> str:
    """The prompt an engine is given: one ``role: content`` line per message."""
    return "".join([f"{m.role}: {m.content}\n" for m in messages])


def split_turns(messages: Sequence[ChatMessage]) -> tuple[list[ChatMessage], list[list[ChatMessage]]]:
    """(leading system messages, turns): a turn starts at a user message and runs to the next one."""
    i = 0
    while i < len(messages) and messages[i].role == "system":
        i += 1
    head = list(messages[:i])
    turns: list[list[ChatMessage]] = []
    for message in messages[i:]:
        if message.role == "user" or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return head, turns


def fit_context(
    messages: Sequence[ChatMessage], tokenizer: Tokenizer, window_tokens: int, reserve_tokens: int
) -> list[ChatMessage]:
    """The messages to keep: the system message(s) and as many of the newest whole turns as fit.

    Raises :class:`ContextOverflow` when the system message(s) plus the newest turn alone do not fit.
    """
    return fit_prompt(messages, tokenizer, window_tokens, reserve_tokens)[0]


def fit_prompt(
    messages: Sequence[ChatMessage], tokenizer: Tokenizer, window_tokens: int, reserve_tokens: int
) -> tuple[list[ChatMessage], str, int]:
    """:func:`fit_context`, also returning the rendered prompt and its token count."""
    budget = window_tokens - reserve_tokens
    head, turns = split_turns(messages)
    if not turns:
        prompt = render_prompt(head)
        needed = tokenizer.count(prompt)
        if needed > budget:
            raise ContextOverflow(needed, window_tokens, reserve_tokens)
        return head, prompt, needed
    # per-turn counts (exact for tokenizers where rendered lines add up; checked against the whole below)
    head_tokens = sum(tokenizer.count(render_message(m)) for m in head)
    turn_tokens = [sum(tokenizer.count(render_message(m)) for m in turn) for turn in turns]
    total = head_tokens + sum(turn_tokens)
    first = 0  # index of the oldest turn kept
    while total > budget and first < len(turns) - 1:
        total -= turn_tokens[first]
        first += 1
    while True:
        kept = head + [m for turn in turns[first:] for m in turn]
        prompt = render_prompt(kept)
        needed = tokenizer.count(prompt)
        if needed <= budget:
            return kept, prompt, needed
        if first >= len(turns) - 1:
            raise ContextOverflow(needed, window_tokens, reserve_tokens)
        first += 1


__all__ = ["ContextOverflow", "fit_context", "fit_prompt", "render_message", "render_prompt", "split_turns"]
