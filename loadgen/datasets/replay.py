"""Replay dataset conversations as Locust users' conversations (``--dataset FILE``).

:class:`DatasetConversationFactory` stands where :class:`~loadgen.dialogues.conversation.ConversationFactory`
stands for scripted dialogues: ``new(user_index)`` hands a user its next
:class:`~loadgen.dialogues.conversation.Conversation`. Each one is the next conversation of the shared feed
(:mod:`loadgen.datasets.feed`), its user turns in order, as a one-off :class:`~loadgen.dialogues.model.Dialogue`
named :data:`DATASET_DIALOGUE` (so the report has one row per turn number, whichever conversation it came from),
with the run's think times and reply length (the dialogue defaults, or ``--think-min``/``--think-max`` and
``--max-tokens``). The server's replies become the history, in the run's history mode; with ``recorded_history``
(``--dataset-history recorded``, client history mode only) the dataset's recorded replies are sent as the history
instead, for a server that must see fixed context (the server's replies are still timed and checked). With
``--plant-probes`` (:mod:`loadgen.datasets.probes`) a fact is planted in the first
turn and probed in an appended last one, checked like any scripted probe.

With ``--seed``, the facts, their kinds and the shared prefixes are the same for the same (seed, user index,
conversation number); which dataset conversation a user gets depends on the order users ask the feed.
"""

from __future__ import annotations

import random

from loadgen.datasets.feed import ConversationFeed
from loadgen.datasets.probes import FACT_SPEC, ProbePlanter, escape
from loadgen.dialogues.conversation import Conversation
from loadgen.dialogues.fakers import DEFAULT_LOCALE
from loadgen.dialogues.history import RequestSettings
from loadgen.dialogues.model import DEFAULT_MAX_TOKENS, DEFAULT_THINK_TIME, DEFAULT_WEIGHT, Dialogue, Turn
from loadgen.dialogues.prefix import SharedPrefixes

#: The dialogue name every replayed conversation reports under.
DATASET_DIALOGUE = "dataset"


class DatasetConversationFactory:
    """Hands out dataset conversations as :class:`Conversation` s, probes planted when asked. Not thread-safe
    (Locust users are greenlets of one thread; ``new`` never yields: the feed reads under a lock without
    yielding)."""

    def __init__(
        self,
        feed: ConversationFeed,
        *,
        seed: int | None = None,
        locale: str = DEFAULT_LOCALE,
        settings: RequestSettings | None = None,
        prefixes: SharedPrefixes | None = None,
        plant_probes: bool = False,
        recorded_history: bool = False,
    ) -> None:
        self.feed = feed
        self.seed = seed
        self.settings = settings or RequestSettings()
        self.prefixes = prefixes
        self.planter = ProbePlanter(locale) if plant_probes else None
        self.recorded_history = recorded_history
        self._rng = random.Random()  # unseeded: from os.urandom
        self._counts: dict[int, int] = {}

    def new(self, user_index: int, conversation_number: int | None = None) -> Conversation:
        """The next dataset conversation, for user ``user_index`` (its ``conversation_number`` -th, 0-based)."""
        if conversation_number is None:
            conversation_number = self._counts.get(user_index, 0)
            self._counts[user_index] = conversation_number + 1
        rng = random.Random(f"{self.seed}:{user_index}:{conversation_number}") if self.seed is not None else self._rng
        recorded = self.feed.next()
        slots: dict[str, str] = {}
        if self.planter is not None:
            planted = self.planter.plant(recorded, rng)
            turns, slots = planted.turns, planted.slots
        else:
            turns = tuple(Turn(index=i + 1, user=escape(t.user)) for i, t in enumerate(recorded.turns))
        dialogue = Dialogue(
            name=DATASET_DIALOGUE,
            path=recorded.source,
            description="",
            weight=DEFAULT_WEIGHT,
            min_turns=len(turns),
            think_time=DEFAULT_THINK_TIME,
            max_tokens=DEFAULT_MAX_TOKENS,
            system=None if recorded.system is None else escape(recorded.system),
            slots={FACT_SPEC.name: FACT_SPEC} if slots else {},
            turns=turns,
        )
        prefix = None
        if self.prefixes is not None:
            index = self.prefixes.pick(rng)
            prefix = None if index is None else self.prefixes.text(index)
        conversation = Conversation(dialogue, slots, settings=self.settings, prefix=prefix)
        if self.recorded_history:
            conversation.recorded_replies = tuple(turn.recorded_reply for turn in recorded.turns)
        return conversation


__all__ = ["DATASET_DIALOGUE", "DatasetConversationFactory"]
