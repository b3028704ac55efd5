"""The open model end to end: ``--arrival-rate`` in a real headless Locust run against the embedded reference server,
over REST, gRPC and AMQP (a real RabbitMQ broker), split over two processes, and driven from the web UI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness import LOCUSTFILE, REPO_ROOT, LocustRun, free_port, run_locust

from tests.conftest import require_broker
from tests.locust_plugin.test_web_ui import _get, _post, _stop_and_read, _until

pytestmark = pytest.mark.e2e


def _turn1_count(run: LocustRun) -> int:
    return sum(r["count"] for r in run.summary["turns"] if r["turn"] == 1)


def _check(run: LocustRun, rate: float) -> dict[str, object]:
    assert run.returncode == 0, run.output[-3000:]
    arrivals = run.summary["arrivals"]
    assert arrivals["mode"] == "constant" and arrivals["requested_per_s"] == pytest.approx(rate)
    assert arrivals["achieved_per_s"] == pytest.approx(rate, rel=0.25)  # the whole run's rate, not per process
    assert arrivals["dropped"] == 0 and arrivals["started"] == arrivals["offered"]
    assert 1 <= arrivals["live_max"] <= arrivals["max_in_flight"]
    assert arrivals["live_mean"] > 0
    # every started conversation ran its first turn (one may have been cut off at the end)
    cut = run.summary["run"]["cut_off_turns"]
    assert arrivals["started"] - cut <= _turn1_count(run) <= arrivals["started"]
    assert f"arrivals: requested {rate:.2f}/s, achieved " in run.output
    return dict(arrivals)


@pytest.mark.parametrize("transport", ["rest", "grpc", "amqp"])
def test_conversations_start_at_the_requested_rate(tmp_path: Path, transport: str) -> None:
    if transport == "amqp":
        require_broker()
    # 60 slots for ~12 live conversations: never full, even on a busy machine (no arrival dropped)
    run = run_locust(tmp_path, "--transport", transport, "--arrival-rate", "4", "--arrival", "constant",
                     users=60, spawn_rate=60, run_time="8s")  # fmt: skip
    arrivals = _check(run, 4.0)
    assert arrivals["max_in_flight"] == 60


def test_two_processes_share_the_rate(tmp_path: Path) -> None:
    # 30 slots per process: at ~9 live conversations each on an idle machine, a busy one (longer turns) never
    # fills them, so no arrival is dropped for want of a slot
    run = run_locust(tmp_path, "--arrival-rate", "6", "--arrival", "constant", "--processes", "2",
                     users=60, spawn_rate=60, run_time="8s", timeout=120)  # fmt: skip
    _check(run, 6.0)
    assert run.summary["run"]["processes"] == 2


def test_the_web_ui_runs_the_open_model_with_its_users_field_as_the_cap(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "locust.log"
    cmd = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--web-host", "127.0.0.1", "--web-port", str(port),
        "--dialogues", str(REPO_ROOT / "scenarios" / "dialogues"), "--think-min", "0.05", "--think-max", "0.2",
        "--reports-dir", "reports", "--run-id", "run", "--no-html", "--arrival-rate", "5", "--arrival", "constant",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _until(lambda: _get(base, "/") is not None, 90, "the web UI")
        for folder in ("run", "run-2"):  # a test started again from the UI dispatches afresh
            _post(base, "/swarm", {"user_count": 25, "spawn_rate": 25})
            time.sleep(5.0)
            arrivals = _stop_and_read(base, tmp_path / "reports" / folder)["arrivals"]
            assert arrivals["max_in_flight"] == 25 and arrivals["dropped"] == 0, arrivals
            assert arrivals["achieved_per_s"] == pytest.approx(5.0, rel=0.25), arrivals
            assert arrivals["started"] >= 15
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert "Traceback" not in log.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


#: A late worker's ``init`` held up for 3 s (a gevent sleep): the master hands it its users and its test start as
#: soon as it connects, before its plugin has built its runtime.
SLOW_INIT = """\
import time

from locust import events


@events.init.add_listener
def _slow(**_):
    time.sleep(3)
"""


def test_a_worker_joining_a_running_test_takes_its_share_of_the_rate(tmp_path: Path) -> None:
    """Master and workers started apart (as deploy/ does); the second worker joins a running test, and its start
    is slow. Its test start waits for its plugin; its slots wait for arrivals (no unpaced chats: every first turn
    is an arrival) until its first report brings it its share of the rate; it runs some of them, it is not lost,
    and the run's rate stays the requested one."""
    from tests.deploy.test_master_workers import _processes, _start, _wait, _wait_ready

    locust = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]
    common = ["--dialogues", str(REPO_ROOT / "scenarios" / "dialogues"), "--think-min", "0.05", "--think-max", "0.2"]
    port = str(free_port())
    master = [*locust, "--master", "--headless", "--expect-workers", "1", "--master-bind-host", "127.0.0.1",
              "--master-bind-port", port, "-u", "40", "-r", "40", "-t", "24s", "--arrival-rate", "6",
              "--arrival", "constant", *common, "--reports-dir", "reports", "--run-id", "run",
              "--only-summary"]  # fmt: skip
    worker = [*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", port, *common]
    logs = tmp_path / "logs"
    with _processes() as started:
        _start(started, tmp_path, "server", [sys.executable, "-m", "loadgen", "serve", "--rest-port", "0"])
        url = _wait_ready(started[0][1], tmp_path / "server.log")
        _start(started, tmp_path, "master", [*master, "--host", url])
        _start(started, tmp_path, "worker1", [*worker, "--turn-log", "logs/first.jsonl"])
        deadline = time.monotonic() + 60
        while not any(logs.glob("first*.jsonl")) or not next(logs.glob("first*.jsonl")).stat().st_size:
            assert time.monotonic() < deadline, (tmp_path / "master.log").read_text()[-3000:]
            time.sleep(0.1)  # polling for the first worker's first turn: the test is running
        slow_init = tmp_path / "slow_init.py"  # imported first, its init listener runs before the plugin's
        slow_init.write_text(SLOW_INIT)
        late = [*worker, "-f", f"{slow_init},{LOCUSTFILE}"]
        _start(started, tmp_path, "worker2", late)
        procs = dict(started)
        master_rc = _wait(procs["master"], 150)
    output = "\n".join((tmp_path / f"{n}.log").read_text(errors="replace")[-2000:] for n in ("master", "worker2"))
    assert master_rc == 0, output
    summary = json.loads((tmp_path / "reports" / "run" / "summary.json").read_text())
    arrivals = summary["arrivals"]
    assert arrivals["achieved_per_s"] == pytest.approx(6.0, rel=0.25), (arrivals, output)
    first_turns = sum(r["count"] for r in summary["turns"] if r["turn"] == 1)
    assert first_turns <= arrivals["started"], (first_turns, arrivals)  # no chat outside the arrivals
    # the newcomer ran arrivals: the run's first turns less the first worker's (the newcomer's own options, its
    # --turn-log among them, were replaced by the master's before its init read them)
    first = [json.loads(line) for p in logs.glob("first*.jsonl") for line in p.read_text().splitlines()]
    assert first_turns - sum(1 for line in first if line["turn"] == 1) >= 3, (first_turns, output)


SHAPE = """\
from locust import LoadTestShape


class TwoRates(LoadTestShape):
    arrival_rate = None

    def tick(self):
        run_time = self.get_run_time()
        if run_time > 14.0:
            return None
        self.arrival_rate = 2.0 if run_time < 7.0 else 8.0
        return 40, 40
"""


def test_a_shape_steps_the_rate_of_two_processes(tmp_path: Path) -> None:
    """A LoadTestShape's ``arrival_rate`` read by the master and handed to both workers: the run's arrivals per
    interval follow the step from 2/s to 8/s, and the requested rate is the steps' mean."""
    shape = tmp_path / "two_rates.py"
    shape.write_text(SHAPE)
    run = run_locust(tmp_path, "-f", f"{LOCUSTFILE},{shape}", "--arrival-rate", "1", "--arrival", "constant",
                     "--processes", "2", "--turn-log", str(tmp_path / "turns.jsonl"), run_time="20s",
                     timeout=150)  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    assert run.summary["run"]["processes"] == 2
    arrivals = run.summary["arrivals"]
    assert arrivals["requested_per_s"] == pytest.approx(5.0, abs=0.6), arrivals
    intervals = [json.loads(line) for line in (run.run_dir / "intervals.jsonl").read_text().splitlines()]
    began = intervals[0]["start"]  # the master's test start, when the shape's clock starts too
    logs = list(tmp_path.glob("turns*.jsonl"))
    assert len(logs) == 2, logs  # one per worker
    # when each conversation started: its first turn's end less its e2e (both workers' together)
    starts = [r["ts"] - r["e2e_ms"] / 1000.0 - began for p in logs for r in map(json.loads, p.read_text().splitlines())
              if r["turn"] == 1 and r["e2e_ms"] is not None]  # fmt: skip

    def rate(first_s: float, last_s: float) -> float:
        return sum(1 for t in starts if first_s <= t < last_s) / (last_s - first_s)

    assert rate(1.5, 6.5) == pytest.approx(2.0, rel=0.35), sorted(starts)
    assert rate(8.5, 13.5) == pytest.approx(8.0, rel=0.25), sorted(starts)
