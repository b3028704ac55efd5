import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram
from report_helpers import make_run, read_hlog, run_command

from loadgen.metrics.keys import SeriesKey
from loadgen.report import cli
from loadgen.report.csvout import TURN_COLUMNS
from loadgen.report.files import write_reports
from loadgen.report.hlog import hlog_series
from loadgen.report.rundata import load_run


def test_report_files_are_written(synthetic_run: Path) -> None:
    written = {p.name for p in write_reports(synthetic_run)}
    assert {"turns.csv", "report.html", "rest.e2e.hlog", "grpc.itl.hlog", "generator_lag.hlog"} <= written
    html = (synthetic_run / "report.html").read_text()
    assert "Plotly.newPlot" in html and "cdn.plot.ly" not in html.split("<body>")[1]  # JS inlined, offline
    assert 'src="http' not in html  # nothing fetched from the network
    for div in ("dist-transport-e2e", "dist-turn-ttft", "latency-over-time", "generator-lag-over-time"):
        assert f'id="{div}"' in html
    assert "retention-by-turn" in html and "latency-by-context" in html and "failures-by-reason" in html


def test_turns_csv_matches_the_summary(synthetic_run: Path) -> None:
    write_reports(synthetic_run, html=False)
    rows = list(csv.DictReader((synthetic_run / "turns.csv").open()))
    summary = json.loads((synthetic_run / "summary.json").read_text())
    assert list(rows[0]) == list(TURN_COLUMNS)
    assert len(rows) == len(summary["turns"]) + len(summary["transports"])
    agg = next(r for r in rows if r["transport"] == "rest" and r["dialogue"] == "*")
    assert int(agg["count"]) == summary["transports"]["rest"]["count"]
    assert float(agg["ttft_p99_ms"]) == summary["transports"]["rest"]["ttft_ms"]["p99"]
    assert not (synthetic_run / "report.html").exists()


def test_hlog_files_read_back_with_the_counts_of_histograms_json(synthetic_run: Path) -> None:
    write_reports(synthetic_run, html=False)
    data = load_run(synthetic_run)
    wire = json.loads((synthetic_run / "histograms.json").read_text())
    assert wire["unit"] == "us"
    checked = 0
    for name, key in hlog_series(data):
        intervals, total = read_hlog(synthetic_run / name)
        assert intervals == len(data.intervals)
        encoded = wire["h"].get(key.encode())
        expected = HdrHistogram.decode(encoded[0]).get_total_count() if encoded else 0
        assert total == expected, name
        checked += 1
    assert checked == 2 * 6 + 1  # e2e, ttft, itl, tpot, e2e_from_intended, schedule_lag per transport; the lag
    first = (synthetic_run / "rest.ttft.hlog").read_text().splitlines()
    assert first[0] == "#[Histogram log format version 1.2]"
    assert any(line.startswith("#[StartTime: ") for line in first)
    assert any(line.startswith("#[BaseTime: ") for line in first)
    assert SeriesKey("rest", "*", 0, "ttft").encode() in wire["h"]


def test_report_command_regenerates_byte_identical_tables(
    synthetic_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_reports(synthetic_run)
    before = {p.name: p.read_bytes() for p in synthetic_run.iterdir() if p.suffix in (".csv", ".hlog", ".html")}
    assert run_command(cli, [str(synthetic_run)]) == 0
    first_out = capsys.readouterr().out
    after = {p.name: p.read_bytes() for p in synthetic_run.iterdir() if p.suffix in (".csv", ".hlog", ".html")}
    assert after == before  # CSV, hlog and even the HTML are deterministic
    assert run_command(cli, [str(synthetic_run)]) == 0
    assert capsys.readouterr().out == first_out  # the console table too
    assert "Per-turn latency (ms) and context retention" in first_out
    # --out: a copy elsewhere gives the same bytes
    out = tmp_path / "elsewhere"
    assert run_command(cli, [str(synthetic_run), "--out", str(out), "--quiet"]) == 0
    assert (out / "turns.csv").read_bytes() == before["turns.csv"]


def test_report_command_thresholds_and_bad_input(synthetic_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_command(cli, [str(synthetic_run), "--no-html", "-q", "--threshold", "errors < 50%"]) == 0
    assert "thresholds: all 2 passed" in capsys.readouterr().out
    assert run_command(cli, [str(synthetic_run), "--no-html", "-q", "--threshold", "e2e.p50 < 1us"]) == 3
    assert "FAIL e2e.p50 < 1us" in capsys.readouterr().out
    assert run_command(cli, [str(synthetic_run), "--threshold", "e2e.p50 < 1"]) == 2
    assert "needs a time unit" in capsys.readouterr().err
    assert run_command(cli, [str(synthetic_run.parent / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_report_runs_as_a_console_command(synthetic_run: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "loadgen", "report", str(synthetic_run), "--no-html"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "wrote " in proc.stdout and "turns.csv" in proc.stdout


def test_hlog_start_that_is_not_a_whole_millisecond(tmp_path: Path) -> None:
    """A reader must not drop the first interval when the run started mid-millisecond."""
    run_dir = make_run(tmp_path / "reports", "odd", transports=("rest",), intervals=2)
    summary = json.loads((run_dir / "summary.json").read_text())
    intervals = [json.loads(line) for line in (run_dir / "intervals.jsonl").read_text().splitlines()]
    shift = 0.98765  # rounds up at 3 decimals
    for item in intervals:
        item["start"] += shift
        item["end"] += shift
    summary["run"]["started_at"] += shift
    (run_dir / "intervals.jsonl").write_text("".join(json.dumps(i) + "\n" for i in intervals))
    (run_dir / "summary.json").write_text(json.dumps(summary))
    write_reports(run_dir, html=False)
    data = load_run(run_dir)
    for name, _ in hlog_series(data):
        assert read_hlog(run_dir / name)[0] == len(data.intervals), name
