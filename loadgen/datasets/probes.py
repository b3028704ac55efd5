"""Retention probes planted into replayed dataset conversations (``--plant-probes``).

A dataset conversation has no facts of its own that a check could look for, so one is planted: the first user
turn begins with a generated fact (``My locker combination is QX4821.``, a Faker ``bothify`` code, as the
scripted dialogues' ``code`` slots are drawn), and one turn is appended after the last that asks for it back
(``What is my locker combination?``). That probe turn is checked exactly as a scripted dialogue's probe is (see
:mod:`loadgen.dialogues.conversation`): the reply passes when it contains the planted value, and the verdict goes
to the same retention counters, report rows and thresholds. The question asks with the fact's own two distinctive
words and nothing else, so a server that quotes the message a question is about (the reference server's
responder) finds the planted turn, not some other turn of the recorded chat.

A conversation with fewer than :data:`MIN_PROBE_TURNS` user turns gets no probe (there would be no other talk
between the fact and the question) and is counted (:attr:`ProbePlanter.unprobed`).

Values are redrawn, like a probed slot's, while they are not distinctive (too short, in common English words, or
found in the conversation's own text), so a probe can only pass when the fact was remembered.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from types import MappingProxyType

from loadgen.datasets.model import DatasetConversation
from loadgen.dialogues.fakers import make_faker
from loadgen.dialogues.model import SlotSpec, Turn
from loadgen.dialogues.text import normalize_text, probe_value_problem

#: The slot the planted fact is held in (the turn log's retention detail names it).
FACT_SLOT = "fact"
#: User turns a conversation needs to get a probe: the planted turn and at least one more before the question.
MIN_PROBE_TURNS = 2
#: Draws of a fact before the last one is kept anyway (as :data:`loadgen.dialogues.conversation.MAX_REDRAWS`).
MAX_REDRAWS = 20
#: How a fact is drawn: an upper-case code without the letters I and O, like the dialogues' booking codes.
FACT_SPEC = SlotSpec(
    FACT_SLOT,
    provider="bothify",
    args=MappingProxyType({"text": "??####", "letters": "ABCDEFGHJKLMNPQRSTUVWXYZ"}),
)


@dataclass(frozen=True, slots=True)
class FactKind:
    """What the planted fact is said to be: the statement that plants it and the question that probes it."""

    statement: str  # a template with {fact}
    question: str


#: One is drawn per conversation. Each question's content words are two unusual ones the statement also has.
FACT_KINDS: tuple[FactKind, ...] = (
    FactKind("My locker combination is {fact}.", "What is my locker combination?"),
    FactKind("My parcel tracking reference is {fact}.", "What is my parcel tracking reference?"),
    FactKind("My library membership card is {fact}.", "What is my library membership card?"),
)


def escape(text: str) -> str:
    """``text`` as a message template that renders back to itself (literal braces doubled)."""
    return text.replace("{", "{{").replace("}", "}}")


@dataclass(frozen=True, slots=True)
class PlantedTurns:
    """A conversation's turns as templates, the planted fact's slot value, and the probe (None: too short)."""

    turns: tuple[Turn, ...]
    slots: dict[str, str]
    kind: FactKind | None


class ProbePlanter:
    """Plants a fact into conversations and appends its probe. Holds one Faker instance, reseeded per
    conversation from the random stream it is given. Not thread-safe (one per process, used between yields)."""

    def __init__(self, locale: str, min_turns: int = MIN_PROBE_TURNS) -> None:
        if min_turns < MIN_PROBE_TURNS:
            raise ValueError(f"a probe needs conversations of {MIN_PROBE_TURNS} user turns or more, not {min_turns}")
        self.min_turns = min_turns
        self._faker = make_faker(locale)
        self.probed = 0  # conversations that got a probe
        self.unprobed = 0  # conversations too short for one

    def plant(self, conversation: DatasetConversation, rng: random.Random) -> PlantedTurns:
        """The turns to replay: with a fact planted in the first and a probe appended, when it is long enough."""
        turns = [Turn(index=i + 1, user=escape(turn.user)) for i, turn in enumerate(conversation.turns)]
        if len(turns) < self.min_turns:
            self.unprobed += 1
            return PlantedTurns(tuple(turns), {}, None)
        kind = FACT_KINDS[rng.randrange(len(FACT_KINDS))]
        self._faker.seed_instance(rng.getrandbits(64))
        value = self._value(conversation, kind)
        first = turns[0]
        turns[0] = Turn(index=1, user=f"{kind.statement} {first.user}", plant=(FACT_SLOT,))
        turns.append(Turn(index=len(turns) + 1, user=escape(kind.question), probe=(FACT_SLOT,)))
        self.probed += 1
        return PlantedTurns(tuple(turns), {FACT_SLOT: value}, kind)

    def _value(self, conversation: DatasetConversation, kind: FactKind) -> str:
        texts = (kind.statement, kind.question, conversation.system or "", *conversation.user_turns)
        avoid = " | ".join(normalize_text(text) for text in texts)
        value = self._draw()
        for _ in range(MAX_REDRAWS):
            if probe_value_problem(value, avoid, []) is None:
                break
            value = self._draw()
        return value

    def _draw(self) -> str:
        assert FACT_SPEC.provider is not None
        value: str = getattr(self._faker, FACT_SPEC.provider)(**FACT_SPEC.args)
        return value


__all__ = ["FACT_KINDS", "FACT_SLOT", "MIN_PROBE_TURNS", "FactKind", "PlantedTurns", "ProbePlanter", "escape"]
