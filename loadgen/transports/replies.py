"""A :class:`~loadgen.types.Reply` put together from what a transport read: the bookkeeping every transport shares.

Token counts: a chunk that says how many tokens it carries (gRPC ``tokens``, AMQP ``tokens``) keeps that count;
one that does not (every OpenAI chunk, a zero count from a server other than ours) counts as 1, unless the reply's
usage says how many tokens there were: then the chunks without a count share what the others leave, evenly.
A whole (non-streamed) reply is one chunk carrying all its text, stamped when it ended, with the usage's count
(1 without usage: its token count is unknown).
"""

from __future__ import annotations

from loadgen.errors import ProtocolError
from loadgen.types import Reply, Usage


def reply_too_large(limit: int) -> ProtocolError:
    """The failure of a reply past ``limit`` bytes (``--max-reply-bytes``): a reply no chat turn should send,
    never a success, and never kept whole in memory."""
    return ProtocolError(f"the reply ran past the reply size limit of {limit:,} bytes (--max-reply-bytes)")


def fill_token_counts(tokens: list[float], usage: Usage | None) -> None:
    """Give every count that is 0 or less its share (in place), as the module says."""
    unknown = [i for i, t in enumerate(tokens) if t <= 0]
    if not unknown:
        return
    share = 1.0
    if usage is not None:
        rest = usage.completion_tokens - sum(t for t in tokens if t > 0)
        if rest > 0:
            share = rest / len(unknown)
    for i in unknown:
        tokens[i] = share


def even_token_counts(chunks: int, usage: Usage | None) -> list[float]:
    """The counts of ``chunks`` chunks none of which said its own: :func:`fill_token_counts` of as many zeros,
    without a pass over them (the REST transport's case, once per turn)."""
    share = usage.completion_tokens / chunks if usage is not None and usage.completion_tokens > 0 and chunks else 1.0
    return [share] * chunks


def streamed_reply(
    parts: list[str],
    chunk_times: list[float],
    chunk_tokens: list[float] | None,
    usage: Usage | None,
    *,
    t_sent: float,
    t_first_byte: float | None,
    t_done: float,
) -> Reply:
    """The reply of a stream: ``parts[i]`` arrived at ``chunk_times[i]`` carrying ``chunk_tokens[i]`` tokens (0:
    unknown, filled in here; the list is used as it is; ``None``: no chunk said)."""
    if chunk_tokens is None:
        chunk_tokens = even_token_counts(len(chunk_times), usage)
    else:
        fill_token_counts(chunk_tokens, usage)
    return Reply(
        text="".join(parts),
        t_sent=t_sent,
        t_done=t_done,
        t_first_byte=t_first_byte,
        chunk_times=chunk_times,
        chunk_tokens=chunk_tokens,
        usage=usage,
    )


def whole_reply(text: str, usage: Usage | None, *, t_sent: float, t_first_byte: float | None, t_done: float) -> Reply:
    """The reply that came in one piece at ``t_done``."""
    reply = Reply(text=text, t_sent=t_sent, t_done=t_done, t_first_byte=t_first_byte, usage=usage)
    if text:
        count = usage.completion_tokens if usage is not None else 0
        reply.chunk_times.append(t_done)
        reply.chunk_tokens.append(float(count) if count > 0 else 1.0)
    return reply


__all__ = ["even_token_counts", "fill_token_counts", "reply_too_large", "streamed_reply", "whole_reply"]
