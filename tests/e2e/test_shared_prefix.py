"""Shared prefixes against the reference server's prefix cache, end to end: one server, two Locust runs that differ
only in how many distinct prefixes the conversations begin with. With one shared prefix, the first turn of a
conversation finds it cached and skips its prefill; with a prefix of its own per conversation, it pays it. The
difference in the first turn's TTFT is the configured prefill of the prefix (a ratio, never an absolute time).
One user: the sim engine batches, so users whose first turns prefill in the same steps would wait for each other's
prefills too, and the difference would be a multiple of the prefill."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import run_locust

from loadgen.server.launcher import start_embedded_server
from tests.amqp_broker import BROKER_URL

pytestmark = pytest.mark.e2e

PREFIX_TOKENS = 1024
PREFILL_US = 100.0
SERVER = [
    "--prefill-us-per-token", str(PREFILL_US), "--step-base-us", "1000", "--step-per-seq-us", "0",
    "--prefix-cache-tokens", "4000000",
]  # fmt: skip
DIALOGUE = Path(__file__).resolve().parents[2] / "scenarios" / "dialogues" / "coding_help.yaml"


def _turn(summary: dict[str, Any], turn: int) -> dict[str, Any]:
    rows = [r for r in summary["turns"] if r["turn"] == turn]
    assert len(rows) == 1, rows
    return rows[0]


def test_a_shared_prefix_lowers_the_first_turns_ttft_by_its_prefill(tmp_path: Path) -> None:
    server = start_embedded_server("rest", BROKER_URL, SERVER)
    try:
        url = server.urls["rest"]
        ttft: dict[str, dict[int, float]] = {}
        hits: dict[str, float] = {}
        for name, count in (("distinct", "1000000"), ("shared", "1")):
            folder = tmp_path / name
            folder.mkdir()
            before = httpx.get(f"{url}/stats").json()["engine"]
            run = run_locust(
                folder, "--host", url, "--dialogues", str(DIALOGUE), "--max-tokens", "32",
                "--shared-prefix-tokens", str(PREFIX_TOKENS), "--prefix-count", count,
                users=1, spawn_rate=1, run_time="12s",
            )  # fmt: skip
            after = httpx.get(f"{url}/stats").json()["engine"]
            summary = run.summary
            assert _turn(summary, 1)["ttft_ms"]["count"] >= 5, run.output[-3000:]
            ttft[name] = {turn: _turn(summary, turn)["ttft_ms"]["p50"] for turn in (1, 2)}
            hits[name] = after["prefix_cache_hits"] - before["prefix_cache_hits"]
            assert after["prefix_cache_capacity_tokens"] == 4000000
    finally:
        server.stop()
    saved_ms = PREFIX_TOKENS * PREFILL_US / 1000.0  # 102.4 ms of prefill a cached prefix skips
    gain = (ttft["distinct"][1] - ttft["shared"][1]) / saved_ms
    assert 0.6 <= gain <= 1.5, (ttft, saved_ms)
    # from the second turn on, each conversation's own earlier prompt is cached either way: no difference there
    assert abs(ttft["distinct"][2] - ttft["shared"][2]) <= 0.4 * saved_ms, ttft
    assert hits["shared"] > 0 and hits["distinct"] > 0
