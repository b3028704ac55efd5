"""A test-only engine that fails on cue: it makes server events (overload, an engine stopping mid-reply, a crash)
reproducible in tests that run the REAL fronts, chat service and transports over it.

A request whose prompt holds ``[[cue:WHAT@N]]`` (the last cue counts) gets N chunks of its reply, then:
``overloaded`` -> ``EngineOverloaded``, ``stop`` -> ``EngineRequestError`` ("the engine stopped", what
the sim engine raises when it is stopped mid-reply), ``crash`` -> :class:`RuntimeError` (a bug). N = 0 fails at
admission (the service pulls the first chunk before it answers). Without a cue: the responder's text, one word
a chunk, like the sim engine with no cost.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from loadgen.server.engines import base
from loadgen.server.tokens import WordTokenizer

CUE = re.compile(r"\[\[cue:(overloaded|stop|crash)@(\d+)\]\]")


def cue(what: str, after: int = 0) -> str:
    """The text that makes the engine fail with ``what`` after ``after`` chunks."""
    return f"[[cue:{what}@{after}]]"


def _error(what: str) -> Exception:
    if what == "overloaded":
        return base.EngineOverloaded("engine queue full (on cue)")
    if what == "stop":
        return base.EngineRequestError("the engine stopped")
    return RuntimeError("the engine fell over (on cue)")


class ScriptedEngine(base.Engine):
    name = "scripted"

    def __init__(self) -> None:
        self._tokenizer = WordTokenizer()

    @property
    def tokenizer(self) -> base.Tokenizer:
        return self._tokenizer

    def generate(self, request: base.GenerationRequest) -> AsyncIterator[base.TokenChunk]:
        return self._run(request)

    async def _run(self, request: base.GenerationRequest) -> AsyncIterator[base.TokenChunk]:
        found = list(CUE.finditer(request.prompt))
        what, fail_at = (found[-1].group(1), int(found[-1].group(2))) if found else (None, -1)
        for i, token in enumerate(self._tokenizer.split(request.reply)[: request.max_tokens]):
            if i == fail_at and what is not None:
                raise _error(what)
            await asyncio.sleep(0)
            yield base.TokenChunk(token)
        if what is not None:
            raise _error(what)  # asked to fail after more chunks than the reply has: fail at its end
