"""``loadgen compare`` fails safe: a dead current run, a gone row, a higher error rate or a lower retention fail
with no option given; each limit can be loosened; runs of different shapes warn (and fail when asked)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from report_helpers import make_run, run_command, update_summary

from loadgen.report import compare_cli


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    reports = tmp_path_factory.mktemp("verdicts") / "reports"
    same = {"transports": ("rest",), "seed": 1, "intervals": 2}
    return {
        "base": make_run(reports, "base", **same),
        "same": make_run(reports, "same", **same),
        "dead": make_run(reports, "dead", **same, failure_every=1),
        "empty": make_run(reports, "empty", transports=("rest",), intervals=0),
        "flaky": make_run(reports, "flaky", **same, failure_every=7),  # 1 in 7 turns fails instead of 1 in 17
        "forgetful": make_run(reports, "forgetful", **same, retention_miss_every=2),
        "one_dialogue": make_run(reports, "one_dialogue", **same, dialogues={"travel_booking": 5}),
        "two_transports": make_run(reports, "two_transports", transports=("rest", "grpc"), seed=1, intervals=2),
    }


def _compare(runs: dict[str, Path], base: str, cur: str, *options: str) -> int:
    return run_command(compare_cli, [str(runs[base]), str(runs[cur]), *options])


@pytest.mark.parametrize(
    "options",
    [(), ("--max-regression", "10%"), ("--max-error-increase", "1%", "--max-retention-drop", "1%"),
     ("--max-error-increase", "off", "--max-retention-drop", "off", "--min-count", "100000")],
)  # fmt: skip
def test_a_run_where_every_turn_failed_fails(
    runs: dict[str, Path], options: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _compare(runs, "base", "dead", *options) == 3
    out = capsys.readouterr().out
    assert "REGRESSION current run: no successful turn: every one of the" in out
    assert "compare: FAILED (exit 3)" in out and "no regression" not in out


def test_a_run_with_no_turns_fails_and_so_does_a_dead_baseline(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _compare(runs, "base", "empty") == 3
    out = capsys.readouterr().out
    assert "REGRESSION current run: no turn was sent" in out
    assert "REGRESSION rest (all): gone: " in out  # every row of the baseline is gone
    assert _compare(runs, "dead", "base") == 3
    assert "REGRESSION baseline: no successful turn" in capsys.readouterr().out


def test_the_error_rate_limit_has_a_default_and_can_be_loosened(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _compare(runs, "base", "same") == 0
    assert _compare(runs, "base", "flaky") == 3
    out = capsys.readouterr().out
    assert "REGRESSION rest (all): error rate 8.85% -> 17.19% (+8.33 pp) > +1 pp allowed" in out
    # other turns failed, so other probes were missed: retention moved too
    assert "REGRESSION rest coding_help:turn3: retention 95.45% -> 90.48% (-4.98 pp) > -1 pp allowed" in out
    assert _compare(runs, "base", "flaky", "--max-error-increase", "20%") == 3
    assert _compare(runs, "base", "flaky", "--max-error-increase", "20%", "--max-retention-drop", "5%") == 0
    assert _compare(runs, "base", "flaky", "--max-error-increase", "off", "--max-retention-drop", "off") == 0
    assert (
        "not judged: latency (no --max-regression), error rate (--max-error-increase off), retention "
        "(--max-retention-drop off)" in capsys.readouterr().out
    )
    assert _compare(runs, "base", "flaky", "--max-error-increase", "lots") == 2
    assert "expected a percentage such as 10% (or off)" in capsys.readouterr().err


def test_the_retention_limit_has_a_default_and_can_be_loosened(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _compare(runs, "base", "forgetful") == 3
    out = capsys.readouterr().out
    assert "REGRESSION rest (all): retention " in out and "> -1 pp allowed" in out
    assert _compare(runs, "base", "forgetful", "--max-retention-drop", "60%", "--max-error-increase", "60%") == 0


def test_a_gone_row_is_a_regression_unless_allowed(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _compare(runs, "base", "one_dialogue") == 3
    out = capsys.readouterr().out
    assert "REGRESSION rest coding_help:turn1: gone: 24 turns in the baseline, none now" in out
    assert "gone (was " in out  # the table says so too
    assert _compare(runs, "base", "one_dialogue", "--allow-missing") == 0
    assert "gone from the current run (allowed by --allow-missing): rest coding_help:turn1" in capsys.readouterr().out
    # a whole transport gone: its aggregate row and every turn
    assert _compare(runs, "two_transports", "base") == 3
    assert "REGRESSION grpc (all): gone" in capsys.readouterr().out
    # a row new in the current run is not a regression
    fewer = tmp_path / "fewer"
    shutil.copytree(runs["base"], fewer)
    turns = json.loads((fewer / "summary.json").read_text())["turns"]
    update_summary(fewer, turns=[r for r in turns if r["dialogue"] != "coding_help"])
    assert run_command(compare_cli, [str(fewer), str(runs["base"])]) == 0
    assert "rest coding_help 1 -->24 " in " ".join(capsys.readouterr().out.split())


def test_runs_of_different_shapes_warn_and_fail_when_asked(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = make_run(tmp_path / "reports", "other", transports=("rest",), seed=1, intervals=2, users=50)
    update_summary(other, run={"history_mode": "server", "duration_s": 10.5, "target": "http://127.0.0.1:2"})
    args = [str(runs["base"]), str(other)]
    assert run_command(compare_cli, args) == 0
    out = capsys.readouterr().out
    assert (
        "WARNING: the runs differ in shape, so the deltas measure that too: users 8 -> 50; target "
        "http://127.0.0.1:1 -> http://127.0.0.1:2; history mode client -> server (--strict-shape makes this fail)"
    ) in out  # 10 s and 10.5 s: the same duration
    assert run_command(compare_cli, [*args, "--strict-shape"]) == 3
    assert "REGRESSION runs: the runs differ in shape: users 8 -> 50" in capsys.readouterr().out
    # two runs against the embedded server are the same target, whatever port each got
    update_summary(other, run={"users": 8, "history_mode": "client", "embedded_server": True})
    update_summary(runs["same"], run={"embedded_server": True, "target": "http://127.0.0.1:3"})
    try:
        assert run_command(compare_cli, [str(runs["same"]), str(other), "--strict-shape"]) == 0
        update_summary(other, run={"duration_s": 19.0, "stream": False, "processes": 2, "dialogues": ["x"]})
        assert run_command(compare_cli, [str(runs["same"]), str(other)]) == 0
        assert (
            "differ in shape, so the deltas measure that too: duration (s) 10.0 -> 19.0; dialogues "
            "coding_help,travel_booking -> x; streaming True -> False; processes 1 -> 2"
        ) in capsys.readouterr().out
    finally:
        update_summary(runs["same"], run={"embedded_server": None, "target": "http://127.0.0.1:1"})


def test_latency_with_no_samples_now_is_no_data_and_drift_rows_are_shown(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _compare(runs, "base", "dead", "--max-regression", "10%", "--min-count", "1") == 3
    out = capsys.readouterr().out
    assert "REGRESSION rest (all): e2e p99: no data now (was " in out
    assert "- (was " in out and "0.0 (" not in out  # no latency is shown as 0
    night1 = make_run(tmp_path / "reports", "night1", transports=("rest",), seed=1, intervals=2)
    night2 = make_run(tmp_path / "reports", "night2", transports=("rest",), seed=1, intervals=2)

    def drift(pct: float | None, per_hour: float | None) -> dict[str, object]:
        return {"windows": 8, "first": 40.0, "per_hour": per_hour, "pct_per_hour": pct}

    update_summary(night1, drift={"rest": {"ttft_p99": drift(1.5, 0.6), "error_rate": drift(None, 0.001)}})
    update_summary(night2, drift={"rest": {"ttft_p99": drift(12.0, 4.8), "error_rate": drift(None, 0.004)}})
    assert run_command(compare_cli, [str(night1), str(night2)]) == 0
    out = capsys.readouterr().out
    assert "Drift over each run (trend per hour; latency relative to the first window)" in out
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert "rest TTFT p99 +1.5%/h +12%/h" in lines
    assert "rest error rate +0.1pp/h +0.4pp/h" in lines
    assert run_command(compare_cli, [str(night1), str(night2), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"transport": "rest", "figure": "TTFT p99", "unit": "%/h", "base": 1.5, "cur": 12.0} in data["drift"]
    assert run_command(compare_cli, [str(night1), str(night2), "--threshold", "drift.ttft.p99 < 10%/h"]) == 3
    assert "FAIL drift.ttft.p99 < 10%/h: drift of ttft_p99 = +12.000%/h" in capsys.readouterr().out
