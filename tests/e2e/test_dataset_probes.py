"""Retention probes planted into replayed dataset conversations, end to end against the embedded reference server
(whose responder quotes a fact only while the context it keeps still holds it): every probe passes while the
whole history reaches the server, and fails as a retention miss, counted and reported like a scripted dialogue's,
when the server's context window is too small to keep the first turn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from harness import LocustRun, run_locust

from loadgen.datasets.replay import DATASET_DIALOGUE

pytestmark = pytest.mark.e2e

DATASET = Path(__file__).resolve().parents[2] / "scenarios" / "datasets" / "sample_openai.jsonl"


def _replay(tmp_path: Path, *args: str) -> LocustRun:
    return run_locust(
        tmp_path, "--dataset", str(DATASET), "--plant-probes", "--max-tokens", "32", *args,
        users=4, spawn_rate=4, run_time="8s", think=(0.05, 0.1),
    )  # fmt: skip


def _rows(run: LocustRun) -> list[dict[str, Any]]:
    rows = run.summary["turns"]
    assert rows, run.output[-3000:]
    assert {r["dialogue"] for r in rows} == {DATASET_DIALOGUE}
    return list(rows)


@pytest.mark.parametrize("history", ["client", "server"])
def test_planted_probes_pass_while_the_server_keeps_the_context(tmp_path: Path, history: str) -> None:
    run = _replay(tmp_path, "--history", history)
    rows = _rows(run)
    checked = sum(r["retention"]["checked"] for r in rows)
    assert checked >= 4, run.output[-3000:]
    assert sum(r["retention"]["passed"] for r in rows) == checked
    # the sample's conversations have 5 to 8 user turns: the probe is the turn after the last, never before 6
    assert all(r["retention"]["checked"] == 0 for r in rows if r["turn"] <= 5)
    assert sum(r["failures"] for r in rows) == 0
    assert run.summary["transports"]["rest"]["retention"]["rate"] == 1.0
    assert run.summary["run"]["dialogues"] == [DATASET_DIALOGUE]
    assert run.returncode == 0, run.output[-3000:]


def test_planted_probes_fail_when_the_server_drops_the_planted_turn(tmp_path: Path) -> None:
    # 150 tokens of context less 32 for the reply: the planted first turn is long gone by the appended probe
    run = _replay(tmp_path, "--embedded-server-args", "--context-window 150")
    rows = _rows(run)
    checked = sum(r["retention"]["checked"] for r in rows)
    assert checked >= 4, run.output[-3000:]
    assert sum(r["retention"]["passed"] for r in rows) == 0
    assert sum(r["failures_by_kind"]["retention"] for r in rows) == checked
    assert sum(r["failures_by_kind"]["session"] + r["failures_by_kind"]["transport"] for r in rows) == 0
    reasons = run.summary["transports"]["rest"]["failure_reasons"]
    assert reasons and all(
        reason.startswith(f"RetentionFailure: {DATASET_DIALOGUE} turn ") and reason.endswith(
            "forgot fact (planted at turn 1)")
        for reason in reasons
    ), reasons  # fmt: skip
    assert run.returncode != 0  # failed turns fail the run, as with scripted dialogues
