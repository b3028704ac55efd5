"""One conversation = one run through a dialogue, with its slots filled by Faker, and the retention checks.

:class:`ConversationFactory` is built once per Locust process and hands each user a fresh
:class:`Conversation` per conversation (``new(user_index)``). It holds one Faker instance (they cost ~30 ms
to build) and reseeds it per conversation: with a ``seed``, the same (seed, user index, conversation number)
always gives the same dialogue and the same slot values; without one every conversation differs.

Retention: a turn that ``probe`` s a slot passes when the reply contains the value planted earlier
(case-insensitive substring, whitespace and Unicode compatibility forms normalised). A substring check can
only fail if the value is distinctive, so values of probed slots are redrawn (deterministically) while they
are too short, occur in the dialogue's own wording or in common English words, or overlap another slot's
value: "Will", "May" or "Ann" (in "planning") would pass a probe by accident.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import decimal
import itertools
import random
import re
import string
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from faker import Faker
from faker.config import AVAILABLE_LOCALES

from loadgen.dialogues.model import Dialogue, DialogueError, Problem, SlotSpec, Turn
from loadgen.errors import ConfigError

DEFAULT_LOCALE = "en_US"
#: Draws of a probed slot before the last value is kept anyway (the loader rejects slots that rarely pass).
MAX_REDRAWS = 20
#: Shortest value a probe can rely on (ASCII); values with other characters (e.g. CJK names) need two.
MIN_PROBE_CHARS = 3

# ---------------------------------------------------------------------------------------------- text helpers


def normalize_text(text: str) -> str:
    """What retention matching compares: NFKC, case-folded, whitespace runs collapsed to one space."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def clean_value(value: object) -> str:
    """A slot value as it appears in a message: text on one line (Faker addresses contain newlines)."""
    return " ".join(str(value).split())


#: A template is compiled into (literal, slot name or None) pieces.
TemplatePart = tuple[str, str | None]


class TemplateError(ValueError):
    """A user/system template that cannot be filled; the message says what to write instead."""


_SLOT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@lru_cache(maxsize=4096)
def compile_template(text: str) -> tuple[TemplatePart, ...]:
    """Split ``text`` into literal pieces and ``{slot}`` fields; ``{{`` and ``}}`` are literal braces.

    Raises :class:`TemplateError` for anything but a plain ``{name}`` field.
    """
    parts: list[TemplatePart] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(f"{exc}; write {{{{ and }}}} for literal braces") from exc
    for literal, field_name, spec, conversion in parsed:
        if field_name is None:
            parts.append((literal, None))
            continue
        if not field_name:
            raise TemplateError("empty field `{}`; expected a slot name such as {name}")
        if spec or conversion:
            raise TemplateError(f"field `{{{field_name}...}}` has a format spec or conversion; expected plain {{name}}")
        if not _SLOT_NAME.match(field_name):
            raise TemplateError(f"field `{{{field_name}}}` is not a slot name; expected letters, digits and _ only")
        parts.append((literal, field_name))
    return tuple(parts)


def template_slots(text: str) -> tuple[str, ...]:
    """Slot names a template uses, in order of first use."""
    return tuple(dict.fromkeys(name for _, name in compile_template(text) if name is not None))


def template_literal(text: str) -> str:
    """The fixed wording of a template (fields removed)."""
    return " ".join(literal for literal, _ in compile_template(text))


def render_template(text: str, values: Mapping[str, str]) -> str:
    out: list[str] = []
    for literal, name in compile_template(text):
        out.append(literal)
        if name is not None:
            out.append(values[name])
    return "".join(out)


# Words a reply (from a model or the reference server) is likely to contain whatever it was asked. A probed
# value found inside any of them (e.g. "Ann" in "planning", "Will", "May") could pass a probe by accident.
_COMMON_WORDS_TEXT = """
a about above according account actually add added address after afternoon again against ago agent ahead all
allow almost alone along already also although always am among an and announce another answer any anyone
anything anyway anywhere appointment are area around arrival arrive as ask asked assist assistance assistant
at available away back bad bag baggage be because been before begin being below best better between big bit
book booked booking both bring build bug but by call called can cannot care case certainly change check
city close code come command common company complete computer confirm confirmation connection consider
contact context could course create current customer date day days dear decide definitely delay department
depart departure describe detail details device did different do does doing done down during each earlier
early easy either else email end enjoy enough error even evening ever every everything example except
expect experience explain family far feel few file find fine first fix flight fly following for forget form
found free friend from function get give glad go going good great had happen happy has have having he hello
help here hi him his hold home hope hotel hour hours how however i idea if important in include information
instead into is issue it its itself just keep kind know last later learn least leave left less let like
likely line list little local long look lot love made make man many may maybe me mean memory mention
message might mind minute minutes moment more morning most much must my name need never new next nice night
no none not note nothing now number of off offer often oh ok okay on once one only open option or order
other our out over own page part particular password people perhaps person phone place plan planning please
point possible possibly power probably problem program project provide put question quite rather read ready
really reason recall recommend remember remind reply request reservation reset restart result return right
room run said same saw say second see seem send service set several she should show simple since sir so
some someone something sometimes soon sorry sound speak special start still stop such suggest support sure
system take talk team tell than thank thanks that the their them then there these they thing things think
this those though through ticket time to today together told too travel trip true try turn type under
understand unfortunately until up update us use used user using usually very visit wait want was way we
weather week well went were what when where whether which while who why will wish with within without
wonderful word work working world would write wrong year yes yet you your yourself
"""
COMMON_WORDS: tuple[str, ...] = tuple(_COMMON_WORDS_TEXT.split())

_COMMON_TEXT = " " + " ".join(COMMON_WORDS) + " "
_COMMON_SET = frozenset(COMMON_WORDS)
_PUNCTUATION = ".,;:!?'\"()-"


def probe_value_problem(value: str, avoid: str = "", others: Iterable[str] = ()) -> str | None:
    """Why ``value`` cannot serve as a probed fact (a probe for it could pass by accident), or None if it can.

    ``avoid`` is normalised text the reply may contain anyway (the dialogue's own wording); ``others`` are the
    other slots' values in the same conversation (normalised; an equal value counts as an overlap).
    """
    norm = normalize_text(value)
    if not norm:
        return "it is empty"
    min_chars = MIN_PROBE_CHARS if norm.isascii() else 2
    if len(norm) < min_chars:
        return f"{value!r} is shorter than {min_chars} characters"
    if norm in _COMMON_TEXT:
        return f"{value!r} occurs in common words"
    if all(word.strip(_PUNCTUATION) in _COMMON_SET for word in norm.split()):
        return f"{value!r} is made of common words"
    if avoid and norm in avoid:
        return f"{value!r} occurs in the dialogue's own wording"
    for other in others:
        if other and (norm in other or other in norm):
            return f"{value!r} overlaps another slot's value {other!r}"
    return None


def dialogue_wording(dialogue: Dialogue) -> str:
    """The dialogue's fixed wording (templates without their fields), normalised, for :func:`probe_value_problem`."""
    texts = [turn.user for turn in dialogue.turns]
    if dialogue.system:
        texts.append(dialogue.system)
    pieces: list[str] = []
    for text in texts:
        try:
            pieces.append(template_literal(text))
        except TemplateError:
            pieces.append(text)
    return " | ".join(normalize_text(piece) for piece in pieces)


# ---------------------------------------------------------------------------------------------- faker helpers

_LOCALES_BY_LOWER = {name.lower(): name for name in AVAILABLE_LOCALES}
#: Types a provider may return; str() of them is the slot value.
_TEXT_LIKE = (str, int, float, decimal.Decimal, _dt.date, _dt.time, _dt.timedelta, uuid.UUID)


def normalize_locale(locale: str) -> str:
    """Faker's spelling of ``locale`` (``en-us`` -> ``en_US``); :class:`ConfigError` for an unknown one."""
    cleaned = str(locale).strip().replace("-", "_")
    found = _LOCALES_BY_LOWER.get(cleaned.lower())
    if found is not None:
        return found
    import difflib

    close = difflib.get_close_matches(cleaned, AVAILABLE_LOCALES, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"unknown Faker locale {locale!r}{hint} Expected one of Faker's {len(AVAILABLE_LOCALES)} locales "
        "such as en_US, en_GB, de_DE, fr_FR, ja_JP"
    )


def make_faker(locale: str = DEFAULT_LOCALE) -> Faker:
    """A single-locale Faker instance with its own random generator (never Faker's shared one)."""
    fake = Faker(normalize_locale(locale))
    fake.seed_instance(0)
    return fake


@lru_cache(maxsize=16)
def _provider_names_for(locale: str) -> frozenset[str]:
    fake = Faker(locale)
    names: set[str] = set()
    for provider in fake.providers:
        for name in dir(provider):
            if not name.startswith("_") and callable(getattr(provider, name, None)):
                names.add(name)
    return frozenset(names)


def provider_names(locale: str = DEFAULT_LOCALE) -> frozenset[str]:
    """Names of the Faker providers (methods such as ``first_name``, ``city``, ``bothify``) for ``locale``."""
    return _provider_names_for(normalize_locale(locale))


@lru_cache(maxsize=16)
def validation_faker(locale: str = DEFAULT_LOCALE) -> Faker:
    """A Faker instance shared by validation code (reseeded before each use)."""
    return make_faker(locale)


def call_provider(fake: Faker, spec: SlotSpec) -> str:
    """One value from ``spec``'s provider; :class:`TypeError`/:class:`ValueError` for unusable results."""
    assert spec.provider is not None
    value = getattr(fake, spec.provider)(**dict(spec.args))
    if not isinstance(value, _TEXT_LIKE) or isinstance(value, bool):
        raise TypeError(f"it returned {type(value).__name__}, not text")
    return clean_value(value)


def check_slot_spec(fake: Faker, spec: SlotSpec, locale: str) -> str | None:
    """Why ``spec`` cannot produce values under ``fake`` (of ``locale``), or None."""
    if spec.provider is None:
        return None
    if spec.provider not in provider_names(locale):
        import difflib

        close = difflib.get_close_matches(spec.provider, sorted(provider_names(locale)), n=3, cutoff=0.7)
        hint = f"; did you mean {', '.join(f'`{c}`' for c in close)}?" if close else ""
        return (
            f"`{spec.provider}` is not a Faker provider for locale {locale}{hint} "
            "Expected a Faker method name such as first_name, city, company, bothify"
        )
    fake.seed_instance(0)
    try:
        value = call_provider(fake, spec)
    except Exception as exc:  # any provider/argument error is the file's problem, reported with its line
        args = ", ".join(f"{k}={v!r}" for k, v in spec.args.items())
        return f"calling Faker `{spec.provider}({args})` failed: {type(exc).__name__}: {exc}; check `args`"
    if not value:
        return f"Faker `{spec.provider}` gave an empty value; expected a provider that returns text"
    return None


# ---------------------------------------------------------------------------------------------- conversation


@dataclass(frozen=True, slots=True)
class RetentionVerdict:
    """The outcome of one probing turn. ``missing`` holds (slot, value, turn it was planted at) per forgotten
    fact; ``skipped`` the probed slots never planted in this conversation (their turn got no reply)."""

    turn: int
    checked: int
    passed: bool
    missing: tuple[tuple[str, str, int], ...] = ()
    skipped: tuple[str, ...] = ()

    def reason(self) -> str:
        if self.missing:
            forgotten = ", ".join(f"{slot}={value!r} planted at turn {at}" for slot, value, at in self.missing)
            return f"turn {self.turn} forgot {forgotten}"
        facts = "fact" if self.checked == 1 else "facts"
        return f"turn {self.turn} remembered {self.checked} {facts}"


class Conversation:
    """One user's run through one dialogue: the slot values, what has been planted, the retention checks."""

    __slots__ = ("conversation_id", "dialogue", "planted", "slots")

    def __init__(self, dialogue: Dialogue, slots: dict[str, str], conversation_id: str | None = None) -> None:
        self.conversation_id: str = conversation_id or uuid.uuid4().hex
        self.dialogue = dialogue
        self.slots = slots
        self.planted: dict[str, tuple[str, int]] = {}

    def __repr__(self) -> str:
        return f"Conversation({self.dialogue.name!r}, id={self.conversation_id}, slots={self.slots!r})"

    def render(self, turn: Turn) -> str:
        """The user message of ``turn`` with its slots filled."""
        return render_template(turn.user, self.slots)

    def system_prompt(self) -> str | None:
        system = self.dialogue.system
        return None if system is None else render_template(system, self.slots)

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
            turn=turn.index, checked=checked, passed=not missing, missing=tuple(missing), skipped=tuple(skipped)
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

    def __init__(self, dialogues: Sequence[Dialogue], *, seed: int | None = None, locale: str = DEFAULT_LOCALE) -> None:
        if not dialogues:
            raise ConfigError("no dialogues to choose from: give dialogue files or folders (--dialogues)")
        self.dialogues: tuple[Dialogue, ...] = tuple(dialogues)
        self.seed = seed
        self.locale = normalize_locale(locale)
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
        return Conversation(plan.dialogue, self._fill(plan))

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
