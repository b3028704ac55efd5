"""Hand a dataset's usable conversations to many users of one process, without holding the dataset in memory.

:func:`open_dataset` reads every file once, start to end (so a malformed line is found before any load starts,
not an hour into a run), and keeps, for each usable conversation of an uncompressed file, its byte offset,
length and line number: 16 bytes a conversation (a million conversations, 16 MB), never the text. A
conversation is then read back by number with one seek and one read of its line, and parsed again: a few
microseconds against the seconds a conversation takes to replay.

A gzip stream cannot be read from the middle, so when any file is compressed no index is kept: the feed reads
the files again from the start, in order, one line at a time, round and round, which is why a shuffled order
and :meth:`ConversationFeed.get` need uncompressed files.

Order: ``sequential`` hands conversations out in file order; ``shuffled`` in a permutation drawn once from
``seed`` (4 more bytes a conversation), the same in every cycle. After the last conversation the feed wraps
around to the first: it never runs dry, and :attr:`ConversationFeed.handed_out` says how often it went round.

Sharding: ``Shard(index, count)`` keeps the usable conversations whose number ``n`` has ``n % count == index``,
so several load-generator processes replay disjoint parts of one dataset.
"""

from __future__ import annotations

import os
import random
import threading
from array import array
from bisect import bisect_right
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from loadgen.datasets.model import DEFAULT_MIN_USER_TURNS, DatasetConversation, DatasetError
from loadgen.datasets.parse import LineProblem, parse_line
from loadgen.datasets.reader import Entry, FileCounts, is_gzip, iter_entries

ORDERS = ("sequential", "shuffled")
_CHANGED = "changed since the dataset was opened"
_LONGEST_LINE = 2**32 - 1  # lengths are kept as 4-byte unsigned integers


@dataclass(frozen=True, slots=True)
class Shard:
    """This process's part of the dataset: conversation ``n`` is its when ``n % count == index``."""

    index: int = 0
    count: int = 1


def split_over(worker_ids: Sequence[str], usable: int) -> dict[str, Shard]:
    """Each worker's shard of a dataset of ``usable`` conversations: workers in sorted id order, one shard each;
    {} (no split) for fewer than two workers or fewer conversations than workers."""
    workers = sorted(worker_ids)
    if len(workers) < 2 or usable < len(workers):
        return {}
    return {worker: Shard(index, len(workers)) for index, worker in enumerate(workers)}


@dataclass
class _FileIndex:
    """Where each usable conversation of one uncompressed file is: offsets and lengths in bytes, lines."""

    path: str
    first: int  # the number of its first usable conversation
    offsets: array[int] = field(default_factory=lambda: array("q"))
    lengths: array[int] = field(default_factory=lambda: array("I"))
    lines: array[int] = field(default_factory=lambda: array("I"))

    def add(self, entry: Entry) -> None:
        if entry.length > _LONGEST_LINE:
            raise DatasetError(self.path, entry.conversation.line, "a line of 4 GiB or more cannot be indexed")
        self.offsets.append(entry.offset)
        self.lengths.append(entry.length)
        self.lines.append(entry.conversation.line)


def open_dataset(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    min_user_turns: int = DEFAULT_MIN_USER_TURNS,
    skip_bad: bool = False,
    order: str = "sequential",
    seed: int = 0,
    shard: Shard = Shard(),
) -> ConversationFeed:
    """Read ``paths`` once (validating every line) and return the feed. Raises :class:`DatasetError` (one line,
    ``FILE:LINE: problem``) for a malformed line (unless ``skip_bad``), an unreadable file, or no usable
    conversation in this shard. ``paths`` is one path or a list of them."""
    names = [os.fspath(paths)] if isinstance(paths, str | os.PathLike) else [os.fspath(p) for p in paths]
    _check_settings(names, min_user_turns, order, shard)
    compressed = [p for p in names if is_gzip(p)]
    if order == "shuffled" and compressed:
        raise DatasetError(compressed[0], 0, "is gzip-compressed: a shuffled order needs uncompressed files")
    counts: list[FileCounts] = []
    indexes: list[_FileIndex] = []
    total = 0
    for path in names:
        file_counts = FileCounts(path)
        index = _FileIndex(path, total)
        for entry in iter_entries(
            path, min_user_turns=min_user_turns, skip_bad=skip_bad, counts=file_counts, first_index=total
        ):
            if not compressed:
                index.add(entry)
        counts.append(file_counts)
        indexes.append(index)
        total += file_counts.usable
    feed = ConversationFeed(counts, None if compressed else indexes, min_user_turns, skip_bad, shard)
    if len(feed) == 0:
        raise DatasetError(", ".join(names), 0, _nothing_usable(counts, min_user_turns, shard))
    if order == "shuffled":
        feed._shuffle(seed)
    return feed


def _check_settings(paths: Sequence[str], min_user_turns: int, order: str, shard: Shard) -> None:
    where = ", ".join(paths) or "dataset"
    if not paths:
        raise DatasetError(where, 0, "no dataset file given")
    if min_user_turns < 1:
        raise DatasetError(where, 0, f"the minimum of user turns must be 1 or more, not {min_user_turns}")
    if order not in ORDERS:
        raise DatasetError(where, 0, f"order {order!r} is not one of {', '.join(ORDERS)}")
    if not 0 <= shard.index < shard.count:
        raise DatasetError(where, 0, f"shard {shard.index} of {shard.count} does not exist")


def _nothing_usable(counts: Sequence[FileCounts], min_user_turns: int, shard: Shard) -> str:
    lines = sum(c.conversations for c in counts)
    short = sum(c.short for c in counts)
    malformed = sum(c.malformed for c in counts)
    usable = sum(c.usable for c in counts)
    text = (
        f"no usable conversation: {lines} conversations, {short} with fewer than {min_user_turns} user turns, "
        f"{malformed} malformed"
    )
    if usable:
        text += f"; {usable} usable, none in shard {shard.index} of {shard.count}"
    return text


class ConversationFeed:
    """The usable conversations of a dataset, handed out one at a time. Safe to share between threads and
    between gevent greenlets: the cursor moves under a lock, nothing inside the lock yields."""

    def __init__(
        self,
        counts: Sequence[FileCounts],
        indexes: Sequence[_FileIndex] | None,
        min_user_turns: int,
        skip_bad: bool,
        shard: Shard,
    ) -> None:
        self.counts = tuple(counts)
        self.shard = shard
        self._indexes = tuple(indexes) if indexes is not None else None
        self._starts = [i.first for i in self._indexes] if self._indexes is not None else []
        self._min_user_turns = min_user_turns
        self._skip_bad = skip_bad
        self._total = sum(c.usable for c in counts)
        self._len = len(range(shard.index, self._total, shard.count))
        self._order: array[int] | None = None
        self._shuffle_seed: int | None = None
        self._lock = threading.Lock()
        self._handed_out = 0
        self._stream: Generator[DatasetConversation] | None = None

    def __len__(self) -> int:
        """Usable conversations in this shard (one cycle)."""
        return self._len

    @property
    def usable(self) -> int:
        """Usable conversations in the whole dataset, every shard together."""
        return self._total

    def reshard(self, shard: Shard) -> None:
        """Hand out ``shard``'s conversations from now on, from the start of its order (the same permutation seed
        when shuffled). Raises :class:`DatasetError` when the shard does not exist or holds no conversation."""
        where = ", ".join(c.path for c in self.counts)
        if not 0 <= shard.index < shard.count:
            raise DatasetError(where, 0, f"shard {shard.index} of {shard.count} does not exist")
        if shard.index >= self._total:
            raise DatasetError(
                where, 0, f"{self._total} usable conversations, none in shard {shard.index} of {shard.count}"
            )
        with self._lock:
            self.shard = shard
            self._len = len(range(shard.index, self._total, shard.count))
            self._handed_out = 0
            if self._stream is not None:
                self._stream.close()
                self._stream = None
            if self._shuffle_seed is not None:
                self._shuffle(self._shuffle_seed)

    @property
    def random_access(self) -> bool:
        """Whether :meth:`get` works: every file is uncompressed, so the feed keeps an index."""
        return self._indexes is not None

    @property
    def handed_out(self) -> int:
        """Conversations handed out by :meth:`next` so far; ``handed_out // len(feed)`` full cycles."""
        return self._handed_out

    def next(self) -> DatasetConversation:
        """The next conversation in this feed's order, wrapping around after the last."""
        with self._lock:
            position = self._handed_out
            self._handed_out += 1
            if self._indexes is None:
                if self._stream is None:
                    self._stream = self._cycle()
                try:
                    return next(self._stream)
                except BaseException:
                    self._stream = None  # a file that changed: the next call starts the cycle again
                    raise
        return self.get(position)

    def get(self, n: int) -> DatasetConversation:
        """The ``n``-th conversation of this feed's order (``n`` modulo ``len(feed)``): one seek and one read."""
        if self._indexes is None:
            gz = next(c.path for c in self.counts if is_gzip(c.path))
            raise DatasetError(gz, 0, "is gzip-compressed: reading a conversation by number needs uncompressed files")
        local = n % self._len
        if self._order is not None:
            local = self._order[local]
        return self._read(self.shard.index + local * self.shard.count)

    def close(self) -> None:
        """Close the file a compressed dataset is being read from (an indexed one keeps none open)."""
        with self._lock:
            if self._stream is not None:
                self._stream.close()
                self._stream = None

    def __enter__(self) -> ConversationFeed:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _shuffle(self, seed: int) -> None:
        self._shuffle_seed = seed
        order = array("I", range(self._len))
        random.Random(seed).shuffle(order)
        self._order = order

    def _read(self, number: int) -> DatasetConversation:
        assert self._indexes is not None
        index = self._indexes[bisect_right(self._starts, number) - 1]
        k = number - index.first
        line = index.lines[k]
        try:
            with open(index.path, "rb") as f:
                f.seek(index.offsets[k])
                raw = f.read(index.lengths[k])
            system, turns = parse_line(raw)
        except (OSError, LineProblem) as exc:
            raise DatasetError(index.path, line, f"{_CHANGED} ({exc})") from None
        if len(turns) < self._min_user_turns:
            raise DatasetError(index.path, line, f"{_CHANGED} (fewer user turns)")
        return DatasetConversation(index.path, line, number, system, turns)

    def _cycle(self) -> Generator[DatasetConversation]:
        """Every usable conversation of this shard, in file order, round and round (compressed datasets)."""
        while True:
            number = 0
            for counts in self.counts:
                for entry in iter_entries(
                    counts.path, min_user_turns=self._min_user_turns, skip_bad=self._skip_bad, first_index=number
                ):
                    number += 1
                    if entry.conversation.index % self.shard.count == self.shard.index:
                        yield entry.conversation
            if number != self._total:
                where = ", ".join(c.path for c in self.counts)
                raise DatasetError(where, 0, f"{_CHANGED}: {number} usable conversations, not {self._total}")
