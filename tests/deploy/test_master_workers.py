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
from collections.abc import Callable, Iterator
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


def run_master_and_two_workers(
    folder: Path,
    master_files: tuple[Path, ...] = (),
    *,
    worker_files: tuple[Path, ...] = (),
    master_args: tuple[str, ...] = (),
    during: Callable[[dict[str, subprocess.Popen[bytes]]], None] | None = None,
) -> DistributedRun:
    """``master_files``, ``worker_files``: more locustfiles for the master or the workers only (a test can add a
    listener that breaks one); ``during(processes)`` runs once all are started (a test can kill one)."""
    locust = [sys.executable, "-m", "locust"]
    common = ["--dialogues", str(DIALOGUES), *THINK]
    port = str(_free_port())
    master_f = ",".join(str(p) for p in (LOCUSTFILE, *master_files))
    worker_f = ",".join(str(p) for p in (LOCUSTFILE, *worker_files))
    master = [
        *locust, "-f", master_f, "--master", "--headless", "--expect-workers", "2",
        "--expect-workers-max-wait", str(int(START_TIMEOUT_S)), "--master-bind-host", "127.0.0.1",
        "--master-bind-port", port, "-u", str(USERS), "-r", str(USERS), "-t", f"{RUN_S}s",
        *common, "--reports-dir", "reports", "--run-id", "run", "--json-file", "locust-stats", "--only-summary",
        *master_args,
    ]  # fmt: skip
    worker = [*locust, "-f", worker_f, "--worker", "--master-host", "127.0.0.1", "--master-port", port, *common,
              "--turn-log", "logs/turns.jsonl"]  # fmt: skip
    with _processes() as started:
        _start(started, folder, "server", [sys.executable, "-m", "loadgen", "serve", "--rest-port", "0"])
        url = _wait_ready(started[0][1], folder / "server.log")
        _start(started, folder, "master", [*master, "--host", url])
        pids = [_start(started, folder, f"worker{i}", worker) for i in (1, 2)]
        procs = dict(started)
        if during is not None:
            during(procs)
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
    assert run.summary["workers"] == {"expected": 2, "reported": 2, "lost": []}
    _assert_merged_equals_logged(run)


def _assert_merged_equals_logged(run: DistributedRun) -> None:
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


SLOW_FINAL_REPORT = """
import gevent
from locust import events


@events.test_stopping.add_listener
def _slow(**_):
    gevent.sleep(2.5)  # a busy worker: its users run on, its final report comes seconds after the master said quit
"""


def test_a_late_final_report_is_waited_for(tmp_path: Path) -> None:
    """Locust's own master waits 0.5 s for the workers' last reports; ours waits until each has come."""
    slow = tmp_path / "slow_final_report.py"
    slow.write_text(SLOW_FINAL_REPORT, encoding="utf-8")
    run = run_master_and_two_workers(tmp_path, worker_files=(slow,))
    assert run.master_rc == 0, run.logs
    assert run.summary["workers"] == {"expected": 2, "reported": 2, "lost": []}
    _assert_merged_equals_logged(run)


def _checkpoints_grow_then_ctrl_c(folder: Path, seen: list[dict[str, Any]]) -> Callable[..., None]:
    """Read summary.json as the master checkpoints it: incomplete, and growing; then Ctrl-C the master mid-run."""

    def count(summary: dict[str, Any]) -> int:
        return int(summary.get("transports", {}).get("rest", {}).get("count", 0))

    def read() -> dict[str, Any] | None:
        try:
            summary: dict[str, Any] = json.loads((folder / "reports" / "run" / "summary.json").read_text())
        except (OSError, ValueError):  # not written yet (each write replaces the file whole)
            return None
        return summary

    def interrupt(procs: dict[str, subprocess.Popen[bytes]]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and len(seen) < 2:
            summary = read()
            if summary is not None and count(summary) > (count(seen[-1]) if seen else 0):
                seen.append(summary)
            time.sleep(0.1)
        procs["master"].send_signal(signal.SIGINT)

    return interrupt


def test_checkpoints_grow_and_ctrl_c_completes_the_summary_after_a_late_worker_report(tmp_path: Path) -> None:
    """Checkpoints every second while the run goes, each incomplete and larger than the last; Ctrl-C on the
    master before ``-t`` is up; the workers' final reports come seconds late. The final summary is complete
    and equals both the workers' turn logs and Locust's own merged counts."""
    slow = tmp_path / "slow_final_report.py"
    slow.write_text(SLOW_FINAL_REPORT, encoding="utf-8")
    seen: list[dict[str, Any]] = []
    run = run_master_and_two_workers(
        tmp_path,
        worker_files=(slow,),
        master_args=("--checkpoint-interval", "1"),
        during=_checkpoints_grow_then_ctrl_c(tmp_path, seen),
    )
    assert len(seen) == 2, f"no two growing checkpoints before Ctrl-C\n{run.logs}"
    first, second = seen
    assert first["run"]["complete"] is False and second["run"]["complete"] is False
    assert second["run"]["checkpoints"]["count"] > first["run"]["checkpoints"]["count"]
    assert run.master_rc == 0, run.logs
    assert run.summary["run"]["complete"] is True
    assert run.summary["run"]["duration_s"] < RUN_S, "Ctrl-C came before -t was up"
    assert run.summary["workers"] == {"expected": 2, "reported": 2, "lost": []}
    assert run.summary["transports"]["rest"]["count"] > second["transports"]["rest"]["count"]
    _assert_merged_equals_logged(run)


def _kill_worker_1_once_both_reported(folder: Path) -> Callable[[dict[str, subprocess.Popen[bytes]]], None]:
    def kill(procs: dict[str, subprocess.Popen[bytes]]) -> None:
        summary = folder / "reports" / "run" / "summary.json"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if json.loads(summary.read_text()).get("workers", {}).get("reported") == 2:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        os.killpg(procs["worker1"].pid, signal.SIGKILL)

    return kill


@pytest.mark.parametrize(("allow", "exit_code"), [(False, 4), (True, 0)])
def test_a_lost_worker_is_a_warning_and_a_non_zero_exit_unless_allowed(
    tmp_path: Path, allow: bool, exit_code: int
) -> None:
    args = ("--checkpoint-interval", "0.5", *(("--allow-worker-loss",) if allow else ()))
    run = run_master_and_two_workers(tmp_path, master_args=args, during=_kill_worker_1_once_both_reported(tmp_path))
    assert run.master_rc == exit_code, run.logs
    workers = run.summary["workers"]
    assert (workers["expected"], workers["reported"], len(workers["lost"])) == (2, 2, 1), workers
    (lost,) = workers["lost"]
    assert any(w.startswith(f"worker {lost} was lost") for w in run.summary["warnings"])
    master_log = (tmp_path / "master.log").read_text()
    assert f"WARNING: worker {lost} was lost" in master_log  # on the console, under the table
    assert ("worker(s) lost: exit code 4" in master_log) is not allow
    assert "Traceback" not in master_log


def test_a_lost_workers_share_of_the_arrival_rate_goes_to_the_worker_left(tmp_path: Path) -> None:
    """An open-model run at 6 constant arrivals/s over two workers (3/s each); one is killed once both have
    reported. Once the master has marked it missing, the worker left is sent the whole rate: conversations then
    start on it at ~6/s, not at the 3/s of its old share (read from its own turn log: each conversation's first
    turn, over 8 s from a second after the master's log says it split the rate again). Enough slots that none
    is dropped on a busy machine, where conversations last longer."""
    rate, window_s = 6.0, 8.0
    args = ("--arrival-rate", f"{rate:g}", "--arrival", "constant", "-u", "240", "-r", "240", "-t", "22s",
            "--allow-worker-loss", "--checkpoint-interval", "0.5")  # fmt: skip
    run = run_master_and_two_workers(tmp_path, master_args=args, during=_kill_worker_1_once_both_reported(tmp_path))
    assert run.master_rc == 0, run.logs
    assert len(run.summary["workers"]["lost"]) == 1, run.summary["workers"]
    assert run.summary["arrivals"]["dropped"] == 0, run.summary["arrivals"]
    assert run.summary["arrivals"]["achieved_per_s"] == pytest.approx(rate, rel=0.15), run.summary["arrivals"]
    master_log = (tmp_path / "master.log").read_text()
    assert "Traceback" not in master_log
    split = [line for line in master_log.splitlines() if "lost; 6 conversations/s split over the 1 left" in line]
    assert len(split) == 1, run.logs
    # Locust's log lines begin "[YYYY-mm-dd HH:MM:SS,mmm]" in local time, on this machine's clock
    stamp = split[0][1 : split[0].index("]")]
    split_at = time.mktime(time.strptime(stamp[:19], "%Y-%m-%d %H:%M:%S")) + int(stamp[20:23]) / 1000.0
    left = next(name for name, lines in run.turn_logs.items() if str(run.worker_pids[1]) in name)
    first_turn: dict[str, float] = {}
    for line in run.turn_logs[left]:
        first_turn[line["conversation_id"]] = min(line["ts"], first_turn.get(line["conversation_id"], line["ts"]))
    start, end = split_at + 1.0, split_at + 1.0 + window_s
    assert max(first_turn.values()) > end, f"the run ended before the window did\n{run.logs}"
    per_s = sum(start <= ts < end for ts in first_turn.values()) / window_s
    assert 0.8 * rate <= per_s <= 1.2 * rate, f"{per_s:.2f} conversations/s on the worker left\n{run.logs}"
