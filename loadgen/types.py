"""The small shared vocabulary: one chat request, one reply with its timings.

Times in a :class:`Reply` are ``time.perf_counter()`` seconds taken on the client, as close to the wire
as the transport's library allows. Metrics convert them to integer microseconds.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class HistoryMode(enum.StrEnum):
    """Who keeps the conversation history."""

    CLIENT = "client"  # the full history is sent every turn (OpenAI style)
    SERVER = "server"  # a session id plus the new message only; the server keeps the history


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One turn as sent on the wire, whatever the transport.

    In ``client`` history mode ``messages`` is the whole conversation so far; in ``server`` mode it is the
    new user message only and ``session_id`` names the server-side session. ``trace_headers``: the trace
    context of the turn's span (W3C ``traceparent``, ``tracestate``) when tracing is on
    (:mod:`loadgen.telemetry.tracing`), which every transport adds to its HTTP headers, gRPC metadata or AMQP
    message headers; ``None`` (the default) when it is off, and then no transport does any work for it.
    ``min_tokens`` and ``ignore_eos`` ask for a reply of at least that many tokens (token-length shapes,
    :mod:`loadgen.dialogues.shapes`): the OpenAI body's extensions, sent on the REST wire only when set.
    """

    messages: tuple[ChatMessage, ...]
    max_tokens: int = 64
    stream: bool = True
    model: str = "loadgen-sim"
    session_id: str | None = None
    trace_headers: Mapping[str, str] | None = field(default=None, compare=False)
    min_tokens: int | None = None
    ignore_eos: bool = False


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """A turn's token accounting (:mod:`loadgen.dialogues.accounting`): who counted its tokens (``usage``: the
    server's; ``tokenizer``: a local tokenizer file; ``estimate``), the local counts of its prompt and reply, the
    reply length asked for, and the verdicts: the reply was shorter than asked, the server's usage disagreed
    with the local count."""

    counted_by: str
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    asked: int | None = None
    short_reply: bool = False
    usage_mismatch: bool = False


#: ``Reply.status`` of a whole reply accepted for a streaming request (``accept_unstreamed``): its one chunk came
#: at the end, so its time to first token is the whole reply's.
UNSTREAMED = "unstreamed"


@dataclass(slots=True)
class Reply:
    """What came back for one turn, with client-side timings (perf_counter seconds).

    ``chunk_times[i]`` is when the i-th content-bearing chunk arrived and ``chunk_tokens[i]`` how many
    tokens it carried (a first chunk may carry several). ``t_first_token`` is ``chunk_times[0]``.
    ``status`` is ``"ok"``, or :data:`UNSTREAMED`. ``session_new`` is the server saying that it did not hold the
    session the request named and started a new one (evicted, expired, restarted, or simply a first turn): the
    REST header / gRPC initial metadata ``x-loadgen-session: new``, the AMQP first reply chunk's ``"session":
    "new"`` (:mod:`loadgen.wire`).
    """

    text: str
    t_sent: float
    t_done: float
    t_first_byte: float | None = None
    chunk_times: list[float] = field(default_factory=list)
    chunk_tokens: list[float] = field(default_factory=list)
    usage: Usage | None = None
    status: str = "ok"
    session_new: bool = False

    @property
    def t_first_token(self) -> float | None:
        return self.chunk_times[0] if self.chunk_times else None

    @property
    def output_tokens(self) -> float:
        if self.usage is not None:
            return float(self.usage.completion_tokens)
        return float(sum(self.chunk_tokens))

    def e2e_s(self) -> float:
        return self.t_done - self.t_sent

    def ttft_s(self) -> float | None:
        first = self.t_first_token
        return None if first is None else first - self.t_sent

    def inter_token_samples(self) -> list[tuple[float, int]]:
        """Inter-token latencies as (seconds per token, number of tokens) pairs.

        The time to the first chunk is excluded; each later chunk's gap is spread over the tokens it carried.
        """
        out: list[tuple[float, int]] = []
        for i in range(1, len(self.chunk_times)):
            gap = self.chunk_times[i] - self.chunk_times[i - 1]
            tokens = self.chunk_tokens[i] if i < len(self.chunk_tokens) else 1.0
            if tokens <= 0:
                continue
            out.append((gap / tokens, max(1, round(tokens))))
        return out
