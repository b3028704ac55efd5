"""The contract's checks, one function each: ``check(target)`` returns, or raises :class:`ContractFailure` saying
what broke the contract (:mod:`loadgen.transports.base` states it), or :class:`CheckSkipped` when the target does
not say enough (no fixed timing, no error request).

Replies and timing (:data:`REPLY_CHECKS`): a streamed turn's timestamps in order, a whole turn, TTFT against the
service's fixed timing, both history modes. Failures and their ends (:mod:`loadgen.testing.failures`): a refused
connection, timeouts, a server error, secrets, a turn cut short.
"""

from __future__ import annotations

import itertools
import secrets
import statistics
from collections.abc import Callable

from loadgen.errors import TransportError
from loadgen.testing.target import ContractTarget
from loadgen.transports.base import Transport
from loadgen.types import ChatMessage, ChatRequest, HistoryMode, Reply

#: Timestamps may be equal; this much disorder is allowed for clocks read in two threads (AMQP's loop thread).
CLOCK_SLACK_S = 1e-4
#: A first chunk may come this much before the service's fixed TTFT (the server's and our clocks differ).
EARLY_SLACK_MS = 0.5
#: Turns of the TTFT check (after one warm-up turn), and the tokens each asks for.
TTFT_TURNS = 5
TTFT_TOKENS = 20
PLANT = "My booking code is QX7781."
PROBE = "What was my booking code?"
FACT = "QX7781"


class ContractFailure(AssertionError):
    """The transport (or the service) broke the contract; the message says how."""


class CheckSkipped(Exception):
    """The check cannot run against this target; the message says what it lacks."""


Check = Callable[[ContractTarget], None]


def ask(text: str, max_tokens: int = 20, *, stream: bool = True, session_id: str | None = None) -> ChatRequest:
    return ChatRequest(
        messages=(ChatMessage("user", text),), max_tokens=max_tokens, stream=stream, session_id=session_id
    )


def send(transport: Transport, request: ChatRequest, what: str, timeout: float | None = None) -> Reply:
    """One turn that must succeed (a failure is the contract's, named by ``what``)."""
    try:
        return transport.send(request, timeout=timeout)
    except TransportError as exc:
        raise ContractFailure(f"{what}: the turn failed: {type(exc).__name__}: {exc.reason}") from exc


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise ContractFailure(message)


def timing_problems(reply: Reply) -> list[str]:
    """What is wrong with a reply's timestamps and counts (empty: nothing)."""
    problems: list[str] = []
    marks = [("t_sent", reply.t_sent)]
    if reply.t_first_byte is not None:
        marks.append(("t_first_byte", reply.t_first_byte))
    marks += [(f"chunk_times[{i}]", t) for i, t in enumerate(reply.chunk_times)]
    marks.append(("t_done", reply.t_done))
    for (name_a, a), (name_b, b) in itertools.pairwise(marks):
        if b < a - CLOCK_SLACK_S:
            problems.append(f"{name_b} ({b:.6f}) is before {name_a} ({a:.6f})")
    if len(reply.chunk_times) != len(reply.chunk_tokens):
        problems.append(f"{len(reply.chunk_times)} chunk_times but {len(reply.chunk_tokens)} chunk_tokens")
    if any(t <= 0 for t in reply.chunk_tokens):
        problems.append(f"chunk_tokens must be positive once filled in: {reply.chunk_tokens[:8]}")
    if reply.text and not reply.chunk_times:
        problems.append("a reply with text has no chunk_times (TTFT would be unknown)")
    return problems


def check_streamed_reply(target: ContractTarget) -> None:
    """A streamed turn: text, chunks that carry it, timestamps in order, usage that agrees with the chunks."""
    transport = target.make()
    try:
        for turn in (1, 2):  # the first turn may connect; the second reuses what the first opened
            reply = send(transport, ask(PLANT, 20), f"streamed turn {turn}")
            expect(bool(reply.text.strip()), f"streamed turn {turn}: empty reply text")
            problems = timing_problems(reply)
            expect(not problems, f"streamed turn {turn}: " + "; ".join(problems))
            expect(len(reply.chunk_times) >= 2, f"streamed turn {turn}: one chunk only (is the reply really streamed?)")
            if reply.usage is not None:
                expect(
                    abs(sum(reply.chunk_tokens) - reply.usage.completion_tokens) < 0.5,
                    f"streamed turn {turn}: chunk_tokens sum to {sum(reply.chunk_tokens):g}, usage says "
                    f"{reply.usage.completion_tokens}",
                )
    finally:
        transport.close()


def check_whole_reply(target: ContractTarget) -> None:
    """A turn asked for whole (``stream=False``): its text, at most one chunk, stamped no later than ``t_done``."""
    transport = target.make()
    try:
        reply = send(transport, ask(PLANT, 20, stream=False), "whole turn")
        expect(bool(reply.text.strip()), "whole turn: empty reply text")
        problems = timing_problems(reply)
        expect(not problems, "whole turn: " + "; ".join(problems))
    finally:
        transport.close()


def check_fixed_ttft(target: ContractTarget) -> None:
    """TTFT against the service's fixed timing: never early, and the first chunk no later than the stream's own
    pace says it should be (a transport that holds chunks back until the end shows TTFT ~ e2e)."""
    if target.fixed_ttft_ms is None or target.fixed_itl_ms is None:
        raise CheckSkipped("the service's fixed timing is not known (fixed_ttft_ms, fixed_itl_ms)")
    ttft_s, itl_s = target.fixed_ttft_ms / 1000.0, target.fixed_itl_ms / 1000.0
    transport = target.make()
    excess: list[float] = []
    try:
        send(transport, ask(PLANT, TTFT_TOKENS), "warm-up turn")
        for turn in range(1, TTFT_TURNS + 1):
            reply = send(transport, ask(PLANT, TTFT_TOKENS), f"timed turn {turn}")
            ttft = reply.ttft_s()
            expect(ttft is not None, f"timed turn {turn}: no TTFT (no chunk with text)")
            assert ttft is not None
            expect(
                ttft * 1000.0 >= target.fixed_ttft_ms - EARLY_SLACK_MS,
                f"timed turn {turn}: TTFT {ttft * 1000:.2f} ms is earlier than the service sends its first token "
                f"({target.fixed_ttft_ms:g} ms): t_sent is taken too late",
            )
            excess.append(_first_chunk_excess(reply, ttft_s, itl_s))
    finally:
        transport.close()
    held_back = statistics.median(excess)
    limit = max(3 * itl_s, 0.005)
    expect(
        held_back <= limit,
        f"the first chunk arrives {held_back * 1000:.1f} ms (median of {TTFT_TURNS} turns) later, relative to the "
        f"service's schedule, than the chunks after it (allowed {limit * 1000:.1f} ms): chunks are held back, so "
        "TTFT reads too high",
    )


def _first_chunk_excess(reply: Reply, ttft_s: float, itl_s: float) -> float:
    """How much later than the later chunks the first one is, each measured against when the service sent it
    (chunk j carrying tokens c_j..c_j+n_j-1 leaves at ``ttft + (c_j + n_j - 1) * itl``)."""
    lateness: list[float] = []
    sent_tokens = 0.0
    for at, tokens in zip(reply.chunk_times, reply.chunk_tokens, strict=False):
        scheduled = ttft_s + (sent_tokens + max(tokens, 1.0) - 1.0) * itl_s
        lateness.append(at - reply.t_sent - scheduled)
        sent_tokens += max(tokens, 1.0)
    if len(lateness) < 3:
        raise ContractFailure(f"a {TTFT_TOKENS}-token reply came in {len(lateness)} chunk(s): not streamed")
    return lateness[0] - statistics.median(lateness[1:])


def check_client_history(target: ContractTarget) -> None:
    """Client history mode: the whole conversation goes every turn, so the service can answer from it."""
    if HistoryMode.CLIENT not in target.history_modes:
        raise CheckSkipped("the service does not take the whole history")
    transport = target.make()
    try:
        first = send(transport, ask(PLANT, 20), "client history, turn 1")
        messages = (ChatMessage("user", PLANT), ChatMessage("assistant", first.text), ChatMessage("user", PROBE))
        second = send(transport, ChatRequest(messages=messages, max_tokens=40), "client history, turn 2")
        if target.recall:
            expect(
                FACT in second.text, f"client history: the reply to turn 2 does not recall {FACT!r}: {second.text!r}"
            )
    finally:
        transport.close()


def check_server_history(target: ContractTarget) -> None:
    """Server history mode: the new message and a session id only; the service keeps the rest."""
    if HistoryMode.SERVER not in target.history_modes:
        raise CheckSkipped("the service does not keep sessions")
    session = f"contract-{secrets.token_hex(6)}"
    transport = target.make()
    try:
        send(transport, ask(PLANT, 20, session_id=session), "server history, turn 1")
        second = send(transport, ask(PROBE, 40, session_id=session), "server history, turn 2")
        if target.recall:
            expect(
                FACT in second.text,
                f"server history: the reply to turn 2 of session {session} does not recall {FACT!r} (is the session "
                f"id sent?): {second.text!r}",
            )
    finally:
        transport.close()


REPLY_CHECKS: tuple[Check, ...] = (
    check_streamed_reply,
    check_whole_reply,
    check_fixed_ttft,
    check_client_history,
    check_server_history,
)

__all__ = [
    "REPLY_CHECKS",
    "Check",
    "CheckSkipped",
    "ContractFailure",
    "ask",
    "check_client_history",
    "check_fixed_ttft",
    "check_server_history",
    "check_streamed_reply",
    "check_whole_reply",
    "expect",
    "send",
    "timing_problems",
]
