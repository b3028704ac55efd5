"""``loadgen sweep`` end to end: real Locust steps over REST and gRPC against one embedded reference server whose
capacity is known, and the knee found below the highest step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadgen.load import sweep_cli
from loadgen.load.sweep_cli import plugin_flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))

from report_helpers import run_command

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = REPO_ROOT / "scenarios" / "multiturn.py"
DIALOGUES = str(REPO_ROOT / "scenarios" / "dialogues")

pytestmark = pytest.mark.e2e


def test_the_knee_is_the_highest_step_the_server_can_take(tmp_path: Path) -> None:
    """The sim engine decodes at most 2 sequences at once and queues none (--max-batch 2 --queue-limit 0): a
    third request in flight gets HTTP 429 / RESOURCE_EXHAUSTED at once. 1 and 2 users never have more than 2
    turns in flight: no error, they hold; 8 users do, and most of their turns fail: the knee is 2 users. The
    generator lag limit is raised to 100 ms: the machine running the tests is shared (the figures are what is
    tested here, not the generator's timing)."""
    cmd = [
        sys.executable, "-m", "loadgen", "sweep", "--transport", "rest,grpc", "--users", "1,2,8",
        "--step", "4s", "--warmup", "2s", "--slo", "e2e.p99 < 10s", "--lag-limit-ms", "100",
        "--embedded-server-args", "--max-batch 2 --queue-limit 0", "--run-id", "sw", "--reports-dir", "reports",
        "-f", str(LOCUSTFILE), "--", "--think-min", "0.05", "--think-max", "0.2", "--dialogues", DIALOGUES,
        "--stop-timeout", "3",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out_dir = tmp_path / "reports" / "sw"
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((out_dir / "sweep.json").read_text())
    assert (data["mode"], data["loads"], data["slo"]) == ("users", [1, 2, 8], ["e2e.p99 < 10s"])
    for transport in ("rest", "grpc"):
        block = data["transports"][transport]
        steps = {s["load"]: s for s in block["steps"]}
        assert list(steps) == [1, 2, 8]
        for load in (1, 2):
            assert steps[load]["error_rate"] == 0 and steps[load]["slo_held"] and steps[load]["holds"], steps[load]
        assert steps[8]["error_rate"] > 0.1 and not steps[8]["holds"], steps[8]
        assert block["knee_load"] == 2 and block["max_sustainable_turns_per_s"] == steps[2]["turns_per_s"] > 0
        assert block["ceiling_turns_per_s"] >= block["max_sustainable_turns_per_s"]
        for step in steps.values():
            run = out_dir / step["run_dir"]
            summary = json.loads((run / "summary.json").read_text())
            assert list(summary["transports"]) == [transport] and (run / "intervals.jsonl").exists()
            assert 3.0 <= step["window_s"] <= 6.0, step  # the 2 s warm-up is left out of the 6 s run
    markdown = (out_dir / "sweep.md").read_text()
    assert "| rest |" in markdown and "| grpc |" in markdown and " | 2 users | " in markdown
    assert (out_dir / "sweep.html").read_text().count('class="plotly-graph-div"') == 2


def test_the_sweep_asks_locust_which_options_its_plug_in_takes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locustfile = tmp_path / "with_slo.py"
    locustfile.write_text(
        "from locust import User, events, task\n\n\n"
        "@events.init_command_line_parser.add_listener\n"
        "def _options(parser):\n"
        "    parser.add_argument('--slo', action='append')\n\n\n"
        "class Idle(User):\n"
        "    @task\n"
        "    def idle(self):\n"
        "        pass\n"
    )
    assert plugin_flags(str(locustfile)) == frozenset({"--slo"})
    assert plugin_flags(str(tmp_path / "missing.py")) == frozenset()
    # the open model needs a plug-in that takes --arrival-rate: one line, before any load
    reports = tmp_path / "reports"
    argv = ["--transport", "rest", "--rates", "1,2", "-f", str(locustfile), "--reports-dir", str(reports)]
    assert run_command(sweep_cli, argv) == 2
    assert capsys.readouterr().err == (
        "loadgen sweep: --rates: this Locust plug-in has no --arrival-rate (open model); sweep --users instead\n"
    )
    assert not reports.exists()


def test_ctrl_c_stops_the_sweep_and_writes_what_ran(tmp_path: Path) -> None:
    """Ctrl-C at a terminal reaches the whole process group: the step under way (Locust) stops and writes its
    folder, the sweep writes its files with the steps that ran and exits 130; no later step starts."""
    cmd = [
        sys.executable, "-m", "loadgen", "sweep", "--transport", "rest", "--users", "1,2,4", "--step", "12s",
        "--warmup", "1s", "--run-id", "sw", "--reports-dir", "reports", "-f", str(LOCUSTFILE),
        "--", "--think-min", "0.05", "--think-max", "0.2", "--dialogues", DIALOGUES, "--stop-timeout", "2",
    ]  # fmt: skip
    out_dir = tmp_path / "reports" / "sw"
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        # Ctrl-C as at a terminal: a SIGINT left ignored in this process (inherited, as by a background job) would
        # be ignored by the sweep too
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while not (out_dir / "sweep.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)  # the first step is over
        while not (out_dir / "sw-rest-u2.log").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(4.0)  # the second step is under way
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, output[-3000:]
    data = json.loads((out_dir / "sweep.json").read_text())
    assert data["interrupted"] is True
    steps = data["transports"]["rest"]["steps"]
    assert [s["load"] for s in steps] == [1, 2]  # 4 users never started
    assert steps[0]["turns"] > 0 and steps[0]["run_dir"] == "sw-rest-u1"
    assert not (out_dir / "sw-rest-u4.log").exists()
    assert "INTERRUPTED" in (out_dir / "sweep.md").read_text()
    assert "INTERRUPTED" in (out_dir / "sweep.html").read_text()
