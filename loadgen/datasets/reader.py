"""Stream one JSONL dataset file line by line: usable conversations out, short and malformed ones counted.

Memory is one line at a time whatever the file's size: lines are read from a binary stream, never the whole
file. A file is gzip-compressed when it starts with gzip's magic bytes (whatever its name); it is then
decompressed on the fly. Blank lines are ignored; a UTF-8 byte order mark on the first line is dropped.

:func:`iter_entries` yields an :class:`Entry` per usable conversation (one with at least ``min_user_turns``
user turns) with its line number, and its byte offset and length in the (decompressed) stream, which is what
an index of an uncompressed file keeps (:mod:`loadgen.datasets.feed`). Conversations with fewer user turns are
counted in :attr:`FileCounts.short`. A malformed line raises :class:`~loadgen.datasets.model.DatasetError`
(``FILE:LINE: problem``) unless ``skip_bad``; then it is counted, and the first :data:`KEPT_PROBLEMS` are kept
with their line numbers for the report. A file that cannot be read at all (missing, a broken gzip stream, a
JSON array instead of JSON Lines) raises :class:`DatasetError` with line 0 in both modes.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from loadgen.datasets.model import DEFAULT_MIN_USER_TURNS, DatasetConversation, DatasetError
from loadgen.datasets.parse import LineProblem, parse_line

#: How many malformed lines (number and problem) a skipping read keeps for its report.
KEPT_PROBLEMS = 10
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_ARRAY_HINT = "a JSON array, not JSON Lines (one conversation per line): convert it with `jq -c '.[]' FILE`"


@dataclass
class FileCounts:
    """What one pass over one file found. ``conversations`` counts every non-blank line."""

    path: str
    conversations: int = 0
    usable: int = 0
    short: int = 0
    malformed: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line, problem), the first KEPT_PROBLEMS

    def add_malformed(self, line: int, problem: str) -> None:
        self.malformed += 1
        if len(self.problems) < KEPT_PROBLEMS:
            self.problems.append((line, problem))


@dataclass(frozen=True, slots=True)
class Entry:
    """A usable conversation and where its line is: ``offset`` and ``length`` (newline included) are bytes of
    the decompressed stream."""

    conversation: DatasetConversation
    offset: int
    length: int


def is_gzip(path: str) -> bool:
    with _open_raw(path) as f:
        return f.read(2) == _GZIP_MAGIC


@contextmanager
def open_lines(path: str) -> Iterator[io.BufferedIOBase]:
    """The file as a binary stream, decompressed when gzip; an unreadable file is a :class:`DatasetError`."""
    with _open_raw(path) as raw:
        if raw.read(2) != _GZIP_MAGIC:
            raw.seek(0)
            yield raw
            return
        raw.seek(0)
        with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
            try:
                yield unzipped
            except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
                raise DatasetError(path, 0, f"not a readable gzip file ({exc})") from None


@contextmanager
def _open_raw(path: str) -> Iterator[io.BufferedReader]:
    try:
        f = open(path, "rb")  # noqa: SIM115  # closed below; a context manager around the open error
    except FileNotFoundError:
        raise DatasetError(path, 0, "no such file") from None
    except IsADirectoryError:
        raise DatasetError(path, 0, "is a folder, not a JSONL file") from None
    except OSError as exc:
        raise DatasetError(path, 0, f"cannot be read ({exc.strerror})") from None
    with f:
        yield f


def iter_entries(
    path: str,
    *,
    min_user_turns: int = DEFAULT_MIN_USER_TURNS,
    skip_bad: bool = False,
    counts: FileCounts | None = None,
    first_index: int = 0,
) -> Iterator[Entry]:
    """Usable conversations of ``path`` in file order, numbered from ``first_index``; ``counts`` (when given)
    is filled in as the lines go by, so it is complete once the iterator is exhausted."""
    counts = counts if counts is not None else FileCounts(path)
    index = first_index
    for line_no, offset, raw in _lines(path):
        counts.conversations += 1
        try:
            system, turns = parse_line(raw)
        except LineProblem as exc:
            if counts.conversations == 1 and raw.lstrip().startswith(b"["):
                raise DatasetError(path, 0, _ARRAY_HINT) from None
            if not skip_bad:
                raise DatasetError(path, line_no, str(exc)) from None
            counts.add_malformed(line_no, str(exc))
            continue
        if len(turns) < min_user_turns:
            counts.short += 1
            continue
        counts.usable += 1
        yield Entry(DatasetConversation(path, line_no, index, system, turns), offset, len(raw))
        index += 1


def _lines(path: str) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, line) of each non-blank line."""
    offset = 0
    with open_lines(path) as stream:
        for line_no, raw in enumerate(stream, start=1):
            if line_no == 1 and raw.startswith(_BOM):
                offset += len(_BOM)
                raw = raw[len(_BOM) :]
            if raw.strip():
                yield line_no, offset, raw
            offset += len(raw)
