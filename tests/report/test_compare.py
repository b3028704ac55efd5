import csv
import io
import json
from pathlib import Path

import pytest
from report_helpers import make_run, run_command

from loadgen.report import compare_cli
from loadgen.report.compare import RegressionRules, compare_summaries, parse_percent
from loadgen.report.rundata import load_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    reports = tmp_path_factory.mktemp("cmp") / "reports"
    return {
        "base": make_run(reports, "base", transports=("rest",), seed=1, intervals=2),
        "same": make_run(reports, "same", transports=("rest",), seed=1, intervals=2),
        "slow": make_run(reports, "slow", transports=("rest",), seed=1, intervals=2, scale=1.5),
    }


def test_identical_runs_pass(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = run_command(compare_cli, [str(runs["base"]), str(runs["same"]), "--max-regression", "10%"])
    out = capsys.readouterr().out
    assert code == 0
    assert "rest (all)" not in out  # the text table shows transport and dialogue columns
    assert "(+0.0%)" in out
    assert "compare: no regression past the given limits" in out


def test_a_slower_run_fails_with_exit_code_3(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = run_command(compare_cli, [str(runs["base"]), str(runs["slow"]), "--max-regression", "10%"])
    out = capsys.readouterr().out
    assert code == 3
    assert "REGRESSION rest (all): ttft p99" in out
    assert "compare: FAILED (exit 3)" in out
    # a generous limit passes; so does judging only rows with many turns when none has that many
    assert run_command(compare_cli, [str(runs["base"]), str(runs["slow"]), "--max-regression", "80%"]) == 0
    assert (
        run_command(
            compare_cli, [str(runs["base"]), str(runs["slow"]), "--max-regression", "10%", "--min-count", "100000"]
        )
        == 0
    )
    assert "not judged" in capsys.readouterr().out


def test_thresholds_apply_to_the_current_run(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(runs["base"]), str(runs["same"])]
    assert run_command(compare_cli, [*args, "--threshold", "errors < 50%"]) == 0
    assert run_command(compare_cli, [*args, "--threshold", "retention >= 100%"]) == 3
    assert "FAIL retention >= 100%" in capsys.readouterr().out
    assert run_command(compare_cli, [*args, "--threshold", "retention >= 100"]) == 2
    assert "retention is a rate" in capsys.readouterr().err


def test_bad_input_exits_2(runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_command(compare_cli, [str(tmp_path / "nope"), str(runs["same"])]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert run_command(compare_cli, [str(runs["base"]), str(runs["same"]), "--max-regression", "ten"]) == 2
    assert "expected a percentage" in capsys.readouterr().err
    assert run_command(compare_cli, [str(runs["base"]), str(runs["same"]), "--stat", "p42"]) == 2


def test_machine_formats(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_command(compare_cli, [str(runs["base"]), str(runs["slow"]), "--format", "csv"]) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    agg = next(r for r in rows if r["dialogue"] == "*")
    assert float(agg["ttft_p99_delta_pct"]) > 10
    assert "compare:" in captured.err  # the verdict stays off stdout
    assert run_command(compare_cli, [str(runs["base"]), str(runs["slow"]), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rows"] and data["violations"] == []
    assert run_command(compare_cli, [str(runs["base"]), str(runs["slow"]), "--format", "markdown"]) == 0
    assert "| transport | dialogue |" in capsys.readouterr().out


def test_error_and_retention_rules(runs: dict[str, Path]) -> None:
    base = load_run(runs["base"], need_intervals=False).summary
    worse = json.loads(json.dumps(base))
    agg = worse["transports"]["rest"]
    agg["failures"] += 10
    agg["retention"]["passed"] -= 5
    result = compare_summaries(
        base, worse, RegressionRules(max_error_increase=0.01, max_retention_drop=0.01, min_count=1)
    )
    whats = [v.what for v in result.violations]
    assert any(w.startswith("error rate") for w in whats)
    assert any(w.startswith("retention") for w in whats)


def test_parse_percent() -> None:
    assert parse_percent("10%", "--x") == pytest.approx(0.10)
    assert parse_percent("2.5", "--x") == pytest.approx(0.025)
    with pytest.raises(ValueError, match="must not be negative"):
        parse_percent("-1%", "--x")
