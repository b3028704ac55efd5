"""A run folder written by an earlier version (``data/run-v1``: one dialogue over REST, transport failures of three
kinds with their reasons, retention misses, context buckets, fractional output tokens) still loads in
``loadgen report``, gives the same table, CSV and hlog files as that version did (``data/run-v1-expected``), and
its histograms rebuild the summary it was written with."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from report_helpers import run_command

from loadgen.metrics.summary import build_summary
from loadgen.report import cli
from loadgen.report.csvout import TURN_COLUMNS
from loadgen.report.rundata import load_run

DATA = Path(__file__).resolve().parent / "data"
OLD_RUN = DATA / "run-v1"
EXPECTED = DATA / "run-v1-expected"


@pytest.fixture
def old_run(tmp_path: Path) -> Path:
    target = tmp_path / "run-v1"
    shutil.copytree(OLD_RUN, target)
    return target


def test_an_old_run_folder_reports_as_it_did(old_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_command(cli, [str(old_run), "--no-html"]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("wrote ")]
    assert printed == (EXPECTED / "table.txt").read_text(encoding="utf-8").splitlines()
    for expected in sorted(EXPECTED.glob("*.hlog")):
        assert (old_run / expected.name).read_bytes() == expected.read_bytes(), expected.name
    # turns.csv: the same columns, then the later ones (TPOT, latency from the intended start, SLO): empty here
    later = len(TURN_COLUMNS) - len(_first_line(EXPECTED / "turns.csv").split(","))
    assert later == 13
    written = (old_run / "turns.csv").read_text(encoding="utf-8").splitlines()
    old = (EXPECTED / "turns.csv").read_text(encoding="utf-8").splitlines()
    assert [line[: len(line) - later] if i else line.rsplit(",", later)[0] for i, line in enumerate(written)] == old
    assert all(line.endswith("," * later) for line in written[1:])


def _first_line(path: Path) -> str:
    return path.read_text(encoding="utf-8").splitlines()[0]


def test_an_old_run_folders_histograms_rebuild_its_summary(old_run: Path) -> None:
    data = load_run(old_run)
    saved = json.loads((old_run / "summary.json").read_text(encoding="utf-8"))
    rebuilt = build_summary(data.batch, saved["run"])
    # schema 2 adds the "session" failure kind (none in a version 1 folder); nothing else differs
    # later ones add TPOT and the latency from the intended start (no samples in an old folder)
    for row in [*rebuilt["turns"], *rebuilt["transports"].values()]:
        assert row["failures_by_kind"].pop("session") == 0
        assert row.pop("tpot_ms")["count"] == 0
        assert row.pop("e2e_from_intended_ms")["count"] == 0
        tokens = row.pop("tokens")  # and the token block: lengths from the histograms, no accounting counters
        assert tokens["counted_by"] == {"usage": 0, "tokenizer": 0, "estimate": 0} and not tokens["short_reply"]
        assert tokens["output"]["count"] == row["e2e_ms"]["count"]
    for part in ("turns", "transports", "context_buckets", "generator_lag_ms"):
        assert rebuilt[part] == saved[part], part
    reasons = saved["transports"]["rest"]["failure_reasons"]
    assert reasons == {
        "RetentionFailure: turn 3 forgot code='AB1234' planted at turn 1": 3,
        "TurnTimeout: turn timed out after 60 s": 1,
        "ServerError: HTTP 503": 2,
        "ConnectError: refused": 2,
    }
    assert set(saved["context_buckets"]["rest"]) == {"<512", "512-2k", "2k-4k", ">4k"}
    assert saved["transports"]["rest"]["output_tokens"] == 170.0
