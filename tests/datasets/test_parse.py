"""One line -> system prompt and turns: both forms, role aliases, normalisation, and each problem's message."""

from __future__ import annotations

import json
from typing import Any

import pytest

from loadgen.datasets.model import DatasetTurn
from loadgen.datasets.parse import LineProblem, parse_line


def parse(obj: Any) -> tuple[str | None, tuple[DatasetTurn, ...]]:
    return parse_line(json.dumps(obj).encode())


def test_openai_form() -> None:
    system, turns = parse(
        {
            "id": "x1",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "Bye"},
            ],
        }
    )
    assert system == "Be brief."
    assert turns == (DatasetTurn("Hi", "Hello!"), DatasetTurn("Bye", None))


def test_openai_content_as_text_parts() -> None:
    parts = [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]
    _, turns = parse({"messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": "ok"}]})
    assert turns == (DatasetTurn("first\nsecond", "ok"),)


def test_sharegpt_form() -> None:
    system, turns = parse(
        {
            "conversations": [
                {"from": "system", "value": "You are terse."},
                {"from": "human", "value": "Q1"},
                {"from": "gpt", "value": "A1"},
                {"from": "human", "value": "Q2"},
                {"from": "gpt", "value": "A2"},
            ]
        }
    )
    assert system == "You are terse."
    assert turns == (DatasetTurn("Q1", "A1"), DatasetTurn("Q2", "A2"))


@pytest.mark.parametrize(
    ("name", "role"),
    [
        ("human", "user"),
        ("Human", "user"),
        ("user", "user"),
        ("gpt", "assistant"),
        ("chatgpt", "assistant"),
        ("bing", "assistant"),
        ("bard", "assistant"),
        ("assistant", "assistant"),
        ("system", "system"),
        ("developer", "system"),
    ],
)
def test_role_aliases(name: str, role: str) -> None:
    line = {"conversations": [{"from": name, "value": "text"}, {"from": "human", "value": "q"}]}
    expected = {
        "user": (None, (DatasetTurn("text\n\nq", None),)),
        "assistant": (None, (DatasetTurn("q", None),)),  # before the first user message: dropped
        "system": ("text", (DatasetTurn("q", None),)),
    }
    assert parse(line) == expected[role]
    if role == "assistant":
        _, turns = parse({"conversations": [{"from": "human", "value": "q"}, {"from": name, "value": "text"}]})
        assert turns == (DatasetTurn("q", "text"),)


def test_either_item_shape_in_either_list() -> None:
    _, turns = parse({"conversations": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    assert turns == (DatasetTurn("q", "a"),)
    _, turns = parse({"messages": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]})
    assert turns == (DatasetTurn("q", "a"),)


def test_normalisation() -> None:
    system, turns = parse(
        {
            "messages": [
                {"role": "system", "content": "S1"},
                {"role": "system", "content": "S2"},
                {"role": "assistant", "content": "Welcome! How can I help?"},  # before any user: dropped
                {"role": "user", "content": "U1"},
                {"role": "user", "content": "U1 again"},
                {"role": "assistant", "content": "A1"},
                {"role": "assistant", "content": "A1 more"},
                {"role": "user", "content": "U2"},
                {"role": "assistant", "content": ""},  # an empty recorded reply is kept
                {"role": "user", "content": "U3"},
            ]
        }
    )
    assert system == "S1\n\nS2"
    assert turns == (
        DatasetTurn("U1\n\nU1 again", "A1\n\nA1 more"),
        DatasetTurn("U2", ""),
        DatasetTurn("U3", None),
    )


def test_no_user_message_is_zero_turns() -> None:
    assert parse({"messages": []}) == (None, ())
    assert parse({"messages": [{"role": "system", "content": "S"}]}) == ("S", ())


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"messages": [', "not valid JSON (unexpected end of data at column 15)"),
        (b"[1, 2]", "expected a JSON object with `messages` or `conversations`, got a list"),
        (b'"text"', "expected a JSON object with `messages` or `conversations`, got a string"),
        (b'{"prompt": "hi"}', "no `messages` (OpenAI form) or `conversations` (ShareGPT form) list"),
        (b'{"messages": "hi"}', "`messages` must be a list of messages, got a string"),
        (b'{"conversations": {"from": "human"}}', "`conversations` must be a list of messages, got an object"),
        (b'{"messages": [3]}', "messages[0] must be an object, got a number"),
        (b'{"messages": [{"content": "x"}]}', "messages[0] has no `role` (OpenAI) or `from` (ShareGPT) string"),
        (
            b'{"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "x"}]}',
            "messages[1].role 'tool' is not a chat role this replay can send (one of system, developer, user, "
            "human, assistant, gpt, chatgpt, bing, bard)",
        ),
        (b'{"messages": [{"role": "user"}]}', "messages[0].content must be a string or a list of text parts, got null"),
        (
            b'{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}',
            "messages[0].content[0] is not a text part ({'type': 'text', 'text': ...}): 'image_url'",
        ),
        (b'{"conversations": [{"from": "human", "value": "  "}]}', "conversations[0] is a user message without text"),
        (
            b'{"messages": [{"role": "user", "content": "q"}, {"role": "system", "content": "s"}]}',
            "messages[1] is a system message after the first user message",
        ),
        (b'{"messages": [{"role": "user", "content": "\xff"}]}', "not valid JSON (str is not valid UTF-8: "),
    ],
)
def test_problems(raw: bytes, problem: str) -> None:
    with pytest.raises(LineProblem) as caught:
        parse_line(raw)
    assert str(caught.value).startswith(problem)
