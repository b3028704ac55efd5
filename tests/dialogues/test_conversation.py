"""Conversations: weighted dialogue choice, seeded Faker slots, rendering and retention verdicts."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from loadgen.dialogues import Conversation, ConversationFactory, DialogueError, RetentionVerdict, load_dialogue
from loadgen.dialogues.fakers import normalize_locale
from loadgen.dialogues.text import (
    COMMON_WORDS,
    compile_template,
    dialogue_wording,
    normalize_text,
    probe_value_problem,
)
from loadgen.errors import ConfigError
from tests.dialogues.conftest import JAPAN_DIALOGUE


@pytest.fixture
def small(write_dialogue: Callable[..., Path]) -> ConversationFactory:
    return ConversationFactory([load_dialogue(write_dialogue("small"))], seed=11)


def test_weights_choose_dialogues_in_proportion(write_dialogue: Callable[..., Path]) -> None:
    heavy = load_dialogue(write_dialogue("heavy", weight=3))
    light = load_dialogue(write_dialogue("light", weight=1))
    factory = ConversationFactory([heavy, light], seed=5)
    counts = Counter(factory.new(user).dialogue.name for user in range(4000))
    assert 0.70 < counts["heavy"] / 4000 < 0.80
    tiny = load_dialogue(write_dialogue("tiny", weight=0.001))
    only = ConversationFactory([tiny, heavy], seed=1)
    assert Counter(only.new(u).dialogue.name for u in range(200))["tiny"] <= 2


def test_seed_gives_the_same_choice_and_values(write_dialogue: Callable[..., Path]) -> None:
    dialogues = [load_dialogue(write_dialogue(n, weight=1)) for n in ("one", "two", "three")]

    def run(factory: ConversationFactory, users: list[int]) -> dict[tuple[int, int], tuple[str, dict[str, str]]]:
        out = {}
        for _ in range(3):
            for user in users:
                conversation = factory.new(user)
                out[(user, len([k for k in out if k[0] == user]))] = (conversation.dialogue.name, conversation.slots)
        return out

    a = run(ConversationFactory(dialogues, seed=42), [0, 1, 2, 3])
    b = run(ConversationFactory(dialogues, seed=42), [3, 2, 1, 0])  # other users' order does not matter
    assert a == b
    assert len({name for name, _ in a.values()}) > 1
    # the n-th conversation of a user can be asked for directly
    again = ConversationFactory(dialogues, seed=42).new(2, 1)
    assert (again.dialogue.name, again.slots) == a[(2, 1)]
    # a user's successive conversations differ, and another seed gives other values
    assert a[(0, 0)][1] != a[(0, 1)][1]
    other = run(ConversationFactory(dialogues, seed=43), [0, 1, 2, 3])
    assert [v[1] for v in other.values()] != [v[1] for v in a.values()]


def test_without_seed_values_differ(write_dialogue: Callable[..., Path]) -> None:
    dialogue = load_dialogue(write_dialogue("small"))
    first = ConversationFactory([dialogue]).new(0)
    second = ConversationFactory([dialogue]).new(0)
    assert first.slots != second.slots
    factory = ConversationFactory([dialogue])
    codes = {factory.new(0).slots["code"] for _ in range(20)}
    assert len(codes) == 20


def test_conversation_ids_are_unique_uuid4_hex(small: ConversationFactory) -> None:
    ids = {small.new(0).conversation_id for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_locale(write_dialogue: Callable[..., Path]) -> None:
    dialogue = load_dialogue(write_dialogue("small"))
    factory = ConversationFactory([dialogue], seed=1, locale="ja-jp")
    assert factory.locale == "ja_JP"
    names = {factory.new(u).slots["name"] for u in range(10)}
    assert all(not name.isascii() for name in names)  # Japanese first names
    assert normalize_locale("en_gb") == "en_GB"
    with pytest.raises(ConfigError, match=r"unknown Faker locale 'xx_YY'"):
        ConversationFactory([dialogue], locale="xx_YY")
    with pytest.raises(ConfigError, match="did you mean en_US"):
        normalize_locale("en_UX")


def test_provider_missing_for_the_factory_locale(write_dialogue: Callable[..., Path]) -> None:
    path = write_dialogue(text=JAPAN_DIALOGUE)
    dialogue = load_dialogue(path, locale="ja_JP")
    assert ConversationFactory([dialogue], seed=1, locale="ja_JP").new(0).slots["prefecture"]
    with pytest.raises(DialogueError) as caught:
        ConversationFactory([dialogue], locale="en_US")
    assert f"{path}:3: field `slots.prefecture`: `prefecture` is not a Faker provider for locale en_US" in str(
        caught.value
    )


def test_no_dialogues_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no dialogues"):
        ConversationFactory([])


def test_render_and_system_prompt(small: ConversationFactory) -> None:
    conversation = small.new(0)
    d = conversation.dialogue
    slots = conversation.slots
    assert set(slots) == {"name", "code", "colour"}
    assert re.fullmatch(r"[A-HJ-NP-Z]{2}\d{4}", slots["code"])
    assert slots["colour"] in {"Vermilion", "Chartreuse", "Turquoise"}
    assert conversation.render(d.turns[0]) == f"My name is {slots['name']} and I like {slots['colour']}."
    assert conversation.render(d.turns[2]) == "Tell me a {short} joke."
    assert conversation.system_prompt() == f"You help {slots['name']}."
    assert "Conversation('small'" in repr(conversation)


def test_plant_probe_and_verdicts(small: ConversationFactory) -> None:
    conversation = small.new(0)
    t1, t2, t3, t4, t5 = conversation.dialogue.turns
    name, code, colour = (conversation.slots[k] for k in ("name", "code", "colour"))
    assert conversation.planted == {}
    conversation.mark_sent(t1)
    conversation.mark_sent(t2)
    conversation.mark_sent(t3)
    assert conversation.planted == {"name": (name, 1), "colour": (colour, 1), "code": (code, 2)}

    assert conversation.check_retention(t3, "anything") is None  # probes nothing

    ok = conversation.check_retention(t4, f"Your code is {code}.")
    assert ok == RetentionVerdict(turn=4, checked=1, passed=True, dialogue="small")
    assert ok.reason() == "small turn 4 remembered 1 fact"

    # case-insensitive, whitespace normalised
    spaced = conversation.check_retention(t5, f"Sure,  {name.upper()} -\n you like {colour.lower()}")
    assert spaced is not None and spaced.passed and spaced.checked == 2

    bad = conversation.check_retention(t4, "I do not know.")
    assert bad is not None
    assert (bad.checked, bad.passed, bad.missing) == (1, False, (("code", code, 2),))
    # the reason groups (dialogue, turn, slot: the same for every conversation); the value is in the detail only
    assert bad.reason() == "small turn 4 forgot code (planted at turn 2)"
    assert code not in bad.reason()
    assert bad.detail() == f"small turn 4 forgot code='{code}' planted at turn 2"

    half = conversation.check_retention(t5, f"You are {name}.")
    assert half is not None and not half.passed and half.checked == 2
    assert half.reason() == "small turn 5 forgot colour (planted at turn 1)"


def test_a_fact_never_sent_is_skipped_not_failed(small: ConversationFactory) -> None:
    conversation = small.new(0)
    t1, _, _, t4, t5 = conversation.dialogue.turns
    conversation.mark_sent(t1)  # turn 2 (the code) got no reply: it was never planted
    verdict = conversation.check_retention(t4, "no idea")
    assert verdict == RetentionVerdict(turn=4, checked=0, passed=True, skipped=("code",), dialogue="small")
    verdict = conversation.check_retention(t5, "no idea")
    assert verdict is not None and verdict.checked == 2 and not verdict.passed


def test_probe_value_problems() -> None:
    assert probe_value_problem("Xavier") is None
    assert "shorter than 3" in (probe_value_problem("Al") or "")
    assert probe_value_problem("王芳") is None  # two CJK characters are distinctive
    assert "common words" in (probe_value_problem("Ann") or "")  # in "planning", "announce"
    assert "common words" in (probe_value_problem("Will") or "")
    assert "own wording" in (probe_value_problem("Quasar", avoid="the quasar lounge") or "")
    assert "overlaps" in (probe_value_problem("Jordan", others=["jordanville"]) or "")
    assert "overlaps" in (probe_value_problem("Jordan", others=["jordan"]) or "")  # another slot, same value
    assert "empty" in (probe_value_problem("  ") or "")
    assert "remember" in COMMON_WORDS


def test_probed_values_are_distinctive(write_dialogue: Callable[..., Path]) -> None:
    dialogue = load_dialogue(write_dialogue("small"))
    factory = ConversationFactory([dialogue], seed=99)
    avoid = dialogue_wording(dialogue)
    names = []
    for user in range(300):
        slots = factory.new(user).slots
        for slot in ("name", "code", "colour"):
            others = [normalize_text(v) for k, v in slots.items() if k != slot]
            assert probe_value_problem(slots[slot], avoid, others) is None, slots
        names.append(slots["name"])
    assert len(set(names)) > 50


def test_values_are_single_line(write_dialogue: Callable[..., Path]) -> None:
    text = """\
name: addresses
slots:
  address: address
turns:
  - user: "Send it to {address}."
    plant: [address]
  - user: "Hello."
  - user: "Hello again."
  - user: "Nice weather."
  - user: "Where do I want it sent?"
    probe: [address]
"""
    factory = ConversationFactory([load_dialogue(write_dialogue(text=text))], seed=2)
    for user in range(20):
        conversation = factory.new(user)
        assert "\n" not in conversation.slots["address"]
        turn1 = conversation.dialogue.turns[0]
        conversation.mark_sent(turn1)
        reply = "It goes to " + conversation.slots["address"].replace(" ", "\n  ")
        verdict = conversation.check_retention(conversation.dialogue.turns[-1], reply)
        assert verdict is not None and verdict.passed


def test_template_compilation() -> None:
    assert compile_template("a {x} b {{y}}") == (("a ", "x"), (" b {", None), ("y}", None))
    conversation = Conversation.__new__(Conversation)
    assert isinstance(conversation, Conversation)


def test_retention_through_the_reference_responder() -> None:
    """With the reference server's responder, every probe passes while the planting messages are in the
    context, and fails once they are gone (filler never passes a probe by accident)."""
    responder_module = pytest.importorskip("loadgen.server.responder")
    from loadgen.dialogues import DEFAULT_DIALOGUES_DIR, load_dialogues
    from loadgen.types import ChatMessage

    responder = responder_module.Responder()
    factory = ConversationFactory(load_dialogues([DEFAULT_DIALOGUES_DIR]), seed=8)
    checked = 0
    for user in range(150):
        conversation = factory.new(user)
        turns = conversation.dialogue.turns
        kept: list[ChatMessage] = []
        forgetful: list[ChatMessage] = []  # a context that lost every planting message
        for turn in turns:
            message = ChatMessage("user", conversation.render(turn))
            kept.append(message)
            if not turn.plant:
                forgetful.append(message)
            reply = responder.reply(kept, conversation.dialogue.max_tokens_for(turn))
            kept.append(ChatMessage("assistant", reply))
            conversation.mark_sent(turn)
            verdict = conversation.check_retention(turn, reply)
            if verdict is None:
                continue
            checked += 1
            assert verdict.passed, verdict.reason()
            lost = conversation.check_retention(turn, responder.reply([*forgetful, message], 256))
            assert lost is not None and not lost.passed
    assert checked >= 300


def test_two_probed_slots_never_share_a_value(write_dialogue: Callable[..., Path]) -> None:
    text = """\
name: two_names
slots:
  first: {choice: [Xavier, Yolanda]}
  second: {choice: [Xavier, Yolanda]}
turns:
  - user: "My first pick is {first}."
    plant: [first]
  - user: "My second pick is {second}."
    plant: [second]
  - user: "Hello."
  - user: "What was my first pick?"
    probe: [first]
  - user: "And my second pick?"
    probe: [second]
"""
    factory = ConversationFactory([load_dialogue(write_dialogue(text=text))], seed=4)
    for user in range(50):
        slots = factory.new(user).slots
        assert slots["first"] != slots["second"]
