"""Reading one file: usable conversations out, short and malformed ones counted, errors naming FILE:LINE."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from loadgen.datasets.model import DEFAULT_MIN_USER_TURNS, DatasetError, DatasetTurn
from loadgen.datasets.reader import KEPT_PROBLEMS, FileCounts, is_gzip, iter_entries
from loadgen.dialogues.model import MIN_TURNS_FLOOR
from tests.datasets.helpers import openai_line, sharegpt_line, write_lines


def test_the_default_minimum_is_the_dialogue_minimum() -> None:
    assert DEFAULT_MIN_USER_TURNS == MIN_TURNS_FLOOR == 5


@pytest.mark.parametrize("gz", [False, True])
def test_both_forms_in_one_file(tmp_path: Path, gz: bool) -> None:
    path = write_lines(
        tmp_path / "mixed.jsonl",
        [openai_line(5, system="S", tag="o"), "", sharegpt_line(6, tag="s"), "   "],
        gz=gz,
    )
    assert is_gzip(str(path)) is gz
    counts = FileCounts(str(path))
    entries = list(iter_entries(str(path), counts=counts))
    assert [(e.conversation.line, e.conversation.index) for e in entries] == [(1, 0), (3, 1)]
    first, second = (e.conversation for e in entries)
    assert first.system == "S" and second.system is None
    assert first.user_turns == ("o u1", "o u2", "o u3", "o u4", "o u5")
    assert second.assistant_turns == ("s a1", "s a2", "s a3", "s a4", "s a5", "s a6")
    assert second.turns[0] == DatasetTurn("s u1", "s a1")
    assert first.source == f"{path}:1"
    assert (counts.conversations, counts.usable, counts.short, counts.malformed) == (2, 2, 0, 0)


def test_gzip_is_recognised_by_its_bytes_not_its_name(tmp_path: Path) -> None:
    compressed = write_lines(tmp_path / "named_plain.jsonl", [openai_line(5)], gz=True)
    plain = write_lines(tmp_path / "named.gz", [openai_line(5)])
    assert [e.conversation.turns[0].user for e in iter_entries(str(compressed))] == ["c u1"]
    assert [e.conversation.turns[0].user for e in iter_entries(str(plain))] == ["c u1"]


def test_offsets_and_lengths_point_at_the_lines(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    lines = [json.dumps(openai_line(5, tag="first")), "", json.dumps(openai_line(7, tag="second"))]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    data = path.read_bytes()
    entries = list(iter_entries(str(path)))
    assert [e.conversation.line for e in entries] == [1, 3]
    for entry, text in zip(entries, (lines[0], lines[2]), strict=True):
        assert data[entry.offset : entry.offset + entry.length] == text.encode() + b"\r\n"


def test_short_conversations_are_skipped_with_a_count(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "short.jsonl", [openai_line(4), openai_line(5), sharegpt_line(1), openai_line(0)])
    counts = FileCounts(str(path))
    assert [e.conversation.line for e in iter_entries(str(path), counts=counts)] == [2]
    assert (counts.conversations, counts.usable, counts.short) == (4, 1, 3)
    counts = FileCounts(str(path))
    assert [e.conversation.line for e in iter_entries(str(path), min_user_turns=1, counts=counts)] == [1, 2, 3]
    assert (counts.usable, counts.short) == (3, 1)


def test_a_malformed_line_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "bad.jsonl", [openai_line(5), "", '{"messages": [{"role": "tool"}]}'])
    entries = iter_entries(str(path))
    assert next(entries).conversation.line == 1
    with pytest.raises(DatasetError) as caught:
        next(entries)
    message = str(caught.value)
    assert message.startswith(f"{path}:3: messages[0].role 'tool' is not a chat role")
    assert "\n" not in message
    assert (caught.value.path, caught.value.line) == (str(path), 3)


def test_skip_bad_counts_and_keeps_the_first_lines(tmp_path: Path) -> None:
    lines: list[dict[str, object] | str] = []
    for i in range(15):
        lines += [openai_line(5, tag=str(i)), "not json" if i % 2 else '{"nope": 1}']
    path = write_lines(tmp_path / "many_bad.jsonl", lines, gz=True)
    counts = FileCounts(str(path))
    usable = list(iter_entries(str(path), skip_bad=True, counts=counts))
    assert [e.conversation.index for e in usable] == list(range(15))
    assert (counts.conversations, counts.usable, counts.malformed) == (30, 15, 15)
    assert KEPT_PROBLEMS == 10
    assert [line for line, _ in counts.problems] == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert counts.problems[0] == (2, "no `messages` (OpenAI form) or `conversations` (ShareGPT form) list")
    assert counts.problems[1][1].startswith("not valid JSON (")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "no such file"),
        (b"[\n" + json.dumps(openai_line(5)).encode() + b"\n]\n", "a JSON array, not JSON Lines"),
        (b"\n\n" + json.dumps([openai_line(5)]).encode() + b"\n", "a JSON array, not JSON Lines"),
        (b"\x1f\x8b\x08\x00garbage", "not a readable gzip file"),
        (gzip.compress(b'{"messages": []}\n' * 100)[:-20], "not a readable gzip file"),
    ],
)
def test_unreadable_files_fail_in_both_modes(tmp_path: Path, content: bytes | None, problem: str) -> None:
    path = tmp_path / "data.jsonl"
    if content is not None:
        path.write_bytes(content)
    for skip_bad in (False, True):
        with pytest.raises(DatasetError) as caught:
            list(iter_entries(str(path), skip_bad=skip_bad, min_user_turns=1))
        assert str(caught.value).startswith(f"{path}: {problem}")
        assert caught.value.line == 0


def test_a_folder_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="is a folder, not a JSONL file"):
        list(iter_entries(str(tmp_path)))


def test_recorded_messages(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "r.jsonl", [openai_line(5, system="Sys")])
    conversation = next(iter_entries(str(path))).conversation
    assert conversation.recorded_messages(0) == [
        {"role": "system", "content": "Sys"},
        {"role": "user", "content": "c u1"},
    ]
    assert conversation.recorded_messages(2) == [
        {"role": "system", "content": "Sys"},
        {"role": "user", "content": "c u1"},
        {"role": "assistant", "content": "c a1"},
        {"role": "user", "content": "c u2"},
        {"role": "assistant", "content": "c a2"},
        {"role": "user", "content": "c u3"},
    ]
    with pytest.raises(IndexError):
        conversation.recorded_messages(5)


def test_a_dataset_error_is_one_line() -> None:
    error = DatasetError("data.jsonl", 3, "a library's message\n  over two lines")
    assert str(error) == "data.jsonl:3: a library's message over two lines"
    assert str(DatasetError("data.jsonl", 0, "no such file")) == "data.jsonl: no such file"
