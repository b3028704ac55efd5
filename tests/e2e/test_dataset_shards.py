"""A dataset replayed over two processes (``--processes 2``): each worker replays its own part, so no conversation
is started by both, and both parts are replayed. The server is one the tool did not bring (it keeps every request
body), so what is checked is what reached the wire."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.datasets.helpers import openai_line, write_lines
from tests.e2e.harness import run_locust
from tests.e2e.token_server import TokenServer

pytestmark = pytest.mark.e2e

CONVERSATIONS = 600  # more than 4 users start in 5 s on a quiet machine: no shard wraps around


@pytest.fixture
def server() -> Iterator[TokenServer]:
    running = TokenServer().start()
    yield running
    running.stop()


def _first_turns(server: TokenServer) -> Counter[int]:
    """How often each dataset conversation was started: the requests holding one user message, ``c<k> u1``."""
    started: Counter[int] = Counter()
    for body in server.bodies:
        users = [m["content"] for m in body["messages"] if m["role"] == "user"]
        if len(users) == 1:
            tag, turn = users[0].split()
            assert turn == "u1", users
            started[int(tag[1:])] += 1
    return started


def test_two_workers_replay_disjoint_halves_of_the_dataset(tmp_path: Path, server: TokenServer) -> None:
    lines = [openai_line(5, tag=f"c{k}") for k in range(CONVERSATIONS)]
    dataset = write_lines(tmp_path / "conversations.jsonl", lines)
    run = run_locust(
        tmp_path, "--host", server.url("nousage"), "--dataset", str(dataset), "--max-tokens", "8",
        "--processes", "2", users=4, spawn_rate=4, run_time="5s", think=(0.02, 0.05), timeout=120,
    )  # fmt: skip
    assert run.returncode in (0, 1), run.output[-3000:]
    started = _first_turns(server)
    assert sum(started.values()) >= 8, (started, run.output[-3000:])  # both workers' users started several
    assert max(started.values()) == 1, started  # without shards both workers start at conversation 0
    parities = Counter(k % 2 for k in started)
    assert set(parities) == {0, 1}, started
    # each worker replays its part in order from its start: even numbers 0, 2, 4... and odd 1, 3, 5...
    for parity in (0, 1):
        taken = sorted(k for k in started if k % 2 == parity)
        assert taken == list(range(parity, parity + 2 * len(taken), 2)), started
