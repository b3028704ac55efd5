"""Token-length shapes and token accounting end to end: shaped turns hit their lengths on the embedded reference
server (counted by its usage, retention intact), and the accounting warns about a server whose replies are short
and whose usage lies, or counts locally when it sends no usage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dialogues.tokenizer_files import write_word_tokenizer
from tests.e2e.harness import run_locust
from tests.e2e.token_server import TokenServer

DIALOGUE = """\
name: shaped
input_tokens: 60±10
slots:
  code: {faker: bothify, args: {text: "??####", letters: "ABCDEFGHJKLMNPQRSTUVWXYZ"}}
turns:
  - user: "My booking code is {code}."
    plant: [code]
  - user: "Tell me about the trains."
  - user: "And the buses?"
  - user: "What was my booking code?"
    probe: [code]
  - user: "Thanks, that is all."
"""


@pytest.fixture
def shaped(tmp_path: Path) -> tuple[str, str]:
    """(the dialogue file, a word-level tokenizer file: one token a word, as the reference server counts)."""
    dialogue = tmp_path / "shaped.yaml"
    dialogue.write_text(DIALOGUE, encoding="utf-8")
    return str(dialogue), str(write_word_tokenizer(tmp_path / "tokenizer.json"))


@pytest.fixture
def server() -> Iterator[TokenServer]:
    running = TokenServer().start()
    yield running
    running.stop()


def rows(summary: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {row["turn"]: row for row in summary["turns"]}


def test_shapes_hit_their_targets_on_the_reference_server(tmp_path: Path, shaped: tuple[str, str]) -> None:
    dialogue, tokenizer = shaped
    run = run_locust(
        tmp_path, "--dialogues", dialogue, "--output-tokens", "24±4", "--tokenizer", tokenizer, "--seed", "5",
        users=4, run_time="6s",
    )  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    summary = run.summary
    assert summary["token_counting"] == "usage"
    by_turn = rows(summary)
    first = by_turn[1]["tokens"]["prompt"]
    # turn 1 is the user message alone: 60±10 words, plus the server's "user:" token
    assert first["count"] > 0 and 51 <= first["p50"] <= 71 and first["max"] <= 71
    assert 56 <= first["mean"] <= 66
    assert by_turn[2]["tokens"]["prompt"]["p50"] > first["max"]  # the prompt grows with the history
    for row in by_turn.values():
        output = row["tokens"]["output"]
        assert output["count"] == row["count"] - row["failures_by_kind"]["transport"]
        assert 20 <= output["p50"] <= 28 and output["max"] <= 28
    agg = summary["transports"]["rest"]
    assert agg["tokens"]["short_reply"] == 0 and agg["tokens"]["usage_mismatch"] == 0
    assert agg["tokens"]["counted_by"]["usage"] == agg["count"] > 0
    assert agg["failures"] == 0 and agg["retention"]["rate"] == 1.0  # the filler never decides a probe
    assert not [w for w in summary["warnings"] if "--output-tokens" in w or "--token-tolerance" in w]
    assert "Tokens per turn" in (run.run_dir / "report.html").read_text()


def test_short_replies_and_lying_usage_are_warned_about(
    tmp_path: Path, shaped: tuple[str, str], server: TokenServer
) -> None:
    dialogue, tokenizer = shaped
    run = run_locust(
        tmp_path, "--host", server.url("lying"), "--dialogues", dialogue, "--output-tokens", "20",
        "--tokenizer", tokenizer, users=2, run_time="4s",
    )  # fmt: skip
    assert run.returncode in (0, 1), run.output[-3000:]
    assert server.bodies and all(
        (b["max_tokens"], b["min_tokens"], b["ignore_eos"]) == (20, 20, True) for b in server.bodies
    )
    summary = run.summary
    assert summary["token_counting"] == "usage"
    for row in rows(summary).values():
        assert row["tokens"]["short_reply"] == row["count"] > 0  # 10 tokens where 20 were asked
        assert row["tokens"]["usage_mismatch"] == row["count"]  # prompt_tokens twice the local count
    agg = summary["transports"]["rest"]
    n = agg["count"]
    assert f"rest: {n} of {n} replies were shorter than the length asked (--output-tokens)" in "\n".join(
        summary["warnings"]
    )
    assert f"rest: in {n} of {n} turns the server's usage disagreed with the local count" in "\n".join(
        summary["warnings"]
    )
    assert "WARNING: rest: " in run.output


def test_without_usage_the_tokenizer_counts(tmp_path: Path, shaped: tuple[str, str], server: TokenServer) -> None:
    dialogue, tokenizer = shaped
    run = run_locust(
        tmp_path, "--host", server.url("nousage"), "--dialogues", dialogue, "--output-tokens", "20",
        "--tokenizer", tokenizer, users=2, run_time="4s",
    )  # fmt: skip
    assert run.returncode in (0, 1), run.output[-3000:]
    summary = run.summary
    assert summary["token_counting"] == "tokenizer"
    agg = summary["transports"]["rest"]
    assert agg["tokens"]["counted_by"] == {"usage": 0, "tokenizer": agg["count"], "estimate": 0}
    assert agg["tokens"]["short_reply"] == agg["count"] and agg["tokens"]["usage_mismatch"] == 0
    first = rows(summary)[1]["tokens"]
    assert 50 <= first["prompt"]["p50"] <= 70  # the local count of the shaped message
    assert first["output"]["max"] == 10
