"""Reports, CI gates, the turn log, the transport comparison and the web UI tab on real short Locust runs
against the embedded reference server (a few users, <= 6 s of load each)."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram
from report_helpers import IN_CI, drawn_plots, has_browser, read_hlog

from loadgen.report.hlog import hlog_series
from loadgen.report.rundata import load_run
from loadgen.server.config import LOCAL_AMQP_URL
from loadgen.server.launcher import start_embedded_server

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))

from harness import LOCUSTFILE, run_locust  # noqa: E402

pytestmark = pytest.mark.e2e
DIALOGUES = str(REPO_ROOT / "scenarios" / "dialogues")
FAST = ("--think-min", "0.05", "--think-max", "0.2")
BROKER_HINT = "no RabbitMQ on 127.0.0.1:5672: start one with `rabbitmq-server -detached` (guest/guest)"


def _broker_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1.0):
            return True
    except OSError:
        return False


def _transports() -> list[str]:
    """REST always; gRPC; AMQP when a broker answers (required in CI, where .ci/run starts one)."""
    names = ["rest", "grpc"]
    if _broker_up():
        names.append("amqp")
    elif IN_CI:
        pytest.fail(BROKER_HINT)
    return names


def _check_run_folder(run_dir: Path) -> dict[str, Any]:
    """Every report file is there and agrees with summary.json / histograms.json."""
    summary: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    for name in ("turns.csv", "report.html", "generator_lag.hlog"):
        assert (run_dir / name).exists(), name
    data = load_run(run_dir)
    wire = json.loads((run_dir / "histograms.json").read_text())
    for name, key in hlog_series(data):
        intervals, total = read_hlog(run_dir / name)
        assert intervals == len(data.intervals) >= 1
        encoded = wire["h"].get(key.encode())
        assert total == (HdrHistogram.decode(encoded[0]).get_total_count() if encoded else 0), name
    return summary


def _regenerate(run_dir: Path) -> None:
    """`loadgen report RUN_DIR` rewrites the same turns.csv bytes as the end of the run did."""
    before = (run_dir / "turns.csv").read_bytes()
    (run_dir / "turns.csv").unlink()
    proc = subprocess.run(
        [sys.executable, "-m", "loadgen", "report", str(run_dir), "--no-html"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (run_dir / "turns.csv").read_bytes() == before


def test_broken_threshold_exits_3_with_reports_and_turn_log(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    run = run_locust(
        tmp_path,
        *FAST,
        "--threshold",
        "errors < 50%",
        "--threshold",
        "turn1.ttft.p99 < 1us",
        "--turn-log",
        "turns.jsonl",
        users=4,
        run_time="6s",
    )
    assert run.returncode == 3, run.output[-3000:]
    assert "FAIL turn1.ttft.p99 < 1us" in run.output and "PASS errors < 50%" in run.output
    summary = _check_run_folder(run.run_dir)
    results = json.loads((run.run_dir / "thresholds.json").read_text())
    assert [r["passed"] for r in results] == [True, False]
    count = summary["transports"]["rest"]["count"]
    lines = [json.loads(line) for line in (tmp_path / "turns.jsonl").read_text().splitlines()]
    assert len(lines) == count > 0
    assert {"conversation_id", "turn", "e2e_ms", "ttft_ms", "verdict"} <= set(lines[0])
    _regenerate(run.run_dir)
    if has_browser():  # the real run's report renders too (test_browser.py fails in CI without a browser)
        driver = request.getfixturevalue("browser")
        html = (run.run_dir / "report.html").read_text()
        expected = html.count('class="plotly-graph-div"')
        plots = drawn_plots(driver, run.run_dir / "report.html", expected)
        assert len(plots) == expected >= 10
        assert all(p["svgs"] and p["traces"] for p in plots), plots


def test_distributed_run_with_passing_thresholds_exits_0(tmp_path: Path) -> None:
    thresholds = tmp_path / "gates.yaml"
    thresholds.write_text("- 'errors < 50%'\n- 'e2e.p99 < 30s'\n- 'generator_lag.p99 < 10s'\n")
    run = run_locust(
        tmp_path,
        *FAST,
        "--processes",
        "2",
        "--thresholds-file",
        str(thresholds),
        "--turn-log",
        "logs/turns.jsonl",
        "--no-html",
        users=4,
        run_time="6s",
    )
    assert run.returncode == 0, run.output[-3000:]
    assert "thresholds: all 3 passed" in run.output
    assert not (run.run_dir / "report.html").exists()
    assert (run.run_dir / "turns.csv").exists()
    files = sorted((tmp_path / "logs").glob("turns.*.jsonl"))
    assert len(files) == 2  # one per worker process, pid in the name
    assert all(f.read_text().strip() for f in files)
    lines = sum(len(f.read_text().splitlines()) for f in files)
    # >=: a worker logs turns that finish during the stop window after its last report to the master,
    # which neither Locust's stats nor the merged histograms count
    assert lines >= run.summary["transports"]["rest"]["count"] > 0


def test_bad_threshold_stops_the_run_before_load(tmp_path: Path) -> None:
    run = run_locust(tmp_path, *FAST, "--threshold", "ttft.p99 < 800", users=1, run_time="5s", timeout=120)
    assert run.returncode == 2
    assert "bad threshold 'ttft.p99 < 800': ttft.p99 needs a time unit" in run.output
    assert "threshold grammar:" in run.output
    assert not (run.run_dir / "summary.json").exists()


def test_compare_transports_in_interleaved_rounds_shows_a_known_delay(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """REST, gRPC (and AMQP) against one reference server with fixed timing (TTFT 10 ms), and an arm "slow": gRPC
    against a second server whose TTFT is 60 ms; two interleaved rounds. slow's TTFT p50 is shown about 50 ms above
    grpc's (a busy machine adds its own delays to either side: the bound below is loose); each arm's CPU per turn
    and timing floor are measured beside its runs."""
    arms = [*_transports(), "slow"]
    slow = start_embedded_server("grpc", LOCAL_AMQP_URL, ["--fixed", "--fixed-ttft-ms", "60", "--fixed-itl-ms", "2"])
    cmd = [
        sys.executable, "-m", "loadgen", "compare-transports", "--transports", ",".join([*arms[:-1], "slow=grpc"]),
        "--target", f"slow={slow.urls['grpc']}", "--repeats", "2", "-u", "3", "-t", "5s", "--keep-lagging-rounds",
        "--embedded-server-args", "--fixed --fixed-ttft-ms 10 --fixed-itl-ms 2", "--id", "cmp",
        "--reports-dir", "reports", "-f", str(LOCUSTFILE),
        "--", *FAST, "--dialogues", DIALOGUES, "--stop-timeout", "5", "--threshold", "errors < 50%",
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120 + 60 * len(arms))
    finally:
        slow.stop()
    out_dir = tmp_path / "reports" / "cmp"
    logs = "\n".join(
        line
        for log in sorted(out_dir.glob("*.log"))
        for line in log.read_text().splitlines()
        if any(w in line for w in ("threshold", "FAIL", "WARNING", "Error", "error:", "Traceback"))
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + logs
    rounds = json.loads((out_dir / "rounds.json").read_text())
    assert rounds["order"] == [arms, [*arms[1:], arms[0]]]
    assert [(r["round"], r["arm"]) for r in rounds["runs"]] == [
        (k + 1, a) for k, o in enumerate(rounds["order"]) for a in o
    ]
    rows = {r["transport"]: r for r in csv.DictReader((out_dir / "comparison.csv").open())}
    assert list(rows) == arms
    for arm, row in rows.items():
        assert row["rounds_kept"] == "2" and int(row["turns"]) > 0 and row["error_rate"] == "0.0", row
        assert float(row["ttft_p50_ms_ci_low"]) <= float(row["ttft_p50_ms"]) <= float(row["ttft_p50_ms_ci_high"])
        assert float(row["client_cpu_ms_per_turn"]) > 0, row
        assert (row["server_cpu_ms_per_turn"] == "") == (arm == "slow"), row  # the other server is not ours
        if arm != "amqp":  # AMQP's floor goes through the broker: no lower bound to hold it to
            assert float(row["floor_ttft_p50_ms"]) >= (60.0 if arm == "slow" else 10.0), row
        assert float(row["ttft_p50_ms"]) >= (60.0 if arm == "slow" else 10.0), row
    (diff,) = [
        d for d in json.loads((out_dir / "comparison.json").read_text())["differences"]
        if (d["base"], d["other"], d["figure"]) == ("grpc", "slow", "ttft_p50_ms")
    ]  # fmt: skip
    assert diff["shown"] and diff["value"] > 25.0 and diff["ci_low"] > 0.0, diff
    assert diff["verdict"].startswith("slow TTFT p50 ") and " ms higher than grpc, 95% CI " in diff["verdict"]
    for r in rounds["runs"]:
        summary = _check_run_folder(tmp_path / "reports" / r["run_dir"])
        assert summary["transports"][r["transport"]]["count"] > 0
        assert summary["transports"][r["transport"]]["failures"] == 0
    _regenerate(tmp_path / "reports" / rounds["runs"][0]["run_dir"])
    if has_browser():
        driver = request.getfixturevalue("browser")
        page = out_dir / "comparison.html"
        expected = page.read_text().count('class="plotly-graph-div"')
        plots = drawn_plots(driver, page, expected)
        assert len(plots) == expected == 6 + len(arms)
        assert all(p["svgs"] and p["traces"] for p in plots), plots


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return int(resp.status), bytes(resp.read())


@pytest.mark.parametrize("processes", [0, 2], ids=["single-process", "distributed"])
def test_web_ui_tab_shows_the_live_per_turn_table(tmp_path: Path, processes: int) -> None:
    port = _free_port()
    cmd = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--autostart", "--autoquit", "2",
        "-u", "3", "-r", "3", "-t", "8s", "--web-host", "127.0.0.1", "--web-port", str(port),
        *FAST, "--dialogues", DIALOGUES, "--reports-dir", "reports", "--run-id", "web",
    ]  # fmt: skip
    if processes:
        cmd += ["--processes", str(processes)]
    log = (tmp_path / "locust.log").open("w")
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1")
    )
    base = f"http://127.0.0.1:{port}"
    try:
        rows: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, body = _get(base + "/loadgen/turns")
                rows = json.loads(body)["rows"] if status == 200 else []
            except OSError:
                rows = []
            if any(r["name"] != "(all)" and r["count"] and r["ttft_p99"] is not None for r in rows):
                break
            time.sleep(0.5)
        assert rows, (tmp_path / "locust.log").read_text()[-3000:]
        turn_row = next(r for r in rows if r["name"] != "(all)")
        assert turn_row["transport"] == "rest" and ":turn" in turn_row["name"]
        assert {"e2e_p50", "e2e_p99", "ttft_p50", "ttft_p99", "itl_p50", "retention"} <= set(turn_row)
        # the tab itself: Locust's /stats/requests carries the rows as extended_stats, the page declares the tab
        stats = json.loads(_get(base + "/stats/requests")[1])
        assert stats["extended_stats"][0]["key"] == "chat-loadgen" and stats["extended_stats"][0]["data"]
        index = _get(base + "/")[1].decode()
        assert '"extended_tabs": [{"key": "chat-loadgen", "title": "chat-loadgen"}]' in index
        assert _get(base + "/loadgen/turns.csv")[1].decode().startswith("Transport,Dialogue:turn,")
        proc.wait(timeout=60)
        assert (tmp_path / "reports" / "web" / "report.html").exists()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()
