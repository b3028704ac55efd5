"""One conversation = one run through a dialogue: its slots filled by Faker, its history, its retention checks.

:class:`ConversationFactory` is built once per Locust process and hands each user a fresh
:class:`Conversation` per conversation (``new(user_index)``). It holds one Faker instance (they cost ~30 ms
to build) and reseeds it per conversation: with a ``seed``, the same (seed, user index, conversation number)
always gives the same dialogue and the same slot values; without one every conversation differs.

A turn is two calls: :meth:`Conversation.request` builds its :class:`~loadgen.types.ChatRequest` (what goes
with it depends on the history mode, see :mod:`loadgen.dialogues.history`), and :meth:`Conversation.record`
takes what came back (a reply, or the transport's error) and returns a :class:`TurnResult`: the retention
verdict is taken, the turn's planted facts count from then on and the reply joins the history. A failed turn
plants nothing and adds nothing to the history.

A lost session: in ``server`` history mode, a reply that says the server did not know the session (``Reply.
session_new``, the server started a new one: it was evicted, expired, restarted or told to forget) on a turn after
one that got a reply is a *session* failure (:data:`SESSION_LOST`), not a retention one: its retention probes are
not checked, and the facts planted before it no longer count (the server lost them), so later probes of them are
skipped rather than failed.

Retention: a turn that ``probe`` s a slot passes when the reply contains the value planted earlier
(case-insensitive substring, whitespace and Unicode compatibility forms normalised). A substring check can
only fail if the value is distinctive, so values of probed slots are redrawn (deterministically) while they
are too short, occur in the dialogue's own wording or in common English words, or overlap another slot's
value: "Will", "May" or "Ann" (in "planning") would pass a probe by accident. A miss's reason names the dialogue,
the turn and the slots, never their values (so that reasons group: one bar per turn, not per conversation); the
values are in :meth:`RetentionVerdict.detail`, for the turn log.
"""

from __future__ import annotations

import bisect
import itertools
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from loadgen.dialogues.accounting import ConversationTokens, TokenAccounting
from loadgen.dialogues.fakers import DEFAULT_LOCALE, check_slot_spec, make_faker, normalize_locale
from loadgen.dialogues.history import History, RequestSettings
from loadgen.dialogues.model import Dialogue, DialogueError, Problem, SlotSpec, Turn
from loadgen.dialogues.prefix import SEPARATOR as PREFIX_SEPARATOR
from loadgen.dialogues.prefix import SharedPrefixes
from loadgen.dialogues.text import (
    COMMON_WORDS,
    clean_value,
    dialogue_wording,
    normalize_text,
    probe_value_problem,
    render_template,
)
from loadgen.errors import ConfigError, TransportError
from loadgen.types import ChatRequest, Reply, TokenCheck

__all__ = [
    "COMMON_WORDS",
    "MAX_REDRAWS",
    "SESSION_LOST",
    "Conversation",
    "ConversationFactory",
    "RequestSettings",
    "RetentionVerdict",
    "TurnResult",
]

#: Draws of a probed slot before the last value is kept anyway (the loader rejects slots that rarely pass).
MAX_REDRAWS = 20
#: The reason of a session failure.
SESSION_LOST = "session lost: the server did not know the session"
_DEFAULT_SETTINGS = RequestSettings()


@dataclass(frozen=True, slots=True)
class RetentionVerdict:
    """The outcome of one probing turn. ``missing`` holds (slot, value, turn it was planted at) per forgotten
    fact; ``skipped`` the probed slots never planted in this conversation (their turn got no reply)."""

    turn: int
    checked: int
    passed: bool
    missing: tuple[tuple[str, str, int], ...] = ()
    skipped: tuple[str, ...] = ()
    dialogue: str = ""

    def reason(self) -> str:
        """What a report groups by: the dialogue, the turn and the forgotten slots (never their values)."""
        where = f"{self.dialogue} turn {self.turn}" if self.dialogue else f"turn {self.turn}"
        if self.missing:
            forgotten = ", ".join(f"{slot} (planted at turn {at})" for slot, _, at in self.missing)
            return f"{where} forgot {forgotten}"
        facts = "fact" if self.checked == 1 else "facts"
        return f"{where} remembered {self.checked} {facts}"

    def detail(self) -> str:
        """The reason with the forgotten values (for the turn log, never a counter's name)."""
        if not self.missing:
            return self.reason()
        forgotten = ", ".join(f"{slot}={value!r} planted at turn {at}" for slot, value, at in self.missing)
        return f"{self.dialogue} turn {self.turn} forgot {forgotten}".lstrip()


@dataclass(frozen=True, slots=True)
class TurnResult:
    """What one turn came to: the reply (None when the transport failed), the error, the retention verdict."""

    conversation_id: str
    dialogue: str
    turn: int  # 1-based
    reply: Reply | None
    error: TransportError | None
    retention: RetentionVerdict | None  # None: the turn probed nothing, got no reply, or lost its session
    session_lost: bool = False  # the server did not know the session (see the module doc)
    tokens: TokenCheck | None = None  # the turn's token accounting (None: off, or no reply)

    @property
    def retention_miss(self) -> str | None:
        """What the reply forgot (the verdict's reason) when it missed a probe, else None."""
        verdict = self.retention
        return None if verdict is None or verdict.passed else verdict.reason()

    @property
    def retention_detail(self) -> str | None:
        """The miss with the forgotten values (for the turn log), else None."""
        verdict = self.retention
        return None if verdict is None or verdict.passed else verdict.detail()


class Conversation:
    """One user's run through one dialogue: the slot values, the history, what has been planted, the checks."""

    __slots__ = (
        "_asked",
        "_replied",
        "conversation_id",
        "dialogue",
        "history",
        "planted",
        "prefix",
        "recorded_replies",
        "settings",
        "slots",
        "tokens",
    )

    def __init__(
        self,
        dialogue: Dialogue,
        slots: dict[str, str],
        conversation_id: str | None = None,
        settings: RequestSettings = _DEFAULT_SETTINGS,
        prefix: str | None = None,
        accounting: TokenAccounting | None = None,
        token_rng: random.Random | None = None,
    ) -> None:
        self.conversation_id: str = conversation_id or uuid.uuid4().hex
        self.dialogue = dialogue
        self.slots = slots
        self.settings = settings
        #: A shared prefix (``--shared-prefix-tokens``) the system prompt begins with, or None.
        self.prefix = prefix
        #: Replies to send as history in place of the server's (a dataset's recorded ones, ``--dataset-history
        #: recorded``), by turn (index 0 = turn 1; None: the server's reply); None for the server's replies.
        self.recorded_replies: tuple[str | None, ...] | None = None
        self.planted: dict[str, tuple[str, int]] = {}
        self.history = History(settings.history, self.conversation_id, self.system_prompt())
        self._asked: tuple[Turn, str] | None = None  # the turn last asked, and its user message
        self._replied = False  # a turn got a reply: in server mode the server holds a session since
        #: Token shapes and accounting (:mod:`loadgen.dialogues.accounting`); None when the run has neither.
        self.tokens: ConversationTokens | None = None
        if accounting is not None:
            shape = accounting.shape.over(dialogue.shape)
            rng = token_rng if token_rng is not None else random.Random()
            self.tokens = ConversationTokens(accounting, shape, rng, self.system_prompt())

    def __repr__(self) -> str:
        return f"Conversation({self.dialogue.name!r}, id={self.conversation_id}, slots={self.slots!r})"

    def request(self, turn: Turn) -> ChatRequest:
        """The request that asks ``turn``: its user message, with what the history mode sends before it."""
        text = self.render(turn)
        max_tokens = self.settings.max_tokens or self.dialogue.max_tokens_for(turn)
        min_tokens = None
        if self.tokens is not None:
            text = self.tokens.user_text(text)
            min_tokens = self.tokens.ask(text)
            max_tokens = min_tokens or max_tokens
        self._asked = (turn, text)
        return ChatRequest(
            messages=self.history.messages_for(text),
            max_tokens=max_tokens,
            stream=self.settings.stream,
            model=self.settings.model,
            session_id=self.history.session_id,
            min_tokens=min_tokens,
            ignore_eos=min_tokens is not None,
        )

    def record(self, turn: Turn, reply: Reply | None, error: TransportError | None = None) -> TurnResult:
        """What came of ``turn`` (asked by :meth:`request`): a reply is checked for retention (unless it says the
        session was lost), then its planted facts count and it joins the history; a failed turn (``reply`` None)
        adds nothing."""
        asked = self._asked
        text = asked[1] if asked is not None and asked[0] is turn else self.render(turn)
        self._asked = None
        verdict = None
        lost = False
        tokens = None if self.tokens is None else self.tokens.check(reply)
        if reply is None:
            self.history.failed()
        else:
            lost = self._session_lost(reply)
            if lost:
                self.planted.clear()  # the server no longer holds them: later probes of them are skipped
            else:
                verdict = self.check_retention(turn, reply.text)
            self.mark_sent(turn)
            self.history.replied(text, self._history_reply(turn, reply.text))
            self._replied = True
        return TurnResult(self.conversation_id, self.dialogue.name, turn.index, reply, error, verdict, lost, tokens)

    def _history_reply(self, turn: Turn, reply_text: str) -> str:
        """What the history keeps as ``turn``'s reply: the recorded one where there is one, else the server's."""
        recorded = self.recorded_replies
        if recorded is not None and turn.index <= len(recorded):
            kept = recorded[turn.index - 1]
            if kept is not None:
                return kept
        return reply_text

    def _session_lost(self, reply: Reply) -> bool:
        """A server-mode reply that says the server started a new session after an earlier turn got a reply."""
        if not self._replied or self.history.session_id is None:
            return False
        return bool(getattr(reply, "session_new", False))

    def render(self, turn: Turn) -> str:
        """The user message of ``turn`` with its slots filled."""
        return render_template(turn.user, self.slots)

    def system_prompt(self) -> str | None:
        """The dialogue's system prompt with its slots filled, after the shared prefix when there is one."""
        system = self.dialogue.system
        rendered = None if system is None else render_template(system, self.slots)
        if self.prefix is None:
            return rendered
        return self.prefix if rendered is None else self.prefix + PREFIX_SEPARATOR + rendered

    def mark_sent(self, turn: Turn) -> None:
        """Record that ``turn`` reached the other side (it got a reply): its planted facts now count."""
        for slot in turn.plant:
            self.planted[slot] = (self.slots[slot], turn.index)

    def check_retention(self, turn: Turn, reply_text: str) -> RetentionVerdict | None:
        """None when ``turn`` probes nothing; else whether ``reply_text`` still holds every planted fact."""
        if not turn.probe:
            return None
        reply = normalize_text(reply_text)
        missing: list[tuple[str, str, int]] = []
        skipped: list[str] = []
        checked = 0
        for slot in turn.probe:
            planted = self.planted.get(slot)
            if planted is None:
                skipped.append(slot)
                continue
            checked += 1
            value, at = planted
            if normalize_text(value) not in reply:
                missing.append((slot, value, at))
        return RetentionVerdict(
            turn=turn.index,
            checked=checked,
            passed=not missing,
            missing=tuple(missing),
            skipped=tuple(skipped),
            dialogue=self.dialogue.name,
        )


@dataclass(frozen=True, slots=True)
class _Plan:
    """Per-dialogue precomputation: slot fill order (probed slots last) and the wording probes must avoid."""

    dialogue: Dialogue
    order: tuple[SlotSpec, ...]
    probed: frozenset[str]
    avoid: str


class ConversationFactory:
    """Hands out conversations: a dialogue chosen by weight, slots filled by one (reseeded) Faker instance.

    ``new(user_index)`` numbers each user's conversations 0, 1, 2, ...; with a ``seed`` the same (seed,
    user_index, number) always gives the same dialogue and slot values, whatever other users do. Not
    thread-safe (Locust users are greenlets of one thread; ``new`` never yields).
    """

    def __init__(
        self,
        dialogues: Sequence[Dialogue],
        *,
        seed: int | None = None,
        locale: str = DEFAULT_LOCALE,
        settings: RequestSettings = _DEFAULT_SETTINGS,
        prefixes: SharedPrefixes | None = None,
        accounting: TokenAccounting | None = None,
    ) -> None:
        if not dialogues:
            raise ConfigError("no dialogues to choose from: give dialogue files or folders (--dialogues)")
        self.dialogues: tuple[Dialogue, ...] = tuple(dialogues)
        self.seed = seed
        self.locale = normalize_locale(locale)
        self.settings = settings
        self.prefixes = prefixes
        self.accounting = accounting
        self._faker = make_faker(self.locale)
        self._check_providers()
        self._cum_weights = list(itertools.accumulate(d.weight for d in self.dialogues))
        self._plans = [self._plan(d) for d in self.dialogues]
        self._rng = random.Random()  # unseeded: from os.urandom
        self._counts: dict[int, int] = {}
        self._draw: dict[str, Callable[..., Any]] = {}

    def _check_providers(self) -> None:
        problems: list[Problem] = []
        for dialogue in self.dialogues:
            for spec in dialogue.slots.values():
                why = check_slot_spec(self._faker, spec, self.locale)
                if why is not None:
                    problems.append(Problem(dialogue.path, spec.line, f"slots.{spec.name}", why))
        if problems:
            raise DialogueError(problems)

    @staticmethod
    def _plan(dialogue: Dialogue) -> _Plan:
        probed = dialogue.probed_slots
        specs = list(dialogue.slots.values())
        order = [s for s in specs if s.name not in probed] + [s for s in specs if s.name in probed]
        return _Plan(dialogue, tuple(order), probed, dialogue_wording(dialogue))

    def new(self, user_index: int, conversation_number: int | None = None) -> Conversation:
        """The next conversation of user ``user_index`` (or its ``conversation_number`` -th, 0-based)."""
        if conversation_number is None:
            conversation_number = self._counts.get(user_index, 0)
            self._counts[user_index] = conversation_number + 1
        seeded = self.seed is not None
        rng = random.Random(f"{self.seed}:{user_index}:{conversation_number}") if seeded else self._rng
        total = self._cum_weights[-1]
        position = bisect.bisect_right(self._cum_weights, rng.random() * total)
        plan = self._plans[min(position, len(self._plans) - 1)]
        self._faker.seed_instance(rng.getrandbits(64))
        prefix = None
        if self.prefixes is not None:  # drawn after the rest: a seeded run without prefixes draws what it did
            index = self.prefixes.pick(rng)
            prefix = None if index is None else self.prefixes.text(index)
        if self.accounting is None:
            return Conversation(plan.dialogue, self._fill(plan), settings=self.settings, prefix=prefix)
        token_rng = random.Random(rng.getrandbits(64))  # drawn only with accounting: seeded runs stay as they were
        return Conversation(
            plan.dialogue,
            self._fill(plan),
            settings=self.settings,
            prefix=prefix,
            accounting=self.accounting,
            token_rng=token_rng,
        )

    def _value(self, spec: SlotSpec) -> str:
        if spec.choices is not None:
            choice: str = self._faker.random.choice(spec.choices)
            return choice
        assert spec.provider is not None
        draw = self._draw.get(spec.provider)
        if draw is None:
            draw = self._draw[spec.provider] = getattr(self._faker, spec.provider)
        return clean_value(draw(**spec.args))

    def _fill(self, plan: _Plan) -> dict[str, str]:
        values: dict[str, str] = {}
        for spec in plan.order:
            value = self._value(spec)
            if spec.name in plan.probed:
                others = [normalize_text(v) for v in values.values()]
                for _ in range(MAX_REDRAWS):
                    if probe_value_problem(value, plan.avoid, others) is None:
                        break
                    value = self._value(spec)
            values[spec.name] = value
        return {name: values[name] for name in plan.dialogue.slots}
