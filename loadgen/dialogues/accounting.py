"""Token accounting of a conversation: shaped lengths asked for, tokens counted locally, the server's usage checked.

On when a run asks for token-length shapes (:mod:`loadgen.dialogues.shapes`) or gives a tokenizer file
(``--tokenizer``); off (no counting at all, nothing in a turn's result) otherwise.

Counting: a turn's tokens are the server's ``usage`` when the reply carries it, else the local count (the
tokenizer file, else the estimate of :mod:`loadgen.datasets.tokens`); :attr:`TokenCheck.counted_by` says which.
The local prompt count is the sum of the local counts of every message of the conversation's context (the system
prompt, each earlier user message and reply that got through, the new user message): what the server sees in
either history mode, less the chat template's own tokens.

Checks, per turn:

* *short reply*: the reply has fewer tokens than asked (``--output-tokens``: the drawn target, also sent as
  ``min_tokens``). Counted by usage the comparison is exact; counted locally a reply may fall short by the
  tolerance before it counts (a local count is not the server's).
* *usage mismatch* (only with a tokenizer file: the estimate is too rough to judge a server by): the server's
  ``completion_tokens`` differ from the local count of the reply by more than the tolerance (a fraction) plus
  :data:`OUTPUT_SLACK` tokens, or its ``prompt_tokens`` from the local count of the context by more than the
  tolerance plus :data:`TEMPLATE_TOKENS_PER_MESSAGE` per message (a chat template adds a few tokens a message).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from loadgen.datasets.tokens import CharEstimate, TokenCounter
from loadgen.dialogues.shapes import NO_SHAPE, TokenShape, fill_to
from loadgen.types import Reply, TokenCheck

#: Default tolerance of the checks: a fraction of the local count.
DEFAULT_TOLERANCE = 0.1
#: Tokens a chat template may add per message before a prompt count disagrees.
TEMPLATE_TOKENS_PER_MESSAGE = 8
#: Tokens a reply's count may differ by (a detokenised reply does not always re-encode to the same tokens).
OUTPUT_SLACK = 2


@dataclass(frozen=True)
class TokenAccounting:
    """A run's accounting settings: the local counter, the shape the command line asks for, the tolerance."""

    counter: TokenCounter
    shape: TokenShape = NO_SHAPE
    tolerance: float = DEFAULT_TOLERANCE

    @property
    def local_kind(self) -> str:
        """``tokenizer`` or ``estimate``: what counts when a reply carries no usage."""
        return "estimate" if isinstance(self.counter, CharEstimate) else "tokenizer"

    def mismatched(self, usage: int, local: int, slack: int) -> bool:
        return abs(usage - local) > self.tolerance * local + slack


class ConversationTokens:
    """One conversation's accounting: shapes its turns, keeps the local count of its context, checks each reply."""

    __slots__ = ("_accounting", "_asked", "_context", "_messages", "_pending", "_rng", "shape")

    def __init__(
        self, accounting: TokenAccounting, shape: TokenShape, rng: random.Random, system_prompt: str | None
    ) -> None:
        self._accounting = accounting
        self.shape = shape
        self._rng = rng
        self._context = accounting.counter.count(system_prompt) if system_prompt else 0
        self._messages = 1 if system_prompt else 0
        self._pending: tuple[str, int] | None = None  # the user message asked, its local count
        self._asked: int | None = None

    def user_text(self, text: str) -> str:
        """The user message of a turn: ``text`` with filler after it to the drawn input length, if shaped."""
        target = self.shape.input
        if target is None:
            return text
        return fill_to(text, target.draw(self._rng), self._accounting.counter, self._rng)

    def ask(self, user_text: str) -> int | None:
        """The turn asking ``user_text`` is sent: the reply length it asks for (None: not shaped)."""
        self._pending = (user_text, self._accounting.counter.count(user_text))
        target = self.shape.output
        self._asked = None if target is None else target.draw(self._rng)
        return self._asked

    def check(self, reply: Reply | None) -> TokenCheck | None:
        """The accounting of the turn just asked; a reply (None: the turn failed) joins the context count."""
        pending, asked = self._pending, self._asked
        self._pending = self._asked = None
        if reply is None or pending is None:
            return None
        accounting = self._accounting
        prompt = self._context + pending[1]
        output = accounting.counter.count(reply.text)
        messages = self._messages + 1
        self._context = prompt + output
        self._messages = messages + 1
        usage = reply.usage
        if usage is None:
            short = asked is not None and output < asked * (1.0 - accounting.tolerance)
            return TokenCheck(accounting.local_kind, prompt, output, asked, short_reply=short)
        mismatch = accounting.local_kind == "tokenizer" and (
            accounting.mismatched(usage.completion_tokens, output, OUTPUT_SLACK)
            or accounting.mismatched(usage.prompt_tokens, prompt, TEMPLATE_TOKENS_PER_MESSAGE * messages)
        )
        short = asked is not None and usage.completion_tokens < asked
        return TokenCheck("usage", prompt, output, asked, short_reply=short, usage_mismatch=mismatch)


__all__ = [
    "DEFAULT_TOLERANCE",
    "OUTPUT_SLACK",
    "TEMPLATE_TOKENS_PER_MESSAGE",
    "ConversationTokens",
    "TokenAccounting",
]
