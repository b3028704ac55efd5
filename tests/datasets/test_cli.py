"""``loadgen dataset check``: counts and distributions on stdout, problems on stderr, exit 0 or 2."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

import loadgen.cli
from tests.conftest import REPO_ROOT
from tests.datasets.helpers import openai_line, sharegpt_line, write_lines
from tests.datasets.test_stats import write_word_tokenizer

SAMPLES = REPO_ROOT / "scenarios" / "datasets"
SAMPLE_OPENAI = SAMPLES / "sample_openai.jsonl"
SAMPLE_SHAREGPT = SAMPLES / "sample_sharegpt.jsonl.gz"
HEADER = "                              count      min      p50      p90      max"


@pytest.fixture(autouse=True)
def _only_the_dataset_command(monkeypatch: pytest.MonkeyPatch) -> None:
    # as in the dialogues check's tests: keep other sub-commands (and Locust's monkey-patching) out of the process
    monkeypatch.setattr(loadgen.cli, "COMMANDS", {"dataset": loadgen.cli.COMMANDS["dataset"]})


def main(argv: Sequence[str]) -> int:
    return loadgen.cli.main(["dataset", "check", *argv])


def small(tmp_path: Path, *extra: str) -> str:
    """Two usable conversations (5 turns of 5-character texts, 6 of 9-character texts) and a short one."""
    lines = [openai_line(5, tag="ab"), openai_line(4, tag="short"), sharegpt_line(6, tag="abcdef"), *extra]
    return str(write_lines(tmp_path / "small.jsonl", lines))


def test_check_counts_and_distributions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = small(tmp_path)
    assert main([path]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.splitlines() == [
        f"{path}: 3 conversations: 2 usable, 1 short (fewer than 5 user turns), 0 malformed",
        HEADER,
        "user turns / conversation         2        5        5        6        6",
        "user turn chars                  11        5        9        9        9",
        "user turn tokens                 11        2        3        3        3",
        "assistant turn chars             11        5        9        9        9",
        "assistant turn tokens            11        2        3        3        3",
        "tokens: estimate (~4 characters a token)",
    ]


def test_check_the_shipped_samples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(SAMPLE_OPENAI), str(SAMPLE_SHAREGPT)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:5] == [
        f"{SAMPLE_OPENAI}: 10 conversations: 10 usable, 0 short (fewer than 5 user turns), 0 malformed",
        f"{SAMPLE_SHAREGPT}: 10 conversations: 10 usable, 0 short (fewer than 5 user turns), 0 malformed",
        "total: 20 conversations: 20 usable, 0 short (fewer than 5 user turns), 0 malformed",
        HEADER,
        "user turns / conversation        20        5        6        7        8",
    ]
    assert lines[5].split()[3] == "119"  # user turns in all: 8 conversations of 5, 7 of 6, 3 of 7, 2 of 8
    assert lines[7].split()[3] == "119"  # every user turn has a recorded reply


def test_malformed_lines_fail_unless_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = small(tmp_path, "{", '{"messages": [{"role": "function", "content": "x"}]}')
    assert main([path]) == 2
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == (
        f"{path}: 5 conversations: 2 usable, 1 short (fewer than 5 user turns), 2 malformed (lines 4, 5)"
    )
    assert captured.err.splitlines() == [
        f"{path}:4: not valid JSON (unexpected end of data at column 1)",
        f"{path}:5: messages[0].role 'function' is not a chat role this replay can send (one of system, developer, "
        "user, human, assistant, gpt, chatgpt, bing, bard)",
        "error: 2 malformed lines: fix, or skip malformed lines with --skip-bad",
    ]
    assert main([path, "--skip-bad"]) == 0
    captured = capsys.readouterr()
    assert "2 malformed (lines 4, 5)" in captured.out
    assert captured.err.splitlines()[-1].startswith(f"{path}:5: ")


def test_many_malformed_lines_are_cut_short(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = small(tmp_path, *(["nope"] * 12))
    assert main([path, "--skip-bad"]) == 0
    captured = capsys.readouterr()
    assert "12 malformed (lines 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, ...)" in captured.out
    assert captured.err.splitlines()[-1] == f"{path}: ... and 2 more malformed"


def test_nothing_usable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = small(tmp_path)
    assert main([path, "--min-turns", "7"]) == 2
    captured = capsys.readouterr()
    assert f"{path}: 3 conversations: 0 usable, 3 short (fewer than 7 user turns), 0 malformed" in captured.out
    assert "user turns / conversation         0        0        0        0        0" in captured.out
    assert captured.err == "error: no usable conversation (none with 7 or more user turns and well formed)\n"
    assert main([path, "--min-turns", "0"]) == 2
    assert capsys.readouterr().err == "error: --min-turns must be 1 or more, not 0\n"


def test_unreadable_files_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.jsonl"
    assert main([small(tmp_path), str(missing)]) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", f"error: {missing}: no such file\n")
    array = tmp_path / "array.json"
    array.write_text('[\n  {"messages": []}\n]\n', encoding="utf-8")
    assert main([str(array)]) == 2
    assert capsys.readouterr().err == (
        f"error: {array}: a JSON array, not JSON Lines (one conversation per line): "
        "convert it with `jq -c '.[]' FILE`\n"
    )


def test_tokens_counted_with_a_tokenizer_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tokenizer = write_word_tokenizer(tmp_path / "tokenizer.json")
    assert main([small(tmp_path), "--tokenizer", str(tokenizer)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[4] == "user turn tokens                 11        2        2        2        2"  # "ab u1": 2 words
    assert out[-1] == f"tokens: tokenizer {tokenizer}"
    assert main([small(tmp_path), "--tokenizer", str(tmp_path / "none.json")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'none.json'}: not a readable tokenizer file")


def test_the_console_command_runs_it() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "loadgen", "dataset", "check", str(SAMPLE_SHAREGPT)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{SAMPLE_SHAREGPT}: 10 conversations: 10 usable")
    done = subprocess.run(
        [sys.executable, "-m", "loadgen", "dataset", "check"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "the following arguments are required: FILE" in done.stderr
