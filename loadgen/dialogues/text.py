"""Text of dialogues: ``{slot}`` templates, the normalisation retention matching uses, and which values a probe
can rely on.

A template is compiled once into (literal, slot name) pieces; ``{{`` and ``}}`` are literal braces, anything
but a plain ``{name}`` field is a :class:`TemplateError`. Retention compares :func:`normalize_text` forms
(NFKC, case-folded, whitespace runs collapsed). A probed value must be distinctive (:func:`probe_value_problem`):
not too short, not inside common English words (:data:`COMMON_WORDS`), not in the dialogue's own wording, not
overlapping another slot's value, or a probe could pass by accident.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable, Mapping
from functools import lru_cache

from loadgen.dialogues.model import Dialogue

#: Shortest value a probe can rely on (ASCII); values with other characters (e.g. CJK names) need two.
MIN_PROBE_CHARS = 3


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
