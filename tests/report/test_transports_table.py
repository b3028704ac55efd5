import argparse
import csv
from pathlib import Path

import pytest
from report_helpers import make_run, run_command

from loadgen.report import transports_cli


def test_table_from_finished_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reports = tmp_path / "reports"
    rest = make_run(reports, "t-rest", transports=("rest",), intervals=2)
    grpc = make_run(reports, "t-grpc", transports=("grpc",), intervals=2, scale=1.4)
    code = run_command(transports_cli, ["--runs", f"{rest},{grpc}", "--id", "t", "--reports-dir", str(reports)])
    assert code == 0
    out = capsys.readouterr().out
    assert "| transport | run | turns | e2e avg (ms) |" in out
    rows = list(csv.DictReader((reports / "t" / "comparison.csv").open()))
    assert [r["transport"] for r in rows] == ["rest", "grpc"]
    assert float(rows[1]["e2e_p99_ms"]) > float(rows[0]["e2e_p99_ms"])
    for name in ("comparison.md", "comparison.csv", "comparison.html"):
        assert (reports / "t" / name).stat().st_size > 0
    assert "cmp-dist-e2e" in (reports / "t" / "comparison.html").read_text()


def test_locust_command_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    transports_cli.configure(parser)
    args = parser.parse_args(["--transports", "rest", "-u", "5", "-t", "10s", "--", "--seed", "1"])
    cmd = transports_cli.locust_command(args, "grpc", "x-grpc", "grpc://127.0.0.1:1")
    assert cmd[1:4] == ["-m", "locust", "-f"]
    assert cmd[cmd.index("--transport") + 1] == "grpc" and cmd[cmd.index("--run-id") + 1] == "x-grpc"
    assert cmd[cmd.index("-r") + 1] == "5" and cmd[cmd.index("--host") + 1] == "grpc://127.0.0.1:1"
    assert cmd[-2:] == ["--seed", "1"]
    reports = str(tmp_path / "r")
    assert run_command(transports_cli, ["--transports", "rest,smtp", "--reports-dir", reports]) == 2
    assert "choose from amqp, grpc, rest" in capsys.readouterr().err
    assert run_command(transports_cli, ["--target", "rest", "--reports-dir", reports]) == 2
    assert "expected TRANSPORT=URL" in capsys.readouterr().err
    assert run_command(transports_cli, ["--runs", str(tmp_path / "missing"), "--reports-dir", reports]) == 2


def test_run_time_syntax() -> None:
    assert transports_cli._seconds("30s") == 30
    assert transports_cli._seconds("1h30m") == 5400
    assert transports_cli._seconds("45") == 45
    with pytest.raises(ValueError, match="expected a duration"):
        transports_cli._seconds("soon")
