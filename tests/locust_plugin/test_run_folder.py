"""The run folder of real headless Locust runs (embedded server, REST): written as the run goes, complete at the
end of a run stopped any way, at most seconds short after ``kill -9``, at a cost that does not grow with the
number of intervals."""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import LocustRun, RunningLocust, alive, start_locust

pytestmark = pytest.mark.e2e


def _count(summary: dict[str, Any]) -> int:
    return int(summary["transports"].get("rest", {}).get("count", 0)) if summary.get("transports") else 0


def _locust_totals(run: LocustRun) -> tuple[int, int]:
    rows = run.locust_requests().values()
    return sum(r[0] for r in rows), sum(r[1] for r in rows)


def test_the_summary_grows_while_the_run_goes_and_ctrl_c_completes_it(tmp_path: Path) -> None:
    running = start_locust(tmp_path, "--checkpoint-interval", "0.5", "--interval", "0.5")
    try:
        first = running.wait_for(lambda s: _count(s) > 0, 60, "a checkpoint with turns")
        assert first["run"]["complete"] is False
        later = running.wait_for(lambda s: _count(s) > _count(first) + 10, 60, "a later, larger checkpoint")
        assert later["run"]["checkpoints"]["count"] > first["run"]["checkpoints"]["count"]
        assert later["run"]["intervals"] >= 2 and later["windows"]["rows"]
        running.signal(signal.SIGINT)  # Ctrl-C
        run = running.finish()
    finally:
        running.stop()
    assert run.returncode == 0, run.output[-3000:]
    summary = run.summary
    assert summary["run"]["complete"] is True
    assert (_count(summary), summary["transports"]["rest"]["failures"]) == _locust_totals(run)
    assert _count(summary) >= _count(later)
    assert isinstance(summary["run"]["cut_off_turns"], int)
    lines = (run.run_dir / "intervals.jsonl").read_text().splitlines()
    assert len(lines) >= summary["run"]["intervals"] - 1 and all(json.loads(line)["v"] == 1 for line in lines)
    # what stays on screen: our table after Locust's last words (its statistics go to --json-file here)
    assert run.output.rindex("Per-turn latency (ms)") > run.output.rindex("Shutting down (exit code 0)")
    assert "Traceback" not in run.output


@pytest.fixture
def server() -> Iterator[str]:
    """A reference server of the test's own (it outlives the Locust the test kills, and counts what it served)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "serve", "--bind", "127.0.0.1", "--rest-port", "0"],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("loadgen-ready "):
                yield json.loads(line[len("loadgen-ready ") :])["rest"]
                break
    finally:
        proc.terminate()
        proc.wait(30)


def test_kill_9_loses_only_the_seconds_since_the_last_checkpoint(tmp_path: Path, server: str) -> None:
    checkpoint_s = 1.0
    running = start_locust(tmp_path, "--host", server, "--checkpoint-interval", str(checkpoint_s))
    try:
        running.wait_for(lambda s: _count(s) >= 40 and s["run"]["duration_s"] >= 6, 90, "six seconds checkpointed")
        killed_at = time.time()
        running.signal(signal.SIGKILL)
        running.proc.wait(30)
    finally:
        running.stop()
    served = httpx.get(f"{server}/stats", timeout=10).json()["service"]
    summary = running.summary_now()
    assert summary is not None and summary["run"]["complete"] is False
    since_checkpoint = killed_at - summary["run"]["ended_at"]
    assert since_checkpoint <= checkpoint_s + 3.0  # the last one is about a checkpoint interval old at most
    # what the server completed and the folder does not hold: the turns of those last seconds (and a merge period)
    per_s = _count(summary) / summary["run"]["duration_s"]
    lost = served["completed"] + served.get("cancelled", 0) - _count(summary)
    assert 0 <= lost <= per_s * (since_checkpoint + 1.5) + 8, (lost, per_s, since_checkpoint, served)
    # and the folder is a report: `loadgen report` reads it as it is
    done = subprocess.run(
        [sys.executable, "-m", "loadgen", "report", str(running.run_dir), "--no-html"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (running.run_dir / "rest.e2e.hlog").exists() and (running.run_dir / "turns.csv").exists()


def test_kill_9_leaves_no_embedded_server_behind(tmp_path: Path) -> None:
    running = start_locust(tmp_path, "--checkpoint-interval", "1")
    try:
        running.wait_for(lambda s: _count(s) > 0, 90, "a first checkpoint")
        (embedded,) = running.children()
        running.signal(signal.SIGKILL)
        running.proc.wait(30)
        deadline = time.monotonic() + 15
        while alive(embedded) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(embedded), "the embedded server outlived a kill -9 of its Locust"
    finally:
        running.stop()


def _soak_samples(running: RunningLocust, seconds: float) -> list[dict[str, Any]]:
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and running.proc.poll() is None:
        time.sleep(0.5)
        summary = running.summary_now()
        rss = _rss_kb(running.proc.pid)
        if summary is None or rss is None or not summary["run"]["checkpoints"]["count"]:
            continue
        checkpoints = summary["run"]["checkpoints"]
        samples.append({"intervals": summary["run"]["intervals"], "cpu_ms": checkpoints["cpu_last_ms"], "rss_kb": rss,
                        "summary_bytes": len(json.dumps(summary))})  # fmt: skip
    return samples


def _rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def test_a_time_compressed_soak_costs_the_same_at_its_end_as_at_its_start(tmp_path: Path) -> None:
    """Thousands of intervals in a minute: the checkpoint's own time, the generator's memory and the summary's
    size in the last quarter of the run are those of its first quarter (an interval file rewritten whole, or
    intervals kept in memory, would grow them with every interval)."""
    running = start_locust(tmp_path, "--interval", "0.02", "--checkpoint-interval", "0.25", users=6, run_time="70s",
                           think=(0.0, 0.05))  # fmt: skip
    try:
        running.wait_for(lambda s: s["run"]["checkpoints"]["count"] >= 4, 60, "the first checkpoints")
        samples = _soak_samples(running, 60.0)
        running.signal(signal.SIGINT)
        run = running.finish()
    finally:
        running.stop()
    assert run.returncode == 0, run.output[-3000:]
    assert samples[-1]["intervals"] >= 1000, samples[-1]
    quarter = len(samples) // 4
    first, last = samples[:quarter], samples[-quarter:]
    assert quarter >= 15, len(samples)

    def median(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    assert median(last, "cpu_ms") <= 1.5 * median(first, "cpu_ms") + 5.0, (first, last)
    assert max(r["rss_kb"] for r in last) <= max(r["rss_kb"] for r in first) + 12_000, (first, last)
    assert max(r["summary_bytes"] for r in last) <= 1.2 * max(r["summary_bytes"] for r in first)
    assert len((run.run_dir / "intervals.jsonl").read_text().splitlines()) == run.summary["run"]["intervals"]
