"""Running a transport comparison: arms, the interleaved order of the runs, one server for all of them, the
commands, bad input (one line, before any load), and the CPU and floor probes beside each run."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from report_helpers import run_command

from loadgen.errors import ConfigError
from loadgen.report import transports_cli, transports_runner
from loadgen.report.transports_probe import (
    CpuSampler,
    descendants,
    finish_floor,
    process_cpu_s,
    server_requests,
    start_floor,
)
from loadgen.report.transports_rounds import Beside, Sample
from loadgen.report.transports_runner import Arm, Plan, parse_arms
from loadgen.server import launcher

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = str(REPO_ROOT / "scenarios" / "multiturn.py")


def _plan(*argv: str) -> Plan:
    parser = argparse.ArgumentParser()
    transports_cli.configure(parser)
    return transports_cli.build_plan(parser.parse_args(["-f", LOCUSTFILE, *argv]), "cmp")


def test_arms_are_transports_under_labels() -> None:
    assert parse_arms("rest,grpc", []) == [Arm("rest", "rest"), Arm("grpc", "grpc")]
    assert parse_arms(" rest , slow=grpc ", ["slow=grpc://10.0.0.9:50051"]) == [
        Arm("rest", "rest"),
        Arm("slow", "grpc", "grpc://10.0.0.9:50051"),
    ]
    spec = "chat_loadgen_websocket:WebSocketTransport"
    assert parse_arms(f"rest,{spec}", ["WebSocketTransport=ws://h:1"]) == [
        Arm("rest", "rest"),
        Arm("WebSocketTransport", spec, "ws://h:1"),
    ]


@pytest.mark.parametrize(
    ("transports", "targets", "message"),
    [
        ("rest,smtp", [], "--transports 'smtp': unknown transport; installed: amqp, grpc, rest"),
        ("", [], "--transports '': name at least one transport"),
        ("rest,rest", [], "--transports: 'rest' comes twice; give the second a label of its own: NAME=rest"),
        ("rest,a b=grpc", [], "--transports 'a b=grpc': the arm's label 'a b': use letters, digits"),
        ("rest", ["rest"], "--target 'rest': expected ARM=URL with ARM one of the compared arms (rest)"),
        ("rest", ["grpc=grpc://h:1"], "--target 'grpc=grpc://h:1': expected ARM=URL with ARM one of"),
        ("pkg.mod:Cls", [], "--transports: the reference server has no front for 'pkg.mod:Cls'; give the service "
         "to test with --target Cls=URL"),
    ],
)  # fmt: skip
def test_bad_arms_are_one_line(transports: str, targets: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_arms(transports, targets)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_bad_options_stop_before_any_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reports = str(tmp_path / "r")
    for argv, message in (
        (["--transports", "rest,smtp"], "--transports 'smtp': unknown transport"),
        (["--repeats", "0"], "--repeats 0: give 1 or more"),
        (["-t", "10s", "--warmup", "10s"], "--warmup 10 s leaves nothing of -t 10s to measure"),
        (["--warmup", "soon"], "--warmup 'soon': expected a duration"),
        (["-f", str(tmp_path / "none.py")], "not found: run from the project folder or give -f PATH"),
        (["--embedded-server-args", "--faults '1s"], "--embedded-server-args: No closing quotation"),
        (["--runs", str(tmp_path / "missing")], "not a folder; give a run folder"),
    ):
        assert run_command(transports_cli, ["-f", LOCUSTFILE, "--reports-dir", reports, *argv]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert not Path(reports).exists() or not any(Path(reports).iterdir())


def test_every_run_offers_the_same_load_to_its_arm(tmp_path: Path) -> None:
    plan = _plan("--transports", "rest,grpc", "-u", "5", "-t", "20s", "--", "--seed", "1")
    assert (plan.warmup_s, plan.spawn_rate, plan.locust_args) == (4.0, 5.0, ["--seed", "1"])
    commands = [transports_runner.locust_command(plan, arm, f"cmp-{arm.label}", "scheme://h:1") for arm in plan.arms]
    for arm, cmd in zip(plan.arms, commands, strict=True):
        assert cmd[1:4] == ["-m", "locust", "-f"]
        assert cmd[cmd.index("--transport") + 1] == arm.transport and cmd[cmd.index("--host") + 1] == "scheme://h:1"
        assert cmd[cmd.index("--interval") + 1] == "1" and cmd[-2:] == ["--seed", "1"]
    strip = {"--transport", "--run-id"}
    rest, grpc = ([a for i, a in enumerate(c) if i == 0 or c[i - 1] not in strip] for c in commands)
    assert rest == grpc  # the same users, spawn rate, run time and extra arguments
    assert _plan("-t", "60s").warmup_s == 5.0 and _plan("-t", "60s", "--warmup", "15s").warmup_s == 15.0
    given = _plan("--", "--interval", "2")
    assert transports_runner.locust_command(given, given.arms[0], "x", "h").count("--interval") == 1


def test_runs_go_in_interleaved_order_against_one_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    started: list[tuple[str, list[str]]] = []
    ran: list[tuple[int, str, str]] = []

    class FakeServer:
        def __init__(self, args: list[str]) -> None:
            self.urls = {"rest": "http://s:1", "grpc": "grpc://s:2", "amqp": "amqp://s:3/?queue=q"}
            self.args, self.stopped = args, False

        def stop(self) -> None:
            self.stopped = True

    servers: list[FakeServer] = []

    def fake_start(transport: str, amqp_url: str, args: list[str]) -> FakeServer:
        started.append((transport, list(args)))
        servers.append(FakeServer(args))
        return servers[-1]

    def fake_run(plan: Plan, arm: Arm, round_no: int, server: Any) -> transports_runner.RunRecord:
        ran.append((round_no, arm.label, server.urls.get(arm.transport) if arm.target is None else arm.target))
        return transports_runner.RunRecord(round_no, arm, "id", tmp_path / "id", 0, tmp_path / "log", Beside())

    monkeypatch.setattr(launcher, "start_embedded_server", fake_start)  # under start_server_with_fronts
    monkeypatch.setattr(transports_runner, "run_one", fake_run)
    plan = _plan("--transports", "rest,grpc,amqp", "--repeats", "4", "--reports-dir", str(tmp_path),
                 "--embedded-server-args", "--fixed --fixed-ttft-ms 20", "--amqp-url", "amqp://b:5672/")  # fmt: skip
    transports_runner.run_rounds(plan)
    assert [(r, label) for r, label, _ in ran] == [
        (1, "rest"), (1, "grpc"), (1, "amqp"), (2, "grpc"), (2, "amqp"), (2, "rest"),
        (3, "amqp"), (3, "rest"), (3, "grpc"), (4, "rest"), (4, "grpc"), (4, "amqp"),
    ]  # fmt: skip
    assert {url for _, _, url in ran} == {"http://s:1", "grpc://s:2", "amqp://s:3/?queue=q"}
    ((transport, args),) = started  # one server for the whole comparison, every front on it
    assert transport == "rest" and args[:4] == ["--grpc-port", "0", "--amqp-url", "amqp://b:5672/"]
    assert args[4] == "--amqp-queue" and args[5].startswith("loadgen.chat.requests.")
    assert args[6:] == ["--fixed", "--fixed-ttft-ms", "20"] and servers[0].stopped
    saved = (plan.out_dir / "rounds.json").read_text()
    assert '"order": [' in saved and saved.count('"round": ') == 12
    started.clear()
    ran.clear()
    faults = _plan("--transports", "rest,far=grpc", "--target", "far=grpc://f:9", "--reports-dir", str(tmp_path),
                   "--embedded-server-args", "--faults '2s+1s down'", "--id", "x")  # fmt: skip
    transports_runner.run_rounds(faults)
    assert [a for _, a in started] == [["--faults", "2s+1s down"]]  # a server of its own for each run with faults
    assert ran == [(1, "rest", "http://s:1"), (1, "far", "grpc://f:9")]


def test_cpu_is_read_from_proc_for_a_process_and_its_children() -> None:
    assert (process_cpu_s(os.getpid()) or 0.0) > 0.0
    assert process_cpu_s(2**22 + 12345) is None
    child = subprocess.Popen([sys.executable, "-c", "import time; sum(range(3_000_000)); time.sleep(30)"])
    try:
        assert child.pid in descendants(os.getpid())
        with CpuSampler(os.getpid(), child.pid, None) as sampler:
            time.sleep(1.2)
        assert len(sampler.samples) >= 2 and sampler.samples[-1].at > sampler.samples[0].at
        assert all(s.client_cpu_s is not None and s.server_cpu_s is not None for s in sampler.samples)
        assert all(s.server_requests is None for s in sampler.samples)
    finally:
        child.kill()
        child.wait()


def test_a_sampled_figure_is_read_at_the_window_edges() -> None:
    beside = Beside([Sample(100.0, 1.0, None, 10), Sample(102.0, 3.0, None, 30), Sample(104.0, 4.0, None, None)])
    assert beside.change("client_cpu_s", 101.0, 103.0) == pytest.approx(1.5)  # 2.0 -> 3.5
    assert beside.change("client_cpu_s", 99.5, 104.5) == pytest.approx(3.0)  # up to a second outside: the edge value
    assert beside.change("client_cpu_s", 90.0, 103.0) is None  # too far outside the samples
    assert beside.change("server_cpu_s", 100.0, 104.0) is None
    assert beside.change("server_requests", 100.0, 102.0) == 20
    assert Beside.from_json(beside.to_json()).samples == beside.samples


def test_the_floor_and_the_server_count_never_fail_a_comparison(tmp_path: Path) -> None:
    assert start_floor("websocket", "ws://h:1", delay_s=0, duration_s=5) is None
    assert server_requests(None) is None
    assert server_requests("http://127.0.0.1:9/stats") is None  # nothing listens: None, at once
    beside = Beside()
    finish_floor(subprocess.Popen(["echo", "not json"], stdout=subprocess.PIPE, text=True), beside, 5.0)
    assert beside.floor_ms is None
    out = '{"transport": "rest", "ttft_ms": [1.5, 2.5], "failures": 1}'
    finish_floor(subprocess.Popen(["echo", out], stdout=subprocess.PIPE, text=True), beside, 5.0)
    assert (beside.floor_ms, beside.floor_failures) == ([1.5, 2.5], 1)


def test_no_password_reaches_the_rounds_file(tmp_path: Path) -> None:
    secret = "amqp://u:secret@b:5672/"
    plan = _plan("--transports", "rest,q=amqp", "--target", f"q={secret}?queue=x",
                 "--embedded-server-args", f"--amqp-url {secret}", "--reports-dir", str(tmp_path))  # fmt: skip
    plan.out_dir.mkdir(parents=True)
    record = transports_runner.RunRecord(1, plan.arms[1], "id", tmp_path / "id", 0, tmp_path / "log", Beside())
    transports_runner.write_rounds(plan, [["rest", "q"]], [record])
    saved = (plan.out_dir / "rounds.json").read_text()
    assert "secret" not in saved and "amqp://u:***@b:5672/" in saved


def test_ctrl_c_lets_the_run_under_way_write_its_folder_then_stops(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class Proc:
        def __init__(self, answers: list[Any]) -> None:
            self.answers, self.signals = answers, []

        def wait(self, timeout: float | None = None) -> int:
            answer = self.answers.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            return int(answer)

        def terminate(self) -> None:
            self.signals.append("TERM")

        def kill(self) -> None:
            self.signals.append("KILL")

    assert transports_runner._wait(Proc([KeyboardInterrupt(), 0]), 10) == (0, True)  # type: ignore[arg-type]
    slow = Proc([KeyboardInterrupt(), subprocess.TimeoutExpired("locust", 30), 0])
    assert transports_runner._wait(slow, 10) == (0, True) and slow.signals == ["TERM"]  # type: ignore[arg-type]
    stuck = Proc([subprocess.TimeoutExpired("locust", 10), -9])
    assert transports_runner._wait(stuck, 10) == (-9, False) and stuck.signals == ["KILL"]  # type: ignore[arg-type]
    assert "interrupted: waiting for the run to write its folder" in capsys.readouterr().out

    def fake_run(plan: Plan, arm: Arm, round_no: int, server: Any) -> transports_runner.RunRecord:
        return transports_runner.RunRecord(
            round_no, arm, "id", tmp_path / "id", 130, tmp_path / "log", Beside(), interrupted=arm.label == "grpc"
        )

    monkeypatch.setattr(transports_runner, "run_one", fake_run)
    plan = _plan("--transports", "rest,grpc", "--target", "rest=http://h:1", "--target", "grpc=grpc://h:2",
                 "--repeats", "3", "--reports-dir", str(tmp_path))  # fmt: skip
    records = transports_runner.run_rounds(plan)
    assert [(r.round, r.arm.label) for r in records] == [(1, "rest"), (1, "grpc")]
    assert '"interrupted": true' in (plan.out_dir / "rounds.json").read_text()
    assert transports_cli._exit_code(records) == 130
