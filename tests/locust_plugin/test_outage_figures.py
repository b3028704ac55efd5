"""Outages in summary.json from a real run: a target killed mid-run and started again on the same port, loaded by
two worker processes whose outage events the master merges. (That merged events give exactly one process's
outages is unit-tested in tests/metrics/test_recovery.py.)"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.harness import free_port, start_locust

pytestmark = pytest.mark.e2e
READY = "loadgen-ready "


def _serve(port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "loadgen", "serve", "--bind", "127.0.0.1", "--rest-port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if READY in log.read_text(errors="replace"):
            return proc
        assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
        time.sleep(0.05)
    raise AssertionError("the reference server did not start")


def test_a_target_down_for_seconds_is_one_outage_with_its_failed_turns(tmp_path: Path) -> None:
    port = free_port()
    server = _serve(port, tmp_path / "server.log")
    running = start_locust(tmp_path, "--host", f"http://127.0.0.1:{port}", "--processes", "2", "--turn-timeout", "5",
                           "--checkpoint-interval", "1", run_time="24s")  # fmt: skip
    try:
        running.wait_for(lambda s: s.get("transports", {}).get("rest", {}).get("count", 0) >= 20, 90, "turns")
        down_at = time.time()
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        time.sleep(4.0)
        server = _serve(port, tmp_path / "server-again.log")
        up_at = time.time()
        run = running.finish(timeout=150)
    finally:
        running.stop()
        server.kill()
        server.wait(10)
    assert run.returncode in (0, 1), run.output[-3000:]  # 1: Locust's own "there were failures"
    summary = run.summary
    started = summary["run"]["started_at"]
    rest = summary["transports"]["rest"]
    assert rest["failures_by_kind"]["transport"] > 0
    (outage,) = summary["outages"]
    assert outage["transport"] == "rest"
    assert down_at - started - 0.5 <= outage["start_s"] <= up_at - started
    assert up_at - started - 0.5 <= outage["end_s"] <= up_at - started + 10
    assert outage["duration_s"] == pytest.approx(outage["end_s"] - outage["start_s"], abs=0.002)
    assert outage["failed_turns"] == rest["failures_by_kind"]["transport"]  # every failed turn was in it
    assert 2 <= outage["users"] <= 8
    assert outage["recovery_s"] is not None and outage["recovery_s"] >= 0
    assert summary["recovery"] == {
        "rest": {"outages": 1, "max_s": outage["recovery_s"], "p50_s": pytest.approx(outage["recovery_s"], abs=0.01)}
    }
    assert summary["faults"] == []  # no embedded server: no fault log
    assert json.loads(json.dumps(summary)) == summary
