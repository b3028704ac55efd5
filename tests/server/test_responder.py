"""The deterministic responder: quotes the earlier message a question is about, or says it does not know."""

from __future__ import annotations

from loadgen.dialogues.conversation import COMMON_WORDS
from loadgen.server.responder import FILLER_WORDS, NOT_FOUND, Responder, content_words
from loadgen.server.tokens import WordTokenizer
from loadgen.types import ChatMessage

responder = Responder()
tok = WordTokenizer()


def U(text: str) -> ChatMessage:
    return ChatMessage("user", text)


def A(text: str) -> ChatMessage:
    return ChatMessage("assistant", text)


CONVERSATION = [
    ChatMessage("system", "You are a travel agent."),
    U("Hi, my name is Ottoline Brandvold."),
    A("Hello!"),
    U("My booking code is QX4821."),
    A("Noted."),
    U("Anything to see near the airport?"),
    A("Plenty."),
]


def test_content_words_drop_stop_words_short_words_and_punctuation() -> None:
    assert content_words("What was my booking code again?") == {"booking", "code"}
    assert content_words("Hi, my name is Ottoline's!") == {"name", "ottoline"}


def test_fact_found_comes_first_verbatim() -> None:
    reply = responder.reply([*CONVERSATION, U("What was my booking code again?")], 64)
    assert reply.startswith('You told me: "My booking code is QX4821.". ')
    reply = responder.reply([*CONVERSATION, U("And do you remember my name?")], 64)
    assert reply.startswith('You told me: "Hi, my name is Ottoline Brandvold.". ')


def test_no_fact_found() -> None:
    reply = responder.reply([*CONVERSATION, U("Which gate do we depart from?")], 64)
    assert reply.startswith(NOT_FOUND)
    assert "QX4821" not in reply
    # the planting message is not in the context the server kept: the probe fails for real
    reply = responder.reply([U("What was my booking code again?")], 64)
    assert reply.startswith(NOT_FOUND)


def test_statements_win_over_earlier_questions() -> None:
    context = [*CONVERSATION, U("What was my booking code again?"), A("..."), U("My booking code, again?")]
    assert responder.reply(context, 64).startswith('You told me: "My booking code is QX4821.". ')


def test_reply_is_deterministic_and_fills_max_tokens() -> None:
    context = [*CONVERSATION, U("What was my booking code again?")]
    for max_tokens in (1, 5, 30, 64, 500):
        reply = responder.reply(context, max_tokens)
        assert reply == responder.reply(context, max_tokens)
        assert tok.count(reply) >= max_tokens
    other = responder.reply([*CONVERSATION, U("Which gate do we depart from?")], 64)
    assert other[len(NOT_FOUND) :] != responder.reply(context, 64)[len(NOT_FOUND) :]


def test_truncation_to_max_tokens_keeps_the_fact() -> None:
    context = [*CONVERSATION, U("What was my booking code again?")]
    for max_tokens in (10, 30, 64):
        kept = "".join(tok.split(responder.reply(context, max_tokens))[:max_tokens])
        assert "QX4821" in kept


def test_filler_words_cannot_pass_a_probe_by_accident() -> None:
    common = set(COMMON_WORDS)
    assert set(FILLER_WORDS) <= common, sorted(set(FILLER_WORDS) - common)
