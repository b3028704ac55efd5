"""A dataset of a hundred megabytes is read with memory bounded by a line, not the file (and 16 bytes a
conversation for the index). Peaks are measured with tracemalloc against a control in the same run: reading
the same file whole, which is what a reader that loads the dataset would cost at least."""

from __future__ import annotations

import gzip
import json
import random
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loadgen.datasets import open_dataset
from loadgen.datasets.reader import iter_entries

WORDS = ["the", "a", "booking", "flight", "router", "refund", "python", "error", "index", "train", "seat", "please"]


def lines(seed: int) -> Iterator[bytes]:
    """Endless varied conversation lines of 5-8 turns, 1-6 kB each, in both forms."""
    rng = random.Random(seed)
    n = 0
    while True:
        turns = rng.randint(5, 8)
        texts = [" ".join(rng.choices(WORDS, k=rng.randint(10, 60))) for _ in range(2 * turns)]
        if n % 2:
            messages = [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(texts)]
            obj: dict[str, object] = {"id": n, "messages": messages}
        else:
            conversation = [{"from": ("human", "gpt")[i % 2], "value": t} for i, t in enumerate(texts)]
            obj = {"id": n, "conversations": conversation}
        yield json.dumps(obj).encode() + b"\n"
        n += 1


def write_big(path: Path, size: int, *, gz: bool = False) -> int:
    """Write at least ``size`` bytes of lines (uncompressed); returns how many lines."""
    written = count = 0
    opener = gzip.open(path, "wb", compresslevel=1) if gz else open(path, "wb")  # noqa: SIM115
    with opener as f:
        pool = [line for line, _ in zip(lines(7), range(500), strict=False)]  # varied, and quick to write
        while written < size:
            line = pool[count % len(pool)]
            f.write(line)
            written += len(line)
            count += 1
    return count


def peak_bytes(work: Callable[[], object]) -> int:
    """The most memory Python allocated while ``work`` ran, above what was allocated when it started."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        work()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - start


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("big") / "big.jsonl"
    return path, write_big(path, 100 * 2**20)


def test_reading_a_big_file_is_bounded_by_a_line(big_file: tuple[Path, int]) -> None:
    path, count = big_file
    size = path.stat().st_size
    control = peak_bytes(path.read_bytes)
    assert control >= size  # the measurement sees a whole-file read

    seen = [0]

    def iterate() -> None:
        for _ in iter_entries(str(path)):
            seen[0] += 1

    streamed = peak_bytes(iterate)
    assert seen[0] == count
    assert streamed < control / 50, (streamed, control)


def test_the_index_costs_16_bytes_a_conversation(big_file: tuple[Path, int]) -> None:
    path, count = big_file
    feed = None

    def build() -> None:
        nonlocal feed
        feed = open_dataset([str(path)])

    indexed = peak_bytes(build)
    assert feed is not None and len(feed) == count and feed.random_access
    control = peak_bytes(path.read_bytes)
    # the arrays (16 bytes a conversation, grown by up to an eighth more) plus one line and a read buffer
    assert indexed < 16 * count * 1.25 + 2 * 2**20, (indexed, count)
    assert indexed < control / 20

    def cycle() -> None:
        assert feed is not None
        for _ in range(count + 3):
            feed.next()

    assert peak_bytes(cycle) < control / 50
    assert feed.handed_out == count + 3


def test_a_big_gzip_file_is_streamed(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl.gz"
    count = write_big(path, 32 * 2**20, gz=True)
    control = peak_bytes(lambda: gzip.decompress(path.read_bytes()))
    assert control >= 32 * 2**20
    feed = None

    def build_and_cycle() -> None:
        nonlocal feed
        feed = open_dataset([str(path)])
        for _ in range(count + 3):
            feed.next()
        feed.close()

    streamed = peak_bytes(build_and_cycle)
    assert feed is not None and len(feed) == count and not feed.random_access
    assert streamed < control / 50, (streamed, control)
