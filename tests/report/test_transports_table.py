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


def test_recovery_per_transport_under_one_fault_schedule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The seed's table: per transport, latency, turns/s, error rate and recovery time, from each run's summary."""
    from report_helpers import outage, soak_fields, update_summary

    reports = tmp_path / "reports"
    rest = make_run(reports, "f-rest", transports=("rest",), intervals=2)
    grpc = make_run(reports, "f-grpc", transports=("grpc",), intervals=2)
    old = make_run(reports, "f-amqp", transports=("amqp",), intervals=2)  # a folder with no recovery figures
    faults = [{"fault": "3s+2s down", "kind": "down", "start_s": 3.0, "end_s": 5.0}]
    update_summary(rest, **soak_fields(10.0, ("rest",), outages=[outage("rest", 3.1, 5.2, 0.4)], faults=faults))
    two = [outage("grpc", 3.0, 6.0, 1.8), outage("grpc", 8.0, 9.0, 0.2)]
    update_summary(grpc, **soak_fields(10.0, ("grpc",), outages=two, faults=faults))
    argv = ["--runs", f"{rest},{grpc},{old}", "--id", "f", "--reports-dir", str(reports)]
    assert run_command(transports_cli, argv) == 0
    out = capsys.readouterr().out
    assert "| outages | recovery max (s) | recovery p50 (s) |" in out
    assert "- rest: server faults injected: 3s+2s down" in out
    rows = {r["transport"]: r for r in csv.DictReader((reports / "f" / "comparison.csv").open())}
    recovery = {t: (r["outages"], r["recovery_max_s"], r["recovery_p50_s"]) for t, r in rows.items()}
    assert recovery["rest"] == ("1", "0.4", "0.4") and recovery["grpc"] == ("2", "1.8", "1.8")
    assert (rows["amqp"]["outages"], rows["amqp"]["recovery_max_s"]) == ("", "")  # no data, not 0
    assert float(rows["grpc"]["turns_per_s"]) > 0 and rows["grpc"]["error_rate"]


def test_embedded_server_args_go_to_every_run() -> None:
    parser = argparse.ArgumentParser()
    transports_cli.configure(parser)
    args = parser.parse_args(["--embedded-server-args", "--faults '30s+10s down'", "-t", "1m"])
    cmd = transports_cli.locust_command(args, "rest", "x-rest", None)
    assert cmd[cmd.index("--embedded-server-args") + 1] == "--faults '30s+10s down'"
    assert "--embedded-server-args" not in transports_cli.locust_command(args, "rest", "x-rest", "http://svc:8000")
