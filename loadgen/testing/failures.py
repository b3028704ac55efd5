"""The contract's failure checks: each failure the right kind, raised in time, and the transport still usable after.

- a refused connection is a :class:`~loadgen.errors.ConnectError`, promptly;
- a turn past its timeout is a :class:`~loadgen.errors.TurnTimeout` by the deadline (not long after it, not before
  it), both before the first token and mid-stream; the next turn on the same transport gets its own reply, not
  the late chunks of the one that timed out;
- an error answer is a :class:`~loadgen.errors.ServerError`, and the transport goes on;
- a secret (the API key) never appears in a failure's reason;
- a turn cut short lets the service stop its stream (seen in its counters, when the target gives them), and
  ``close()`` may be called twice.

Timing bounds here catch hangs and timeouts that are ignored, not latency: the slack is generous on purpose.
"""

from __future__ import annotations

import time

from loadgen.errors import ConnectError, ServerError, TransportError, TurnTimeout
from loadgen.testing.checks import PLANT, Check, CheckSkipped, ContractFailure, ask, expect, send
from loadgen.testing.target import ContractTarget
from loadgen.transports.base import Transport
from loadgen.types import ChatRequest

#: How long past its deadline a timeout may come out, and a cut stream take to stop on the server (generous for a
#: busy machine; a transport that waits for the whole reply before it times out is late by over a second).
LATE_SLACK_S = 0.5
#: How long a refused connection may take past the connect timeout.
REFUSED_SLACK_S = 2.0
#: Tokens of a reply long enough to be cut short by the timeout checks (~2 s at the reference server's pace).
LONG_REPLY_TOKENS = 200
SECRET = "sk-contract-Zq8Xv2Lw"


def fail_with(
    transport: Transport, request: ChatRequest, expected: type[TransportError], what: str, timeout: float | None = None
) -> tuple[TransportError, float]:
    """Send a turn that must fail with ``expected``; the error and the seconds it took."""
    started = time.perf_counter()
    try:
        reply = transport.send(request, timeout=timeout)
    except TransportError as exc:
        elapsed = time.perf_counter() - started
        expect(
            isinstance(exc, expected),
            f"{what}: expected {expected.__name__}, got {type(exc).__name__}: {exc.reason}",
        )
        expect(bool(exc.reason.strip()) and "\n" not in exc.reason, f"{what}: the reason must be one line: {exc!r}")
        return exc, elapsed
    raise ContractFailure(f"{what}: expected {expected.__name__}, got a reply of {len(reply.text)} characters")


def check_refused_connection(target: ContractTarget) -> None:
    """Nothing listening: :class:`ConnectError` within the connect timeout (plus slack)."""
    transport = target.make(target=target.refused())
    try:
        _, elapsed = fail_with(transport, ask(PLANT, 5), ConnectError, "refused connection")
        limit = target.connect_timeout_s + REFUSED_SLACK_S
        expect(elapsed <= limit, f"refused connection: the failure took {elapsed:.2f} s (allowed {limit:g} s)")
    finally:
        transport.close()


def check_turn_timeout(target: ContractTarget) -> None:
    """A reply slower than the turn's timeout: :class:`TurnTimeout` at the deadline, before the first token and
    mid-stream; then a short turn on the same transport gets a reply of its own."""
    if target.fixed_ttft_ms is None or target.fixed_itl_ms is None:
        raise CheckSkipped("the service's fixed timing is not known (fixed_ttft_ms, fixed_itl_ms)")
    ttft_s, itl_s = target.fixed_ttft_ms / 1000.0, target.fixed_itl_ms / 1000.0
    cases = (
        ("before the first token", ttft_s / 2),
        ("mid-stream", ttft_s + 16 * itl_s),
    )
    transport = target.make()
    try:
        send(transport, ask(PLANT, 5), "warm-up turn")
        for what, timeout in cases:
            if timeout <= 0.001:
                raise CheckSkipped(f"the service's fixed timing is too short to time out {what}")
            _, elapsed = fail_with(transport, ask(PLANT, LONG_REPLY_TOKENS), TurnTimeout, f"timeout {what}", timeout)
            expect(elapsed >= timeout * 0.9, f"timeout {what}: failed after {elapsed:.3f} s, before its {timeout:g} s")
            expect(
                elapsed <= timeout + LATE_SLACK_S,
                f"timeout {what}: failed after {elapsed:.2f} s, long past its {timeout:g} s",
            )
            _expect_own_reply(transport, f"the turn after the timeout {what}")
    finally:
        transport.close()


def _expect_own_reply(transport: Transport, what: str) -> None:
    """A 5-token turn gets at most 5 tokens: none left over from a longer reply cut short before it."""
    reply = send(transport, ask(PLANT, 5), what)
    expect(len(reply.chunk_times) <= 5, f"{what}: {len(reply.chunk_times)} chunks for 5 tokens (a late reply's?)")
    if reply.usage is not None:
        expect(reply.usage.completion_tokens <= 5, f"{what}: usage says {reply.usage.completion_tokens} tokens, not 5")


def check_server_error(target: ContractTarget) -> None:
    """An error answer: :class:`ServerError` (or :class:`~loadgen.errors.Overloaded`), promptly; the transport goes
    on."""
    if target.error_request is None:
        raise CheckSkipped("no request the service answers with an error (error_request)")
    transport = target.make()
    try:
        _, elapsed = fail_with(transport, target.error_request, ServerError, "server error")
        expect(elapsed <= target.timeout_s, f"server error: took {elapsed:.2f} s")
        _expect_own_reply(transport, "the turn after a server error")
    finally:
        transport.close()


def check_secrets_scrubbed(target: ContractTarget) -> None:
    """A secret the transport holds (here: an API key) is never in a failure's reason: on a refused connection,
    and on an error answer (when the service takes a key it does not require)."""
    cases: list[tuple[str, str, ChatRequest, type[TransportError]]] = [
        ("refused connection with an API key", target.refused(), ask(PLANT, 5), ConnectError)
    ]
    if target.error_request is not None and target.api_key is None:
        cases.append(("server error with an API key", target.url, target.error_request, ServerError))
    for what, url, request, expected in cases:
        transport = target.make(target=url, api_key=SECRET)
        try:
            exc, _ = fail_with(transport, request, expected, what)
            expect(SECRET not in exc.reason and SECRET not in str(exc), f"{what}: the key is in the reason {exc!r}")
        finally:
            transport.close()


def check_cut_short(target: ContractTarget) -> None:
    """A turn cut short by its timeout mid-stream: the service stops its stream (when ``stats`` shows it), the
    transport goes on, and ``close()`` may be called twice."""
    if target.fixed_ttft_ms is None or target.fixed_itl_ms is None:
        raise CheckSkipped("the service's fixed timing is not known (fixed_ttft_ms, fixed_itl_ms)")
    timeout = (target.fixed_ttft_ms + 4 * target.fixed_itl_ms) / 1000.0
    transport = target.make()
    try:
        send(transport, ask(PLANT, 5), "warm-up turn")
        before = _completed(target)
        fail_with(transport, ask(PLANT, LONG_REPLY_TOKENS), TurnTimeout, "a turn cut short", timeout)
        if before is not None:
            _expect_stream_stopped(target, before)
        _expect_own_reply(transport, "the turn after one cut short")
    finally:
        transport.close()
    try:
        transport.close()
    except Exception as exc:
        raise ContractFailure(f"close() a second time raised {type(exc).__name__}: {exc}") from exc


def _completed(target: ContractTarget) -> int | None:
    if target.stats is None:
        return None
    return int(target.stats()["service"]["completed"])


def _expect_stream_stopped(target: ContractTarget, before: int) -> None:
    """The service stopped the stream without completing it, soon after the turn ended (a stream the transport
    did not let go of runs to its end and counts as completed)."""
    assert target.stats is not None
    deadline = time.monotonic() + LATE_SLACK_S
    while True:
        service = target.stats()["service"]
        if service["completed"] > before:
            raise ContractFailure(
                "the service streamed the reply of a turn cut short to its end: the transport does not let go of it"
            )
        if service["active"] == 0:
            return
        if time.monotonic() > deadline:
            raise ContractFailure(
                f"the service still streams the reply of a turn cut short {LATE_SLACK_S:g} s ago: the transport "
                "does not let go of it"
            )
        time.sleep(0.02)


FAILURE_CHECKS: tuple[Check, ...] = (
    check_refused_connection,
    check_turn_timeout,
    check_server_error,
    check_secrets_scrubbed,
    check_cut_short,
)

__all__ = [
    "FAILURE_CHECKS",
    "LATE_SLACK_S",
    "check_cut_short",
    "check_refused_connection",
    "check_secrets_scrubbed",
    "check_server_error",
    "check_turn_timeout",
    "fail_with",
]
