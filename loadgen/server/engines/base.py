"""The one interface every engine implements. A new engine is one module.

The fronts know nothing of how tokens are made: the chat service turns a request into a
:class:`GenerationRequest` (the context the server kept, rendered as a prompt, and the reply text the
deterministic responder chose) and streams the engine's :class:`TokenChunk` s back to the client.

Forced decoding: the *text* of a reply always comes from the responder (so retention checks are
meaningful); the *cost* (prefill over the prompt, one decode step per output token, batching, queueing)
comes from the engine.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass


class EngineOverloaded(Exception):
    """The engine's queue (or KV memory) is full: the front answers 429 / RESOURCE_EXHAUSTED / an error reply."""


class EngineRequestError(Exception):
    """The request can never be served (e.g. the prompt is larger than the engine could ever hold)."""


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    request_id: str
    prompt: str  # the retained context, rendered
    reply: str  # forced output text, chosen by the responder
    max_tokens: int  # the engine stops after this many output tokens of its own tokenizer
    #: ``time.monotonic()`` when the front took the request off the wire (``None``: not known). The ``sim``
    #: engine's fixed timing counts its time to first token from here, so the server's own parsing and
    #: bookkeeping are inside the promised figure and only the transport's path is added to what clients see.
    received_at: float | None = None


@dataclass(frozen=True, slots=True)
class TokenChunk:
    """One streamed piece of output. ``n_tokens`` >= 1 (a step may emit several tokens at once)."""

    text: str
    n_tokens: int = 1


class Tokenizer(abc.ABC):
    """The engine's tokenizer: used for usage counts and for the context window."""

    @abc.abstractmethod
    def count(self, text: str) -> int: ...

    @abc.abstractmethod
    def split(self, text: str) -> list[str]:
        """Split text into token strings whose concatenation is ``text``."""


class Engine(abc.ABC):
    name: str = "engine"
    #: The step costs are multiplied by this (the ``slow Nx`` fault sets it, from the server's event loop; an
    #: engine that models or sleeps its steps reads it each step).
    slow_factor: float = 1.0

    @property
    @abc.abstractmethod
    def tokenizer(self) -> Tokenizer: ...

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Start background work (the step loop). Called once, inside the server's event loop."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Stop background work; pending requests end with an error."""

    @abc.abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncIterator[TokenChunk]:
        """Stream the output. Raises :class:`EngineOverloaded` (before the first chunk) when full.

        Closing the iterator early (client went away) must free the request's slot.
        """

    def stats(self) -> dict[str, float]:
        """Live figures for /metrics-like endpoints and tests (queue depth, running batch, ...)."""
        return {}
