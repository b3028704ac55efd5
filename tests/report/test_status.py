"""How a run went, in one line: the report's header, and ``loadgen report --check`` failing a run unfit to judge
(no turn sent, no successful turn, a lost worker, a checkpoint); with no sample, "-" and empty CSV cells."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from report_helpers import make_run, run_command, update_summary

from loadgen.report import cli
from loadgen.report.live import build_rows
from loadgen.report.rundata import load_run
from loadgen.report.status import BAD, OK, WARN, run_health


def _summary(turns: int, failures: int, **extra: object) -> dict[str, object]:
    return {"run": {"complete": True}, "turns": [], "transports": {"rest": {"count": turns, "failures": failures}},
            **extra}  # fmt: skip


@pytest.mark.parametrize(
    ("summary", "level", "headline"),
    [
        (_summary(10, 0), OK, "complete, 10 turns, no failures"),
        (_summary(10, 2), WARN, "complete, 10 turns; 2 of 10 turns failed (20.00%)"),
        (_summary(10, 0, warnings=["lag"]), WARN, "complete, 10 turns; 1 warning(s)"),
        (_summary(10, 10), BAD, "no successful turn: every one of the 10 turns failed"),
        (_summary(0, 0), BAD, "no turn was sent: the users never completed a turn (did they crash at start? see "
                              "Locust's errors)"),
        ({"run": {}, "turns": [], "transports": {}}, BAD, "no turn was sent"),
        (_summary(10, 0, workers={"expected": 2, "reported": 1, "lost": ["w-2"]}), BAD,
         "1 worker process(es) lost during the run (w-2): figures after their last report are missing"),
        ({**_summary(10, 0), "run": {"complete": False}}, BAD, "incomplete: this folder is a checkpoint"),
        (_summary(10, 1, outages=[{"transport": "rest", "end_s": None}], run={"complete": True, "cut_off_turns": 3}),
         WARN, "complete, 10 turns; still failing at the end of the run: rest; 3 turn(s) were in flight when the run "
               "stopped (cut off, not counted); 1 of 10 turns failed (10.00%)"),
    ],
)  # fmt: skip
def test_run_health(summary: dict[str, object], level: str, headline: str) -> None:
    health = run_health(summary)
    assert health.level == level
    assert health.headline.startswith(headline), health.headline
    assert bool(health.problems) == (level == BAD)


def test_report_check_fails_a_run_unfit_to_judge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = make_run(tmp_path / "reports", "good", transports=("rest",), intervals=2)
    assert run_command(cli, [str(good), "--no-html", "-q", "--check"]) == 0
    assert "check: passed (complete, 192 turns; " in capsys.readouterr().out
    dead = make_run(tmp_path / "reports", "dead", transports=("rest",), intervals=2, failure_every=1)
    assert run_command(cli, [str(dead), "--no-html", "-q"]) == 0  # without --check: reports, does not judge
    capsys.readouterr()
    assert run_command(cli, [str(dead), "--no-html", "-q", "--check"]) == 3
    out = capsys.readouterr().out
    assert "check: FAIL no successful turn: every one of the 192 turns failed" in out and "check: FAILED" in out
    assert run_command(cli, [str(dead), "--no-html", "-q", "--threshold", "errors <= 100%"]) == 3
    out = capsys.readouterr().out
    assert "PASS errors <= 100%" in out
    assert "FAIL successes >= 1 (always checked): no successful turn: every one of the 192 turns failed" in out
    update_summary(good, workers={"expected": 2, "reported": 1, "lost": ["w-2"]})
    assert run_command(cli, [str(good), "--no-html", "-q", "--check"]) == 3
    assert "check: FAIL 1 worker process(es) lost during the run (w-2)" in capsys.readouterr().out


def test_no_sample_is_empty_in_csv_and_none_in_the_web_tab(tmp_path: Path) -> None:
    dead = make_run(tmp_path / "reports", "dead", transports=("rest",), intervals=2, failure_every=1)
    assert run_command(cli, [str(dead), "--no-html", "-q"]) == 0
    rows = list(csv.DictReader((dead / "turns.csv").open()))
    for row in rows:
        assert row["e2e_p50_ms"] == row["ttft_p99_ms"] == row["itl_max_ms"] == row["e2e_mean_ms"] == ""
        assert row["output_tokens_per_s_per_user"] == ""
        assert row["error_rate"] == "1.0"
    live = build_rows(load_run(dead).batch)
    assert live and all(r["e2e_p50"] is None and r["ttft_p99"] is None and r["itl_p50"] is None for r in live)
