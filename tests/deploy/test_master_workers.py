"""A distributed run from separate processes on loopback, started the way deploy/ starts them: the reference
server (``loadgen serve``), a headless master that waits for two workers, and two workers (``--worker
--master-host``) that take the target from the master. Each worker logs its turns (``--turn-log``: one file
per worker, its pid in the name); the master's merged histograms (summary.json) and Locust's own merged
statistics (``--json-file``) must equal the sum of the two logs, turn by turn: counts, failures, retention
checks, tokens, the exact sums of the latencies and their maxima (to the histograms' precision). The users run
until the end of ``-t``: the master waits for each worker's final report before it quits, so the turns of a
worker's last seconds are in (turns in flight when the users were stopped are counted as cut off, in no log).
Only the workers are given ``--turn-log``: a worker's own options are read before the master's replace them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.e2e

LOCUSTFILE = REPO_ROOT / "scenarios" / "multiturn.py"
DIALOGUES = REPO_ROOT / "deploy" / "k8s" / "base" / "dialogues"  # what the deployments mount
READY_PREFIX = "loadgen-ready "
USERS = 6
RUN_S = 10
THINK = ("--think-min", "0.05", "--think-max", "0.2")
START_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 150.0
STOP_TIMEOUT_S = 30.0


@dataclass
class DistributedRun:
    master_rc: int | None
    worker_rcs: list[int | None]
    worker_pids: list[int]
    logs: str
    summary: dict[str, Any]
    locust_stats: list[dict[str, Any]]
    turn_logs: dict[str, list[dict[str, Any]]]  # file name -> its lines


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "LOADGEN_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextmanager
def _processes() -> Iterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    """Processes started into the yielded list, each in a session of its own with its output in a file;
    whatever still runs at the end is killed with its children."""
    started: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        yield started
    finally:
        for _, proc in started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in started:
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(STOP_TIMEOUT_S)


def _start(started: list[tuple[str, subprocess.Popen[bytes]]], folder: Path, name: str, argv: list[str]) -> int:
    with (folder / f"{name}.log").open("wb") as out:
        proc = subprocess.Popen(
            argv, cwd=folder, stdout=out, stderr=subprocess.STDOUT, env=_env(), start_new_session=True
        )
    started.append((name, proc))
    return proc.pid


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """The exit code, or None when the process ran past ``timeout`` (it is killed on the way out)."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def _wait_ready(proc: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(READY_PREFIX):
                url: str = json.loads(line[len(READY_PREFIX) :])["rest"]
                return url
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    pytest.fail(f"the reference server did not start:\n{log.read_text(errors='replace')[-3000:]}")


def run_master_and_two_workers(folder: Path, master_files: tuple[Path, ...] = ()) -> DistributedRun:
    """``master_files``: more locustfiles for the master only (a test can add a listener that breaks it)."""
    locust = [sys.executable, "-m", "locust"]
    common = ["--dialogues", str(DIALOGUES), *THINK]
    port = str(_free_port())
    master_f = ",".join(str(p) for p in (LOCUSTFILE, *master_files))
    master = [
        *locust, "-f", master_f, "--master", "--headless", "--expect-workers", "2",
        "--expect-workers-max-wait", str(int(START_TIMEOUT_S)), "--master-bind-host", "127.0.0.1",
        "--master-bind-port", port, "-u", str(USERS), "-r", str(USERS), "-t", f"{RUN_S}s",
        *common, "--reports-dir", "reports", "--run-id", "run", "--json-file", "locust-stats", "--only-summary",
    ]  # fmt: skip
    worker = [*locust, "-f", str(LOCUSTFILE), "--worker", "--master-host", "127.0.0.1", "--master-port", port, *common,
              "--turn-log", "logs/turns.jsonl"]  # fmt: skip
    with _processes() as started:
        _start(started, folder, "server", [sys.executable, "-m", "loadgen", "serve", "--rest-port", "0"])
        url = _wait_ready(started[0][1], folder / "server.log")
        _start(started, folder, "master", [*master, "--host", url])
        pids = [_start(started, folder, f"worker{i}", worker) for i in (1, 2)]
        procs = dict(started)
        master_rc = _wait(procs["master"], RUN_TIMEOUT_S)
        worker_rcs = [_wait(procs[f"worker{i}"], STOP_TIMEOUT_S) for i in (1, 2)]
    logs = "\n".join(f"--- {name}\n{(folder / f'{name}.log').read_text(errors='replace')[-3000:]}" for name in procs)
    summary_file, stats_file = folder / "reports" / "run" / "summary.json", folder / "locust-stats.json"
    assert summary_file.exists() and stats_file.exists(), logs
    turn_logs = {
        p.name: [json.loads(line) for line in p.read_text().splitlines()] for p in (folder / "logs").glob("*.jsonl")
    }
    return DistributedRun(
        master_rc,
        worker_rcs,
        pids,
        logs,
        json.loads(summary_file.read_text()),
        json.loads(stats_file.read_text()),
        turn_logs,
    )


def per_turn_from_logs(lines: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    out: dict[tuple[str, int], dict[str, Any]] = defaultdict(
        lambda: {"count": 0, "failures": 0, "checked": 0, "passed": 0, "output_tokens": 0, "e2e": [], "ttft": []}
    )
    for line in lines:
        turn = out[(line["dialogue"], line["turn"])]
        turn["count"] += 1
        turn["failures"] += line["verdict"] != "ok"
        turn["checked"] += bool(line["retention"]["checked"])
        turn["passed"] += line["retention"]["passed"] is True
        turn["output_tokens"] += line["output_tokens"] or 0
        for metric in ("e2e", "ttft"):  # None without a reply (or without a content chunk)
            if line[f"{metric}_ms"] is not None:
                turn[metric].append(line[f"{metric}_ms"])
    return dict(out)


def _assert_latency_equals(block: dict[str, Any], logged: list[float], what: str) -> None:
    # the histogram keeps the exact sum of its integer microseconds (the log rounds each to the same
    # microsecond), and reports the highest value of the max's bucket (3 significant digits: <= 0.1% above)
    assert block["count"] == len(logged), what
    assert block["mean"] == pytest.approx(sum(logged) / len(logged), abs=0.002), what
    assert max(logged) - 0.002 <= block["max"] <= max(logged) * 1.001 + 0.002, what


def test_master_merges_exactly_what_two_worker_processes_ran(tmp_path: Path) -> None:
    run = run_master_and_two_workers(tmp_path)
    assert run.master_rc == 0, run.logs
    assert run.worker_rcs == [0, 0], run.logs
    # one turn log per worker process, named by its pid; both ran conversations
    assert set(run.turn_logs) == {f"turns.{pid}.jsonl" for pid in run.worker_pids}, run.logs
    assert all(len(lines) >= 5 for lines in run.turn_logs.values()), {k: len(v) for k, v in run.turn_logs.items()}
    assert run.summary["run"]["processes"] == 2

    logged = per_turn_from_logs([line for lines in run.turn_logs.values() for line in lines])
    # the reference server on loopback fails no turn, so Locust's response times are the e2e latencies too
    assert run.summary["transports"]["rest"]["failures_by_kind"]["transport"] == 0, run.logs
    merged = {(t["dialogue"], t["turn"]): t for t in run.summary["turns"] if t["transport"] == "rest"}
    assert set(merged) == set(logged), "turns the master has that no worker logged, or the reverse"
    for key, ours in merged.items():
        want = logged[key]
        got = (ours["count"], ours["failures"], ours["retention"]["checked"], ours["retention"]["passed"])
        assert got == (want["count"], want["failures"], want["checked"], want["passed"]), key
        assert ours["output_tokens"] == want["output_tokens"], key
        _assert_latency_equals(ours["e2e_ms"], want["e2e"], f"{key} e2e")
        _assert_latency_equals(ours["ttft_ms"], want["ttft"], f"{key} ttft")
    total = sum(t["count"] for t in logged.values())
    assert run.summary["transports"]["rest"]["count"] == total >= 30

    # Locust merged the same worker reports on its own way: its per-name figures agree too
    stats = {s["name"]: s for s in run.locust_stats if s["name"] != "Aggregated"}
    assert set(stats) == {f"{dialogue}:turn{turn}" for dialogue, turn in logged}
    for (dialogue, turn), want in logged.items():
        entry = stats[f"{dialogue}:turn{turn}"]
        assert (entry["num_requests"], entry["num_failures"]) == (want["count"], want["failures"])
        assert entry["total_response_time"] / entry["num_requests"] == pytest.approx(
            sum(want["e2e"]) / want["count"], abs=0.002
        )
        assert entry["max_response_time"] == pytest.approx(max(want["e2e"]), abs=0.002)
