"""Synthetic token-length shapes: user turns of N±S tokens and replies of M±S tokens.

A shape is written ``N`` or ``N±S`` (``N+-S`` where ``±`` is awkward to type): each turn draws its length
uniformly from ``N-S`` to ``N+S`` (whole tokens, at least 1). ``--input-tokens`` / a dialogue's
``input_tokens:`` shape the user messages, ``--output-tokens`` / ``output_tokens:`` the replies asked for.

Input: :func:`fill_to` appends generated filler text to a turn's own text (after a blank line), so that the user
message counts the drawn number of tokens with the run's :class:`~loadgen.datasets.tokens.TokenCounter`; a turn
whose own text is already as long keeps it as it is. The filler's sentences end as the turn's text does (``?`` or
``.``): a question stays a question (the reference server's responder quotes statements, not questions, as the
facts a probe asks for), and the turn's own text comes first, so a quoted fact still starts with it. The filler
is drawn from
:data:`FILLER_WORDS`, a fixed list of common English function words: no probed value can occur in them (probed
values avoid common words) and the reference server's fact finder ignores them (they are its stop words), so
filler never decides a retention probe. It is the same for the same random generator state (a seeded run's
conversations are reproducible).

Output: a reply of M tokens is asked for as ``max_tokens = M`` with ``min_tokens = M`` and ``ignore_eos`` (the
OpenAI body's extensions that vLLM and the reference server honour) so that it is exactly M tokens long.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from loadgen.datasets.tokens import TokenCounter
from loadgen.errors import ConfigError

#: Filler vocabulary: common English function words, every one a stop word of the reference server's responder
#: and in :data:`loadgen.dialogues.text.COMMON_WORDS` (a test checks both).
_FILLER_TEXT = """
    about again all also and any are can could did does for from get give had has have how into its just know
    let like may more much not now our out please say should than that the their them then there these they
    this those too was were what when where which who will with would you your
"""
FILLER_WORDS: tuple[str, ...] = tuple(_FILLER_TEXT.split())
#: Between the filler and the turn's own text.
SEPARATOR = "\n\n"

_SHAPE_RE = re.compile(r"^\s*(\d+)\s*(?:(?:±|\+-|\+/-)\s*(\d+))?\s*$")


@dataclass(frozen=True, slots=True)
class TokenTarget:
    """A length of ``mean`` ± ``spread`` tokens (``spread`` < ``mean``)."""

    mean: int
    spread: int = 0

    def draw(self, rng: random.Random) -> int:
        """One length, uniform over ``[mean - spread, mean + spread]``."""
        if not self.spread:
            return self.mean
        return rng.randint(self.mean - self.spread, self.mean + self.spread)

    @property
    def high(self) -> int:
        return self.mean + self.spread

    def __str__(self) -> str:
        return f"{self.mean}±{self.spread}" if self.spread else str(self.mean)


def parse_target(value: object, where: str, *, high: int | None = None) -> TokenTarget:
    """``N`` or ``N±S`` (also ``N+-S``): :class:`ConfigError` naming ``where`` (an option or a field) if not."""
    text = str(value)
    expected = "expected N or N±S tokens (e.g. 200 or 200±50, also written 200+-50), whole numbers with 0 <= S < N"
    match = _SHAPE_RE.match(text) if not isinstance(value, bool) else None
    if match is None:
        raise ConfigError(f"{where} {text!r}: {expected}")
    mean, spread = int(match.group(1)), int(match.group(2) or 0)
    if mean < 1 or spread >= mean:
        raise ConfigError(f"{where} {text!r}: {expected}")
    target = TokenTarget(mean, spread)
    if high is not None and target.high > high:
        raise ConfigError(f"{where} {text!r}: asks for up to {target.high} tokens; at most {high} are allowed")
    return target


@dataclass(frozen=True, slots=True)
class TokenShape:
    """The lengths a run asks for: user messages (``input``) and replies (``output``); None leaves one as it is."""

    input: TokenTarget | None = None
    output: TokenTarget | None = None

    def __bool__(self) -> bool:
        return self.input is not None or self.output is not None

    def over(self, other: TokenShape) -> TokenShape:
        """This shape, ``other``'s lengths where this one sets none (the command line over a dialogue's)."""
        return TokenShape(self.input or other.input, self.output or other.output)


#: No shape: the lengths the dialogues ask for.
NO_SHAPE = TokenShape()


def filler_words(rng: random.Random, n: int, end: str = ".") -> list[str]:
    """``n`` filler words in short sentences (capitalised first word, ``end`` after the last)."""
    words: list[str] = []
    while len(words) < n:
        sentence = rng.choices(FILLER_WORDS, k=rng.randint(6, 12))
        sentence[0] = sentence[0].capitalize()
        sentence[-1] += end
        words.extend(sentence)
    return words[:n]


def fill_to(text: str, target: int, counter: TokenCounter, rng: random.Random) -> str:
    """``text`` with filler after it so that the whole counts ``target`` tokens (or as close below as whole words
    allow: a word that would overshoot is left out); ``text`` unchanged when it already counts ``target`` or more.
    The filler ends with ``?`` when ``text`` does, else with ``.``."""
    need = target - counter.count(text)
    if need <= 0:
        return text
    end = "?" if text.rstrip().endswith("?") else "."
    words = filler_words(rng, 2 * need + 8, end)  # a filler word may count less than one token (the estimate)

    def compose(k: int) -> str:
        if not k:
            return text
        filler = " ".join(words[:k])
        return text + SEPARATOR + (filler if filler.endswith(end) else filler + end)

    low, high = 0, len(words)  # the most words whose text still counts <= target: counts grow with k
    while low < high:
        mid = (low + high + 1) // 2
        if counter.count(compose(mid)) <= target:
            low = mid
        else:
            high = mid - 1
    return compose(low)


__all__ = [
    "FILLER_WORDS",
    "NO_SHAPE",
    "SEPARATOR",
    "TokenShape",
    "TokenTarget",
    "fill_to",
    "filler_words",
    "parse_target",
]
