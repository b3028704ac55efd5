"""The reply bookkeeping every transport shares (loadgen.transports.replies): token counts and whole replies."""

from __future__ import annotations

import pytest

from loadgen.transports.replies import even_token_counts, fill_token_counts, streamed_reply, whole_reply
from loadgen.types import Usage


@pytest.mark.parametrize(
    ("tokens", "usage", "filled"),
    [
        ([1.0, 2.0], Usage(5, 3), [1.0, 2.0]),  # every chunk said: kept
        ([0.0, 0.0, 0.0], None, [1.0, 1.0, 1.0]),  # none said, no usage: one each
        ([0.0, 0.0], Usage(5, 6), [3.0, 3.0]),  # none said: usage spread evenly
        ([2.0, 0.0, 0.0], Usage(5, 6), [2.0, 2.0, 2.0]),  # the others share what is left
        ([5.0, 0.0], Usage(5, 4), [5.0, 1.0]),  # nothing left: one each
        ([], Usage(1, 9), []),
    ],
)
def test_fill_token_counts(tokens: list[float], usage: Usage | None, filled: list[float]) -> None:
    fill_token_counts(tokens, usage)
    assert tokens == filled


@pytest.mark.parametrize("chunks", [0, 1, 3, 64])
@pytest.mark.parametrize("usage", [None, Usage(3, 0), Usage(3, 64), Usage(3, 7)])
def test_even_counts_are_the_fill_of_chunks_that_said_nothing(chunks: int, usage: Usage | None) -> None:
    zeros = [0.0] * chunks
    fill_token_counts(zeros, usage)
    assert even_token_counts(chunks, usage) == zeros


def test_streamed_reply() -> None:
    reply = streamed_reply(["Hel", "lo"], [1.5, 1.7], None, Usage(4, 4), t_sent=1.0, t_first_byte=1.2, t_done=2.0)
    assert (reply.text, reply.chunk_tokens, reply.output_tokens, reply.ttft_s()) == ("Hello", [2.0, 2.0], 4.0, 0.5)


def test_whole_reply_is_one_chunk_stamped_at_the_end() -> None:
    reply = whole_reply("Hi there", Usage(3, 2), t_sent=1.0, t_first_byte=1.1, t_done=1.5)
    assert (reply.chunk_times, reply.chunk_tokens, reply.e2e_s()) == ([1.5], [2.0], 0.5)
    assert whole_reply("Hi", None, t_sent=0, t_first_byte=None, t_done=1).chunk_tokens == [1.0]  # count unknown
    assert whole_reply("", Usage(3, 0), t_sent=0, t_first_byte=None, t_done=1).chunk_times == []
