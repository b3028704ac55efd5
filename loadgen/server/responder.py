"""The deterministic responder: what every engine of the reference server "says".

For the newest user message (the question) it looks for the earlier user message in the *context the server
kept* that shares the most content words with it, and quotes it first::

    You told me: "My booking code is QX4821.". <filler words ...>

otherwise it answers ``I don't have that information.`` followed by filler. So a retention probe passes only
if the server still holds the message that planted the fact: a session evicted from the store or a turn
dropped from the context window makes the probe fail for real. The fact comes first, so truncation to
``max_tokens`` keeps it (from about 30 tokens on); the filler makes every reply long enough to fill
``max_tokens``. The filler is drawn (seeded by a hash of the question) only from words that
:data:`loadgen.dialogues.conversation.COMMON_WORDS` lists, which no probed value may occur in, so filler can
never pass a probe by accident.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Sequence

from loadgen.types import ChatMessage

NOT_FOUND = "I don't have that information. "

#: Words that say nothing about which fact is asked for.
_STOP_TEXT = """
    about again all also and any are ask can could did does don for from get give had has have her hers him his
    how into its just know let like may mine more much not now our ours out please remember recall say she
    should tell than that the their them then there these they this those told too was were what when where
    which who whom why will with would you your yours
"""
STOP_WORDS = frozenset(_STOP_TEXT.split())

#: Filler vocabulary: every word is in COMMON_WORDS (a test checks), so filler never contains a probed value.
_FILLER_TEXT = """
    about actually again also always answer around available back because before better certainly check come
    could course day detail do done each early either enough even every example fine first following for from
    glad good great happy help here hope idea important information just keep kind know later let like little
    look make maybe mean might moment more most much need next nice note now often okay one only open other
    over part perhaps place plan please point possible probably quite rather ready really right same second
    see should simple since soon sound start still such sure take than thank that the then there these thing
    think this those through time today together too try under until very wait want way well which while will
    with within without work would yes yet you your
"""
FILLER_WORDS = tuple(_FILLER_TEXT.split())

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def content_words(text: str) -> set[str]:
    """Lower-cased words of three characters or more, punctuation stripped, stop words dropped."""
    words = set()
    for word in _WORD.findall(text.lower()):
        if word.endswith("'s"):
            word = word[:-2]
        if len(word) >= 3 and word not in STOP_WORDS:
            words.add(word)
    return words


#: Longest filler a reply needs (max_tokens is at most 4096).
MAX_FILLER_WORDS = 4096


def _build_corpus(n_words: int) -> tuple[str, list[int], list[int]]:
    """A fixed text of short sentences (seed 0), the character offset of each word, and the sentence starts
    a filler may begin at (each with at least MAX_FILLER_WORDS words after it)."""
    rng = random.Random(0)
    words: list[str] = []
    starts: list[int] = []
    while len(words) < n_words:
        length = rng.randint(6, 12)
        starts.append(len(words))
        sentence = rng.choices(FILLER_WORDS, k=length)
        sentence[0] = sentence[0].capitalize()
        sentence[-1] += "."
        words.extend(sentence)
    offsets: list[int] = []
    at = 0
    for word in words:
        offsets.append(at)
        at += len(word) + 1
    offsets.append(at)
    text = " ".join(words) + " "
    return text, offsets, [s for s in starts if s + MAX_FILLER_WORDS <= len(words)]


_CORPUS, _OFFSETS, _STARTS = _build_corpus(3 * MAX_FILLER_WORDS)


def filler(seed: int, n_words: int) -> str:
    """``n_words`` words in short sentences (the last may stop mid-way), the same for the same seed.

    A slice of one fixed text, starting at the sentence the seed picks: no per-reply randomness to pay for.
    """
    n_words = min(max(n_words, 1), MAX_FILLER_WORDS)
    start = _STARTS[seed % len(_STARTS)]
    return _CORPUS[_OFFSETS[start] : _OFFSETS[start + n_words] - 1]


#: Every reply is made of this text's words, but for the quoted fact: its fixed phrases and its filler (an
#: engine may share one object per token of it).
STOCK_TEXT = f"{NOT_FOUND}You told me: {_CORPUS}"


class Responder:
    """``reply(context, max_tokens)``: pure function of its inputs (no state, no clock, no randomness)."""

    def find_fact(self, context: Sequence[ChatMessage]) -> str | None:
        """The earlier user message the question is about, verbatim, or None."""
        question_at = _last_user_index(context)
        if question_at is None:
            return None
        wanted = content_words(context[question_at].content)
        if not wanted:
            return None
        best: tuple[bool, int, int] | None = None
        for i in range(question_at):
            message = context[i]
            if message.role != "user":
                continue
            score = len(wanted & content_words(message.content))
            if score < 1:
                continue
            # statements hold facts, questions do not: a statement wins over any question; then the score;
            # then the newest (a restated fact replaces the old one)
            key = (not message.content.rstrip().endswith("?"), score, i)
            if best is None or key > best:
                best = key
        return None if best is None else context[best[2]].content

    def reply(self, context: Sequence[ChatMessage], max_tokens: int) -> str:
        question_at = _last_user_index(context)
        question = context[question_at].content if question_at is not None else ""
        fact = self.find_fact(context)
        head = NOT_FOUND if fact is None else f'You told me: "{fact}". '
        seed = zlib.crc32(question.encode("utf-8", "surrogatepass"))
        return head + filler(seed, max(1, max_tokens))


def _last_user_index(context: Sequence[ChatMessage]) -> int | None:
    for i in range(len(context) - 1, -1, -1):
        if context[i].role == "user":
            return i
    return None


__all__ = [
    "FILLER_WORDS",
    "MAX_FILLER_WORDS",
    "NOT_FOUND",
    "STOCK_TEXT",
    "STOP_WORDS",
    "Responder",
    "content_words",
    "filler",
]
