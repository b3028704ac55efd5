"""Token-length shapes: the N±S grammar (one clear line for bad input), the draw, the filler generator, and the
dialogue file's input_tokens / output_tokens."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from loadgen.datasets.tokens import CharEstimate, TokenizerFile
from loadgen.dialogues import DialogueError, load_dialogue
from loadgen.dialogues.shapes import (
    FILLER_WORDS,
    SEPARATOR,
    TokenShape,
    TokenTarget,
    fill_to,
    filler_words,
    parse_target,
)
from loadgen.dialogues.text import COMMON_WORDS
from loadgen.errors import ConfigError
from loadgen.server.responder import STOP_WORDS, Responder, content_words
from loadgen.types import ChatMessage
from tests.dialogues.conftest import GOOD
from tests.dialogues.tokenizer_files import write_word_tokenizer


@pytest.mark.parametrize(
    ("text", "expected"),
    [("200", TokenTarget(200)), ("200±50", TokenTarget(200, 50)), ("200+-50", TokenTarget(200, 50)),
     (" 64 +/- 8 ", TokenTarget(64, 8)), (128, TokenTarget(128)), ("5±0", TokenTarget(5))],
)  # fmt: skip
def test_shapes_parse(text: object, expected: TokenTarget) -> None:
    assert parse_target(text, "--input-tokens") == expected


@pytest.mark.parametrize("text", ["", "abc", "0", "-5", "200±200", "200±250", "1.5", "200 50", "200±", "true", True])
def test_bad_shapes_are_one_line_naming_the_option(text: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_target(text, "--output-tokens")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"--output-tokens {str(text)!r}: expected N or N±S tokens")


def test_a_shape_above_the_limit_says_so() -> None:
    with pytest.raises(ConfigError, match=r"^--output-tokens '4000±200': asks for up to 4200 tokens; at most 4096"):
        parse_target("4000±200", "--output-tokens", high=4096)


def test_draws_stay_in_range_and_cover_it() -> None:
    rng = random.Random(1)
    target = TokenTarget(100, 10)
    draws = [target.draw(rng) for _ in range(2000)]
    assert min(draws) == 90 and max(draws) == 110
    assert TokenTarget(7).draw(rng) == 7
    assert str(target) == "100±10" and str(TokenTarget(7)) == "7"


def test_command_line_shape_over_the_dialogues() -> None:
    cli = TokenShape(input=TokenTarget(50))
    dialogue = TokenShape(TokenTarget(10), TokenTarget(20))
    assert cli.over(dialogue) == TokenShape(TokenTarget(50), TokenTarget(20))
    assert not TokenShape() and TokenShape(output=TokenTarget(1))


def test_filler_words_never_decide_a_retention_probe() -> None:
    assert set(FILLER_WORDS) <= STOP_WORDS  # the reference responder ignores them when it looks for a fact
    assert set(FILLER_WORDS) <= set(COMMON_WORDS)  # no probed value can occur in them
    assert not content_words(" ".join(filler_words(random.Random(3), 500)))


def test_filler_is_deterministic_per_seed() -> None:
    counter = CharEstimate()
    one = fill_to("Hello.", 80, counter, random.Random("seed:1"))
    assert one == fill_to("Hello.", 80, counter, random.Random("seed:1"))
    assert one != fill_to("Hello.", 80, counter, random.Random("seed:2"))


@pytest.mark.parametrize("target", [1, 5, 17, 200, 1500])
def test_filler_hits_the_target_with_a_tokenizer_file(tmp_path: Path, target: int) -> None:
    counter = TokenizerFile(str(write_word_tokenizer(tmp_path / "tokenizer.json")))
    text = "My booking code is QX4821."
    filled = fill_to(text, target, counter, random.Random(target))
    if target <= counter.count(text):
        assert filled == text
    else:
        assert counter.count(filled) == target
        assert filled.startswith(text + SEPARATOR)


@pytest.mark.parametrize("target", [20, 333, 2000])
def test_filler_is_within_a_token_with_the_estimate(target: int) -> None:
    counter = CharEstimate()
    filled = fill_to("Where is my order?", target, counter, random.Random(target))
    assert target - 2 <= counter.count(filled) <= target


def test_a_question_stays_a_question_and_the_fact_comes_first() -> None:
    counter = CharEstimate()
    rng = random.Random(5)
    plant = fill_to("My booking code is QX4821.", 120, counter, rng)
    probe = fill_to("What was my booking code?", 120, counter, rng)
    assert plant.endswith(".") and probe.endswith("?")
    context = [ChatMessage("user", plant), ChatMessage("assistant", "Noted."), ChatMessage("user", probe)]
    assert Responder().find_fact(context) == plant
    assert "QX4821" in Responder().reply(context, 12)  # the quoted fact starts with the turn's own text


def test_dialogue_file_shapes(write_dialogue: Callable[..., Path]) -> None:
    text = GOOD.format(name="shaped", weight=1).replace(
        "weight: 1\n", "weight: 1\ninput_tokens: 300±20\noutput_tokens: 96\n"
    )
    dialogue = load_dialogue(write_dialogue(text=text))
    assert dialogue.shape == TokenShape(TokenTarget(300, 20), TokenTarget(96))
    assert load_dialogue(write_dialogue(name="plain")).shape == TokenShape()


def test_dialogue_file_bad_shape_names_line_and_field(write_dialogue: Callable[..., Path]) -> None:
    text = GOOD.format(name="shaped", weight=1).replace("weight: 1\n", "weight: 1\noutput_tokens: 5000\n")
    path = write_dialogue(text=text)
    with pytest.raises(DialogueError) as info:
        load_dialogue(path)
    assert str(info.value) == (
        f"{path}:3: field `output_tokens`: '5000': asks for up to 5000 tokens; at most 4096 are allowed"
    )
