"""A conversation's history: what each turn sends in client and server mode, and what a failed turn leaves out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loadgen.dialogues import Conversation, load_dialogue
from loadgen.dialogues.history import RequestSettings
from loadgen.errors import ConnectError
from loadgen.types import ChatMessage, HistoryMode, Reply

SLOTS = {"name": "Ada", "code": "QX1234", "colour": "Vermilion"}
SYSTEM = ChatMessage("system", "You help Ada.")
U1 = ChatMessage("user", "My name is Ada and I like Vermilion.")
U2 = ChatMessage("user", "My code is QX1234.")
U3 = ChatMessage("user", "Tell me a {short} joke.")
U4 = ChatMessage("user", "What was my code?")
U5 = ChatMessage("user", "Do you remember my name and the colour I like?")


def _reply(text: str) -> Reply:
    return Reply(text=text, t_sent=1.0, t_done=1.5)


@pytest.fixture
def make(write_dialogue: Callable[..., Path]) -> Callable[..., Conversation]:
    dialogue = load_dialogue(write_dialogue("small"))

    def make(**settings: Any) -> Conversation:
        return Conversation(dialogue, dict(SLOTS), "conv-1", settings=RequestSettings(**settings))

    return make


def _run(conversation: Conversation, outcomes: dict[int, str | None]) -> list[tuple[ChatMessage, ...]]:
    """Ask every turn; turn k gets reply ``outcomes[k]`` (default ``reply k``), None: the transport failed."""
    sent = []
    for turn in conversation.dialogue.turns:
        sent.append(conversation.request(turn).messages)
        text = outcomes.get(turn.index, f"reply {turn.index}")
        if text is None:
            conversation.record(turn, None, ConnectError("refused"))
        else:
            conversation.record(turn, _reply(text))
    return sent


def a(k: int) -> ChatMessage:
    return ChatMessage("assistant", f"reply {k}")


def test_client_mode_sends_the_whole_history_every_turn(make: Callable[..., Conversation]) -> None:
    sent = _run(make(), {})
    assert sent == [
        (SYSTEM, U1),
        (SYSTEM, U1, a(1), U2),
        (SYSTEM, U1, a(1), U2, a(2), U3),
        (SYSTEM, U1, a(1), U2, a(2), U3, a(3), U4),
        (SYSTEM, U1, a(1), U2, a(2), U3, a(3), U4, a(4), U5),
    ]


def test_client_mode_leaves_a_failed_turn_out_of_every_later_request(make: Callable[..., Conversation]) -> None:
    sent = _run(make(), {2: None})
    assert sent[2] == (SYSTEM, U1, a(1), U3)
    assert sent[3] == (SYSTEM, U1, a(1), U3, a(3), U4)
    assert sent[4] == (SYSTEM, U1, a(1), U3, a(3), U4, a(4), U5)


def test_a_failed_first_turn_leaves_only_the_system_prompt(make: Callable[..., Conversation]) -> None:
    sent = _run(make(), {1: None})
    assert sent[1] == (SYSTEM, U2)


def test_server_mode_sends_the_session_and_the_new_message(make: Callable[..., Conversation]) -> None:
    conversation = make(history=HistoryMode.SERVER)
    turns = conversation.dialogue.turns
    assert conversation.request(turns[0]).session_id == "conv-1"
    sent = _run(make(history=HistoryMode.SERVER), {})
    assert sent == [(SYSTEM, U1), (U2,), (U3,), (U4,), (U5,)]


def test_server_mode_sends_the_system_prompt_with_the_first_turn_only_even_if_it_failed(
    make: Callable[..., Conversation],
) -> None:
    sent = _run(make(history=HistoryMode.SERVER), {1: None, 3: None})
    assert sent == [(SYSTEM, U1), (U2,), (U3,), (U4,), (U5,)]


def test_requests_carry_the_run_settings_and_each_turns_reply_length(make: Callable[..., Conversation]) -> None:
    conversation = make()
    first, second = conversation.dialogue.turns[:2]
    request = conversation.request(first)
    assert (request.max_tokens, request.stream, request.model, request.session_id) == (64, True, "loadgen-sim", None)
    assert conversation.request(second).max_tokens == 32  # the turn's own max_tokens
    override = make(max_tokens=16, stream=False, model="my-model")
    request = override.request(second)
    assert (request.max_tokens, request.stream, request.model) == (16, False, "my-model")


def test_a_failed_turn_plants_nothing_so_its_probe_is_skipped(make: Callable[..., Conversation]) -> None:
    conversation = make()
    t1, t2, _, t4, _ = conversation.dialogue.turns
    conversation.request(t1)
    assert conversation.record(t1, _reply("hi")).retention is None
    conversation.request(t2)
    failed = conversation.record(t2, None, ConnectError("refused"))
    assert (failed.reply, failed.retention, failed.retention_miss) == (None, None, None)
    assert isinstance(failed.error, ConnectError)
    assert conversation.planted == {"name": ("Ada", 1), "colour": ("Vermilion", 1)}
    conversation.request(t4)
    probe = conversation.record(t4, _reply("no idea"))
    assert probe.retention is not None
    assert (probe.retention.checked, probe.retention.passed, probe.retention.skipped) == (0, True, ("code",))


def test_a_retention_miss_is_reported_and_its_reply_is_history(make: Callable[..., Conversation]) -> None:
    conversation = make()
    turns = conversation.dialogue.turns
    for turn in turns[:3]:
        conversation.request(turn)
        conversation.record(turn, _reply(f"reply {turn.index}"))
    conversation.request(turns[3])
    result = conversation.record(turns[3], _reply("I forgot."))
    assert (result.conversation_id, result.dialogue, result.turn) == ("conv-1", "small", 4)
    assert result.retention_miss == "small turn 4 forgot code (planted at turn 2)"
    assert result.retention_detail == "small turn 4 forgot code='QX1234' planted at turn 2"
    assert conversation.request(turns[4]).messages[-3:] == (U4, ChatMessage("assistant", "I forgot."), U5)
    kept = conversation.record(turns[4], _reply("Ada, you like vermilion"))
    assert kept.retention is not None and kept.retention.passed and kept.retention_miss is None


def test_record_without_request_uses_the_turns_own_message(make: Callable[..., Conversation]) -> None:
    conversation = make()
    first = conversation.dialogue.turns[0]
    conversation.record(first, _reply("hello"))
    assert conversation.history.messages == (SYSTEM, U1, ChatMessage("assistant", "hello"))


def _new_session(text: str) -> Any:
    """A reply whose server said it started a new session (the transports set ``Reply.session_new``)."""
    reply = _reply(text)
    if hasattr(reply, "session_new"):
        reply.session_new = True
        return reply

    class Flagged:  # until Reply has the field: a stand-in with the same attributes
        def __init__(self) -> None:
            self.text, self.session_new = text, True

    return Flagged()


def test_a_lost_session_is_a_session_failure_not_a_retention_one(make: Callable[..., Conversation]) -> None:
    conversation = make(history=HistoryMode.SERVER)
    turns = conversation.dialogue.turns
    conversation.request(turns[0])
    first = conversation.record(turns[0], _new_session("hi"))  # turn 1 always opens a new session
    assert not first.session_lost
    for turn in turns[1:3]:
        conversation.request(turn)
        assert not conversation.record(turn, _reply(f"reply {turn.index}")).session_lost
    # the server forgot the session (restarted, evicted): turn 4 probes the code, but the loss is the failure
    conversation.request(turns[3])
    lost = conversation.record(turns[3], _new_session("What code?"))
    assert (lost.session_lost, lost.retention, lost.retention_miss) == (True, None, None)
    # what was planted before is gone with the session: turn 5's probes are skipped, not failed
    conversation.request(turns[4])
    after = conversation.record(turns[4], _reply("no idea"))
    assert not after.session_lost
    assert after.retention is not None and (after.retention.checked, after.retention.passed) == (0, True)
    assert set(after.retention.skipped) == {"name", "colour"}


def test_a_new_session_is_no_loss_before_any_reply_or_in_client_mode(make: Callable[..., Conversation]) -> None:
    server = make(history=HistoryMode.SERVER)
    t1, t2 = server.dialogue.turns[:2]
    server.request(t1)
    server.record(t1, None, ConnectError("refused"))  # the session was never opened
    server.request(t2)
    assert not server.record(t2, _new_session("ok")).session_lost
    client = make()
    for turn in client.dialogue.turns[:2]:
        client.request(turn)
        assert not client.record(turn, _new_session("ok")).session_lost
