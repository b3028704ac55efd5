"""Templates: placeholders keep their types alone, become text among text, nulls leave their keys out."""

from __future__ import annotations

from typing import Any

import pytest

from loadgen.adapters.request import shape_messages, turn_values
from loadgen.adapters.spec import HistoryShape
from loadgen.adapters.template import (
    ITEM_NAMES,
    TURN_NAMES,
    TemplateError,
    as_text,
    list_template,
    literal,
    mapping_template,
    text_template,
)
from loadgen.types import ChatMessage, ChatRequest

VALUES: dict[str, Any] = {
    "message": "Hi {there}",
    "history": [{"role": "user", "content": "Hi"}],
    "session_id": None,
    "max_tokens": 64,
    "stream": True,
    "api_key": "k3y",
    "env:TOKEN": "t0k",
}


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("{message}", "Hi {there}"),  # values are never read as templates
        ("{max_tokens}", 64),
        ("{stream}", True),
        ("{session_id}", None),
        ("{history}", [{"role": "user", "content": "Hi"}]),
        ("Bearer {api_key}", "Bearer k3y"),
        ("{env:TOKEN}", "t0k"),
        ("n={max_tokens}, s={stream}, id={session_id}.", "n=64, s=true, id=."),
        ("{{literal}} {message}", "{literal} Hi {there}"),
        ("{{}}", "{}"),
        ("plain", "plain"),
        ("{ message }", "Hi {there}"),
    ],
)
def test_text_templates(text: str, rendered: Any) -> None:
    assert text_template(text, TURN_NAMES).render(VALUES) == rendered


def test_a_list_or_mapping_in_text_is_lines_or_json() -> None:
    assert as_text(["a", "b"]) == "a\nb"
    assert as_text([{"role": "user"}]) == '[{"role":"user"}]'
    assert as_text(None) == ""


def test_nulls_leave_their_keys_and_items_out() -> None:
    body = mapping_template(
        [
            ("session", text_template("{session_id}", TURN_NAMES)),
            ("kept", literal(0)),
            ("written_null", literal(None)),
            ("list", list_template([text_template("{session_id}", TURN_NAMES), literal("x")])),
            ("nested", mapping_template([("limit", text_template("{max_tokens}", TURN_NAMES))])),
        ]
    )
    assert body.render(VALUES) == {"kept": 0, "list": ["x"], "nested": {"limit": 64}}
    assert body.names == {"session_id", "max_tokens"}


def test_a_path_template_quotes_its_values() -> None:
    path = text_template("/chat/{session_id}?q={message}", TURN_NAMES, escape=lambda v: v.replace(" ", "%20"))
    assert path.render({**VALUES, "session_id": "s 1"}) == "/chat/s%201?q=Hi%20{there}"


@pytest.mark.parametrize(
    ("text", "allowed", "message"),
    [
        ("{mesage}", TURN_NAMES, "unknown placeholder `{mesage}`"),
        ("{role}", TURN_NAMES, "unknown placeholder `{role}`"),
        ("{message}", ITEM_NAMES, "unknown placeholder `{message}`"),
        ("a } b", TURN_NAMES, "a lone `}`"),
        ("{ not json }", TURN_NAMES, "write `{{` and `}}` for literal braces"),
        ("{env:1BAD}", TURN_NAMES, "NAME an environment variable's name"),
        ("{env:TOKEN}", ITEM_NAMES, "cannot be used here"),
    ],
)
def test_a_bad_template_says_what_is_wrong(text: str, allowed: tuple[str, ...], message: str) -> None:
    with pytest.raises(TemplateError) as info:
        text_template(text, allowed)
    assert message in str(info.value)


def test_history_is_shaped_as_the_adapter_says() -> None:
    item = mapping_template([("speaker", text_template("{role}", ITEM_NAMES)),
                             ("text", text_template("{content}", ITEM_NAMES))])  # fmt: skip
    shape = HistoryShape(item, {"system": None, "assistant": "bot"})
    messages = (ChatMessage("system", "S"), ChatMessage("user", "U1"), ChatMessage("assistant", "A1"),
                ChatMessage("user", "U2"))  # fmt: skip
    assert shape_messages(shape, messages) == [
        {"speaker": "user", "text": "U1"},
        {"speaker": "bot", "text": "A1"},
        {"speaker": "user", "text": "U2"},
    ]
    request = ChatRequest(messages=messages, max_tokens=7, stream=False, session_id="c1")
    values = turn_values(request, shape, {"message", "history", "previous", "system"}, model=None, secrets={})
    assert values["message"] == "U2"
    assert values["previous"] == [{"speaker": "user", "text": "U1"}, {"speaker": "bot", "text": "A1"}]
    assert values["system"] == "S"
    assert (values["max_tokens"], values["stream"], values["session_id"], values["model"]) == (
        7,
        False,
        "c1",
        "loadgen-sim",
    )
    lines = HistoryShape(text_template("{role}: {content}", ITEM_NAMES), {})
    assert shape_messages(lines, messages[1:3]) == ["user: U1", "assistant: A1"]
