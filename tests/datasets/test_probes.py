"""Retention probes planted into dataset conversations, and dataset conversations handed out as conversations:
the fact in the first turn, the question appended, short conversations left unprobed and counted, the verdicts
those of a scripted probe."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from loadgen.datasets import DatasetConversation, DatasetTurn, open_dataset
from loadgen.datasets.probes import FACT_KINDS, FACT_SLOT, MIN_PROBE_TURNS, ProbePlanter, escape
from loadgen.datasets.replay import DATASET_DIALOGUE, DatasetConversationFactory
from loadgen.dialogues.history import RequestSettings
from loadgen.dialogues.prefix import SharedPrefixes, prefix_text
from loadgen.dialogues.text import render_template
from loadgen.types import HistoryMode, Reply
from tests.datasets.helpers import openai_line, write_lines


def reply(text: str) -> Reply:
    return Reply(text=text, t_sent=0.0, t_done=0.1)


def recorded(*users: str, system: str | None = None) -> DatasetConversation:
    turns = tuple(DatasetTurn(user, f"reply to {user}") for user in users)
    return DatasetConversation("chats.jsonl", 7, 0, system, turns)


def test_escaped_text_renders_back_to_itself() -> None:
    for text in ("plain", "a {dict} and {{double}}", "}{", "{0} {} {name!r}"):
        assert render_template(escape(text), {}) == text


def test_the_fact_opens_the_first_turn_and_its_question_is_appended() -> None:
    planter = ProbePlanter("en_US")
    chat = recorded("How do I parse {json}?", "Thanks.", "And YAML?")
    planted = planter.plant(chat, random.Random(1))
    assert planted.kind in FACT_KINDS and planted.kind is not None
    value = planted.slots[FACT_SLOT]
    assert len(value) == 6 and value[:2].isalpha() and value[2:].isdigit()
    turns = planted.turns
    assert [t.index for t in turns] == [1, 2, 3, 4]
    first = render_template(turns[0].user, planted.slots)
    assert first == planted.kind.statement.format(fact=value) + " How do I parse {json}?"
    assert turns[0].plant == (FACT_SLOT,) and turns[0].probe == ()
    assert [render_template(t.user, {}) for t in turns[1:3]] == ["Thanks.", "And YAML?"]
    assert turns[3].user == planted.kind.question and turns[3].probe == (FACT_SLOT,)
    assert value not in turns[3].user
    assert (planter.probed, planter.unprobed) == (1, 0)


def test_a_conversation_too_short_gets_no_probe_and_is_counted() -> None:
    planter = ProbePlanter("en_US")
    planted = planter.plant(recorded("Only one turn."), random.Random(1))
    assert planted.kind is None and planted.slots == {}
    assert [(t.user, t.plant, t.probe) for t in planted.turns] == [("Only one turn.", (), ())]
    assert (planter.probed, planter.unprobed) == (0, 1)
    assert MIN_PROBE_TURNS == 2
    with pytest.raises(ValueError, match="2 user turns or more"):
        ProbePlanter("en_US", min_turns=1)


def test_the_same_stream_plants_the_same_fact_and_values_vary() -> None:
    planter = ProbePlanter("en_US")
    chat = recorded("one", "two", "three")
    first = planter.plant(chat, random.Random("7:0:0"))
    assert planter.plant(chat, random.Random("7:0:0")) == first
    values = {planter.plant(chat, random.Random(n)).slots[FACT_SLOT] for n in range(50)}
    assert len(values) == 50


def test_a_fact_found_in_the_conversations_own_text_is_redrawn() -> None:
    planter = ProbePlanter("en_US")
    rng = random.Random(3)
    taken = planter.plant(recorded("a", "b"), random.Random(3)).slots[FACT_SLOT]
    chat = recorded(f"My code was {taken} yesterday.", "b")
    assert planter.plant(chat, rng).slots[FACT_SLOT] != taken


def _factory(tmp_path: Path, **kwargs: object) -> DatasetConversationFactory:
    path = write_lines(
        tmp_path / "chats.jsonl", [openai_line(5, tag="a", system="Be {brief}."), openai_line(6, tag="b")]
    )
    return DatasetConversationFactory(open_dataset(path), **kwargs)  # type: ignore[arg-type]


def test_conversations_replay_the_datasets_user_turns_in_order(tmp_path: Path) -> None:
    factory = _factory(tmp_path)
    first, second, third = factory.new(0), factory.new(1), factory.new(0)
    assert first.dialogue.name == DATASET_DIALOGUE and first.dialogue.path.endswith("chats.jsonl:1")
    assert [first.render(t) for t in first.dialogue.turns] == [f"a u{i}" for i in range(1, 6)]
    assert [second.render(t) for t in second.dialogue.turns] == [f"b u{i}" for i in range(1, 7)]
    assert third.dialogue.path == first.dialogue.path  # the feed wraps around
    assert first.system_prompt() == "Be {brief}."
    messages = first.request(first.dialogue.turns[0]).messages
    assert [(m.role, m.content) for m in messages] == [("system", "Be {brief}."), ("user", "a u1")]
    assert all(not t.probe for t in first.dialogue.turns)


def test_planted_probes_pass_when_the_reply_holds_the_fact_and_fail_otherwise(tmp_path: Path) -> None:
    factory = _factory(tmp_path, plant_probes=True, seed=5)
    conversation = factory.new(0)
    turns = conversation.dialogue.turns
    assert len(turns) == 6 and turns[-1].probe == (FACT_SLOT,)
    value = conversation.slots[FACT_SLOT]
    for turn in turns[:-1]:
        conversation.request(turn)
        conversation.record(turn, reply("ok"))
    conversation.request(turns[-1])
    passed = conversation.record(turns[-1], reply(f'You told me: "... is {value}."'))
    assert passed.retention is not None and passed.retention.passed and passed.retention.checked == 1
    again = factory.new(0, conversation_number=0)
    assert again.slots == conversation.slots  # seeded: the same fact for the same user and number,
    assert len(again.dialogue.turns) == 7  # in the feed's next conversation (6 user turns and the probe)
    for turn in again.dialogue.turns[:-1]:
        again.request(turn)
        again.record(turn, reply("ok"))
    missed = again.record(again.dialogue.turns[-1], reply("I don't have that information."))
    assert missed.retention_miss == f"{DATASET_DIALOGUE} turn 7 forgot fact (planted at turn 1)"
    assert factory.planter is not None and factory.planter.probed == 2


def test_server_history_sends_the_planted_turn_once(tmp_path: Path) -> None:
    factory = _factory(tmp_path, plant_probes=True, settings=RequestSettings(history=HistoryMode.SERVER))
    conversation = factory.new(0)
    first = conversation.request(conversation.dialogue.turns[0])
    assert first.session_id == conversation.conversation_id
    assert conversation.slots[FACT_SLOT] in first.messages[-1].content


def test_a_shared_prefix_begins_a_dataset_conversation_too(tmp_path: Path) -> None:
    factory = _factory(tmp_path, prefixes=SharedPrefixes(32))
    conversation = factory.new(0)
    assert conversation.system_prompt() == prefix_text(0, 32) + "\n\nBe {brief}."


def test_recorded_history_sends_the_datasets_replies_and_checks_the_servers(tmp_path: Path) -> None:
    factory = _factory(tmp_path, recorded_history=True, plant_probes=True, seed=3)
    conversation = factory.new(0)
    turns = conversation.dialogue.turns
    for turn in turns[:2]:
        conversation.request(turn)
        conversation.record(turn, reply(f"server says {turn.index}"))
    sent = conversation.request(turns[2]).messages
    assert [(m.role, m.content) for m in sent[1:]][1::2] == [("assistant", "a a1"), ("assistant", "a a2")]
    assert all("server says" not in m.content for m in sent)
    conversation.record(turns[2], reply("ok"))
    for turn in turns[3:-1]:
        conversation.request(turn)
        conversation.record(turn, reply("ok"))
    conversation.request(turns[-1])  # the appended probe: no recorded reply, the server's is checked
    missed = conversation.record(turns[-1], reply("a a5"))
    assert missed.retention_miss is not None


def test_the_servers_replies_are_the_history_by_default(tmp_path: Path) -> None:
    conversation = _factory(tmp_path).new(0)
    first = conversation.dialogue.turns[0]
    conversation.request(first)
    conversation.record(first, reply("server says 1"))
    sent = conversation.request(conversation.dialogue.turns[1]).messages
    assert [m.content for m in sent if m.role == "assistant"] == ["server says 1"]
