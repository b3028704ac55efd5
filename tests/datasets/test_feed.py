"""The feed many users share: order, wrap-around, random access, shards, thread safety, changed files."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from loadgen.datasets import DatasetError, Shard, open_dataset, split_over
from tests.conftest import REPO_ROOT
from tests.datasets.helpers import openai_line, sharegpt_line, write_lines

GREENLETS = """
import sys
from gevent import monkey

monkey.patch_all()  # as under Locust
from collections import Counter

import gevent

from loadgen.datasets import open_dataset

feed = open_dataset(sys.argv[1:], skip_bad=True)
taken = []


def user():
    for _ in range(35):
        taken.append(feed.next().index)
        gevent.sleep(0)


gevent.joinall([gevent.spawn(user) for _ in range(40)], timeout=60)
print(sorted(Counter(taken).items()), feed.handed_out)
"""


def dataset(tmp_path: Path, *, gz: bool = False, name: str = "d") -> list[str]:
    """Two files, 7 usable conversations (tags t0..t6) with a short and a malformed line among them."""
    first = write_lines(
        tmp_path / f"{name}1.jsonl",
        [openai_line(5, tag="t0"), openai_line(2, tag="short"), sharegpt_line(6, tag="t1"), openai_line(5, tag="t2")],
        gz=gz,
    )
    second = write_lines(
        tmp_path / f"{name}2.jsonl",
        [
            sharegpt_line(5, tag="t3"),
            "oops",
            openai_line(8, tag="t4"),
            openai_line(5, tag="t5"),
            openai_line(7, tag="t6"),
        ],
        gz=gz,
    )
    return [str(first), str(second)]


def tag(conversation_user_turn: str) -> str:
    return conversation_user_turn.split()[0]


@pytest.mark.parametrize("gz", [False, True])
def test_sequential_order_wraps_around(tmp_path: Path, gz: bool) -> None:
    paths = dataset(tmp_path, gz=gz)
    with open_dataset(paths, skip_bad=True) as feed:
        assert len(feed) == 7
        assert feed.random_access is not gz
        got = [feed.next() for _ in range(17)]
        assert [tag(c.turns[0].user) for c in got] == [f"t{i % 7}" for i in range(17)]
        assert [c.index for c in got[:7]] == list(range(7))
        assert [c.source for c in got[:4]] == [f"{paths[0]}:1", f"{paths[0]}:3", f"{paths[0]}:4", f"{paths[1]}:1"]
        assert got[4].line == 3  # line 2 of the second file is malformed
        assert feed.handed_out == 17
    counts = [(c.conversations, c.usable, c.short, c.malformed, c.problems[:1]) for c in feed.counts]
    assert counts[0][:4] == (4, 3, 1, 0)
    assert counts[1][:4] == (5, 4, 0, 1)
    assert counts[1][4][0][0] == 2


def test_a_malformed_line_stops_the_open(tmp_path: Path) -> None:
    paths = dataset(tmp_path)
    with pytest.raises(DatasetError) as caught:
        open_dataset(paths)
    assert str(caught.value) == (
        f"{paths[1]}:2: not valid JSON (unexpected character, expected a JSON value at column 1)"
    )


def test_one_path_or_several(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "one.jsonl", [openai_line(5), openai_line(6)])
    assert len(open_dataset(str(path))) == len(open_dataset(path)) == len(open_dataset([path, str(path)])) / 2 == 2


def test_random_access_by_number(tmp_path: Path) -> None:
    feed = open_dataset(dataset(tmp_path), skip_bad=True)
    assert [tag(feed.get(n).turns[0].user) for n in (0, 4, 6, 7, 13, 100)] == ["t0", "t4", "t6", "t0", "t6", "t2"]
    assert feed.get(4).turns[-1].recorded_reply == "t4 a8"
    assert feed.handed_out == 0


def test_gzip_has_no_random_access(tmp_path: Path) -> None:
    paths = dataset(tmp_path, gz=True)
    feed = open_dataset(paths, skip_bad=True)
    with pytest.raises(DatasetError, match="is gzip-compressed: reading a conversation by number needs"):
        feed.get(0)
    with pytest.raises(DatasetError) as caught:
        open_dataset(paths, skip_bad=True, order="shuffled")
    assert str(caught.value) == f"{paths[0]}: is gzip-compressed: a shuffled order needs uncompressed files"


def test_shuffled_order_is_a_seeded_permutation_repeated(tmp_path: Path) -> None:
    paths = dataset(tmp_path)
    feed = open_dataset(paths, skip_bad=True, order="shuffled", seed=3)
    first_cycle = [feed.next().index for _ in range(7)]
    assert sorted(first_cycle) == list(range(7))
    assert first_cycle != list(range(7))
    assert [feed.next().index for _ in range(7)] == first_cycle
    again = open_dataset(paths, skip_bad=True, order="shuffled", seed=3)
    assert [again.next().index for _ in range(7)] == first_cycle
    other = open_dataset(paths, skip_bad=True, order="shuffled", seed=4)
    assert [other.next().index for _ in range(7)] != first_cycle


@pytest.mark.parametrize("gz", [False, True])
def test_shards_are_disjoint_and_cover_the_dataset(tmp_path: Path, gz: bool) -> None:
    paths = dataset(tmp_path, gz=gz)
    shards = [open_dataset(paths, skip_bad=True, shard=Shard(i, 3)) for i in range(3)]
    assert [len(s) for s in shards] == [3, 2, 2]
    taken = [[s.next().index for _ in range(len(s) * 2)] for s in shards]
    assert taken == [[0, 3, 6, 0, 3, 6], [1, 4, 1, 4], [2, 5, 2, 5]]


@pytest.mark.parametrize("gz", [False, True])
def test_a_feed_resharded_hands_out_its_new_shard_from_the_start(tmp_path: Path, gz: bool) -> None:
    feed = open_dataset(dataset(tmp_path, gz=gz), skip_bad=True)
    assert feed.usable == 7
    assert [feed.next().index for _ in range(3)] == [0, 1, 2]
    feed.reshard(Shard(1, 3))
    assert len(feed) == 2 and feed.handed_out == 0 and feed.usable == 7
    assert [feed.next().index for _ in range(5)] == [1, 4, 1, 4, 1]
    feed.reshard(Shard(0, 1))
    assert [feed.next().index for _ in range(8)] == [0, 1, 2, 3, 4, 5, 6, 0]


def test_a_shuffled_feed_resharded_keeps_its_permutation_seed(tmp_path: Path) -> None:
    paths = dataset(tmp_path)
    feed = open_dataset(paths, skip_bad=True, order="shuffled", seed=3)
    feed.reshard(Shard(2, 3))
    fresh = open_dataset(paths, skip_bad=True, order="shuffled", seed=3, shard=Shard(2, 3))
    assert [feed.next().index for _ in range(4)] == [fresh.next().index for _ in range(4)]


def test_resharding_into_no_conversation_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    paths = dataset(tmp_path)
    feed = open_dataset(paths, skip_bad=True)
    with pytest.raises(DatasetError, match=r": 7 usable conversations, none in shard 7 of 8$"):
        feed.reshard(Shard(7, 8))
    with pytest.raises(DatasetError, match=r"shard 3 of 3 does not exist$"):
        feed.reshard(Shard(3, 3))
    assert feed.shard == Shard() and [feed.next().index for _ in range(2)] == [0, 1]


def test_workers_in_id_order_get_one_shard_each() -> None:
    assert split_over(["w-b", "w-c", "w-a"], usable=10) == {"w-a": Shard(0, 3), "w-b": Shard(1, 3), "w-c": Shard(2, 3)}
    assert split_over(["a", "b"], usable=2) == {"a": Shard(0, 2), "b": Shard(1, 2)}


def test_no_split_for_one_worker_or_fewer_conversations_than_workers() -> None:
    assert split_over(["a"], usable=100) == {}
    assert split_over([], usable=100) == {}
    assert split_over(["a", "b", "c"], usable=2) == {}


def test_an_empty_shard_or_dataset_is_an_error(tmp_path: Path) -> None:
    paths = dataset(tmp_path)
    with pytest.raises(DatasetError) as caught:
        open_dataset(paths, skip_bad=True, shard=Shard(7, 8))
    assert str(caught.value) == (
        f"{paths[0]}, {paths[1]}: no usable conversation: 9 conversations, 1 with fewer than 5 user turns, "
        "1 malformed; 7 usable, none in shard 7 of 8"
    )
    with pytest.raises(DatasetError, match=r"no usable conversation: 9 conversations, 8 with fewer than 9 user"):
        open_dataset(paths, skip_bad=True, min_user_turns=9)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"min_user_turns": 0}, "the minimum of user turns must be 1 or more, not 0"),
        ({"order": "random"}, "order 'random' is not one of sequential, shuffled"),
        ({"shard": Shard(2, 2)}, "shard 2 of 2 does not exist"),
    ],
)
def test_bad_settings(tmp_path: Path, kwargs: dict[str, object], problem: str) -> None:
    path = str(write_lines(tmp_path / "one.jsonl", [openai_line(5)]))
    with pytest.raises(DatasetError) as caught:
        open_dataset([path], **kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == f"{path}: {problem}"
    with pytest.raises(DatasetError, match="no dataset file given"):
        open_dataset([])


@pytest.mark.parametrize("gz", [False, True])
def test_many_threads_share_one_feed(tmp_path: Path, gz: bool) -> None:
    feed = open_dataset(dataset(tmp_path, gz=gz), skip_bad=True)
    per_thread = 70
    results: list[list[int]] = []

    def user() -> None:
        results.append([feed.next().index for _ in range(per_thread)])

    threads = [threading.Thread(target=user) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 8
    assert feed.handed_out == 8 * per_thread
    assert Counter(i for r in results for i in r) == dict.fromkeys(range(7), 8 * per_thread // 7)
    feed.close()


@pytest.mark.parametrize("gz", [False, True])
def test_many_greenlets_share_one_feed(tmp_path: Path, gz: bool) -> None:
    done = subprocess.run(
        [sys.executable, "-c", GREENLETS, *dataset(tmp_path, gz=gz)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{[(i, 200) for i in range(7)]} 1400"


def test_a_file_that_changes_during_a_run_is_an_error(tmp_path: Path) -> None:
    indexed = dataset(tmp_path, name="plain")
    feed = open_dataset(indexed, skip_bad=True)
    Path(indexed[0]).write_text("x" * 5000 + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        feed.next()
    assert str(caught.value).startswith(f"{indexed[0]}:1: changed since the dataset was opened (not valid JSON")

    streamed = dataset(tmp_path, gz=True, name="gz")
    feed = open_dataset(streamed, skip_bad=True)
    assert [feed.next().index for _ in range(3)] == [0, 1, 2]
    write_lines(Path(streamed[1]), [openai_line(5)], gz=True)
    with pytest.raises(DatasetError) as caught:
        for _ in range(7):
            feed.next()
    assert str(caught.value) == (
        f"{streamed[0]}, {streamed[1]}: changed since the dataset was opened: 4 usable conversations, not 7"
    )
