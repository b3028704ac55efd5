"""Running a sweep without Locust: the order of the steps, the --find probes, Ctrl-C, the knee per transport, the
files (sweep.json, sweep.md, sweep.html) and the exit codes. A step is played by a model service whose capacity
is known: throughput grows with the load up to a capacity, past which turns fail."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))

from report_helpers import run_command

from loadgen.load import sweep_cli
from loadgen.load.sweep_out import to_json, to_markdown
from loadgen.load.sweep_page import to_html
from loadgen.load.sweep_plan import SweepPlan
from loadgen.load.sweep_runner import Sweep, run_sweep
from loadgen.load.sweep_step import SloCheck, StepResult
from loadgen.report.transports_build import read_sweep

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = str(REPO_ROOT / "scenarios" / "multiturn.py")
CAPACITY = {"rest": 6.0, "grpc": 12.0}  # the load past which the model service fails turns


class ModelService:
    """Plays each step: 2 turns/s per unit of load up to the transport's capacity; above it 10% errors, latency
    climbing (the hockey stick)."""

    def __init__(self, *, interrupt_at: int | None = None) -> None:
        self.ran: list[tuple[str, float]] = []
        self.interrupt_at = interrupt_at

    def __call__(self, plan: SweepPlan, transport: str, load: float, server: Any) -> tuple[StepResult, bool]:
        assert server is None  # every transport has a --host: no reference server
        self.ran.append((transport, load))
        capacity = CAPACITY[transport]
        over = load > capacity
        p50 = 50.0 * (1 + max(0.0, load - capacity))
        run_dir = plan.out_dir / plan.run_id(transport, load)
        result = StepResult(
            transport,
            load,
            plan.mode,
            run_dir,
            turns=100,
            window_s=plan.step_s,
            turns_per_s=2.0 * min(load, capacity),
            e2e_ms={"p50": p50, "p95": p50 * 2, "p99": p50 * 3, "mean": p50 * 1.2},
            ttft_ms={"p50": 10.0, "p95": 20.0, "p99": 30.0, "mean": 12.0},
            error_rate=0.1 if over else 0.0,
            generator_lag_p99_ms=1.0,
            slo_checks=[SloCheck("e2e.p99 < 1s", p50 * 3 < 1000.0, p50 * 3, "")],
            lag_limit_ms=plan.lag_limit_ms,
        ).judge(plan.max_error_rate)
        return result, self.interrupt_at == len(self.ran)


def _plan(tmp_path: Path, *argv: str) -> SweepPlan:
    parser = argparse.ArgumentParser()
    sweep_cli.configure(parser)
    hosts = ["--host", "rest=http://127.0.0.1:1", "--host", "grpc=grpc://127.0.0.1:2"]
    args = ["-f", LOCUSTFILE, "--transport", "rest,grpc", *hosts, "--reports-dir", str(tmp_path), "--run-id", "sw"]
    return sweep_cli.build_plan(parser.parse_args([*args, *argv]))


def test_steps_interleave_the_transports_in_rising_load(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "--users", "8,2,4", "--step", "4s", "--warmup", "2s", "--slo", "e2e.p99 < 1s")
    service = ModelService()
    seen: list[int] = []
    sweep = run_sweep(plan, lambda s: seen.append(sum(len(v) for v in s.steps.values())), step_runner=service)
    assert service.ran == [("rest", 2), ("grpc", 2), ("rest", 4), ("grpc", 4), ("rest", 8), ("grpc", 8)]
    assert seen == [1, 2, 3, 4, 5, 6]  # the files are rewritten after every step
    rest, grpc = sweep.knee("rest"), sweep.knee("grpc")
    assert rest.knee is not None and rest.knee.load == 4 and rest.max_sustainable_turns_per_s == 8.0
    assert grpc.knee is not None and grpc.knee.load == 8 and grpc.ceiling_turns_per_s == 16.0
    assert sweep_cli.exit_code(sweep) == 0


def test_find_bisects_between_the_last_step_that_held_and_the_first_that_did_not(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "--users", "2,16", "--find", "--find-steps", "3")
    service = ModelService()
    sweep = run_sweep(plan, step_runner=service)
    # rest: 2 held, 16 did not -> sqrt(2*16) = 5.66 -> 6 (holds) -> sqrt(6*16) = 9.8 -> 10 -> sqrt(6*10) = 7.7 -> 8
    assert service.ran[4:] == [("rest", 6), ("grpc", 6), ("rest", 10), ("grpc", 10), ("rest", 8), ("grpc", 13)]
    assert [s.load for s in sweep.of("rest")] == [2, 6, 8, 10, 16]
    assert sweep.knee("rest").knee is not None and sweep.knee("rest").knee.load == 6  # type: ignore[union-attr]
    assert sweep.knee("grpc").knee is not None and sweep.knee("grpc").knee.load == 10  # type: ignore[union-attr]
    rates = _plan(tmp_path, "--rates", "2,16", "--find", "--find-steps", "1", "--run-id", "r")
    service = ModelService()
    run_sweep(rates, step_runner=service)
    assert service.ran[4:] == [("rest", 5.657), ("grpc", 5.657)]  # not rounded to whole users


def test_ctrl_c_stops_after_the_step_under_way_and_writes_what_ran(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "--users", "2,4,8")
    sweep = run_sweep(plan, sweep_cli.write_outputs, step_runner=ModelService(interrupt_at=3))
    assert sweep.interrupted and sum(len(v) for v in sweep.steps.values()) == 3
    saved = json.loads((plan.out_dir / "sweep.json").read_text())
    assert saved["interrupted"] is True and [s["load"] for s in saved["transports"]["rest"]["steps"]] == [2, 4]
    assert "INTERRUPTED" in (plan.out_dir / "sweep.md").read_text()
    assert sweep_cli.exit_code(sweep) == 130


def test_sweep_files_give_each_transports_knee(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "--users", "2,4,8,16", "--slo", "e2e.p99 < 1s", "--max-error-rate", "5%")
    sweep = run_sweep(plan, sweep_cli.write_outputs, step_runner=ModelService())
    data = json.loads(to_json(sweep))
    assert (data["mode"], data["loads"], data["slo"], data["max_error_rate"]) == ("users", [2, 4, 8, 16],
                                                                                    ["e2e.p99 < 1s"], 0.05)  # fmt: skip
    rest = data["transports"]["rest"]
    assert (rest["knee_load"], rest["max_sustainable_turns_per_s"], rest["ceiling_turns_per_s"]) == (4, 8.0, 12.0)
    assert rest["limited_by_generator"] is False and rest["held_any"] is True
    assert rest["e2e_mean_ms_at_knee"] == 60.0 and rest["error_rate_at_knee"] == 0.0
    step = rest["steps"][-1]
    assert step["load"] == 16 and step["holds"] is False and step["error_rate"] == 0.1
    assert step["run_dir"] == "sw-rest-u16" and set(step["e2e_ms"]) == {"p50", "p95", "p99", "mean"}
    for key in ("mode", "turns_per_s", "goodput", "ttft_ms", "generator_lag_p99_ms", "slo_held"):
        assert key in step
    # compare-transports reads the sweep's figure per transport
    figures, page = read_sweep(plan.out_dir)
    assert figures == {"rest": 8.0, "grpc": 16.0} and page == plan.out_dir / "sweep.html"

    markdown = to_markdown(sweep)
    assert "| transport | avg latency at knee (ms) | max QPS within SLO (turns/s) | error rate at knee |" in markdown
    assert "| rest | 60.0 | 8.00 | 0.00% | 4 users | 12.00 |  |" in markdown
    last = "| 16 | 12.00 | - | 550.0 | 1650.0 | 660.0 | 10.0 | 30.0 | 10.00% | 1.00 | broken |"
    assert f"{last} no: SLO broken: e2e.p99 < 1s; error rate 10.00% > 5% |" in markdown
    html = to_html(sweep)
    assert html.count('class="plotly-graph-div"') == 2 and 'id="sweep-rest"' in html and 'id="sweep-grpc"' in html
    assert "knee: 4 users" in html and 'id="steps-grpc"' in html
    assert (plan.out_dir / "sweep.html").read_text() == html


def test_no_step_held_exits_3(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "--users", "20,40")
    sweep = run_sweep(plan, step_runner=ModelService())
    assert sweep.knee("rest").knee is None and sweep_cli.exit_code(sweep) == 3
    assert "no step held" in to_markdown(sweep)
    assert sweep_cli.exit_code(Sweep(plan)) == 2  # nothing ran


def test_step_commands(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "--users", "5", "--step", "4s", "--warmup", "2s", "--slo", "ttft.p99 < 1s",
                 "--", "--seed", "1")  # fmt: skip
    cmd = plan.locust_command("rest", 5, "http://h:1")
    assert cmd[1:5] == ["-m", "locust", "-f", LOCUSTFILE]
    joined = " ".join(cmd[5:])
    assert "--headless -u 5 -r 5 -t 6s --transport rest --host http://h:1 --run-id sw-rest-u5" in joined
    assert f"--reports-dir {tmp_path / 'sw'} --only-summary --interval 1" in joined and cmd[-2:] == ["--seed", "1"]
    assert "--slo" not in cmd and "--warmup" not in cmd  # the plug-in takes neither (yet)
    plan.plugin_options = frozenset({"--slo", "--warmup"})
    cmd = plan.locust_command("rest", 5, "http://h:1")
    assert " --warmup 2s --slo ttft.p99 < 1s --seed 1" in " ".join(cmd)
    rates = _plan(tmp_path, "--rates", "2.5", "--max-in-flight", "30")
    cmd = rates.locust_command("grpc", 2.5, "grpc://h:2")
    assert "--arrival-rate 2.5 --max-in-flight 30 -u 30 -r 30 -t 70s --transport grpc" in " ".join(cmd)
    assert cmd[cmd.index("--run-id") + 1] == "sw-grpc-r2.5"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--users", "1,2"], "loadgen sweep: --transport 'smtp': unknown transport"),
        ([], "loadgen sweep: give the steps: --users 10,20,40 (closed model) or --rates 1,2,4 (open model)"),
        (["--users", "1,x"], "loadgen sweep: --users '1,x': 'x' is not a number"),
        (["--users", "1.5"], "loadgen sweep: --users '1.5': each step must be a whole number above 0 (got 1.5)"),
        (["--rates", "0,1"], "loadgen sweep: --rates '0,1': each step must be a number above 0 (got 0)"),
        (["--users", "2", "--step", "soon"], "loadgen sweep: --step: not a duration: 'soon'"),
        (["--users", "2", "--step", "0.5s"], "loadgen sweep: --step '0.5s': give at least 1s"),
        (["--users", "2", "--slo", "ttft.p99 < 500"], "loadgen sweep: --slo: bad threshold 'ttft.p99 < 500'"),
        (["--users", "2", "--max-error-rate", "lots"], "loadgen sweep: --max-error-rate 'lots': give a rate"),
        (["--users", "2", "--find-steps", "0"], "loadgen sweep: --find-steps 0: give 1 or more"),
        (["--users", "2", "--host", "http://h:1"], "loadgen sweep: --host 'http://h:1': with several transports"),
        (["--users", "2", "--host", "amqp=amqp://h/"], "loadgen sweep: --host 'amqp=amqp://h/': amqp is not swept"),
        (["--users", "2", "--run-id", "a b"], "loadgen sweep: --run-id 'a b': use letters, digits"),
        (["--users", "2", "-f", "none.py"], "loadgen sweep: locustfile none.py not found"),
        (["--users", "2", "--embedded-server-args", "'x"], "loadgen sweep: --embedded-server-args: No closing"),
    ],
)
def test_bad_input_is_one_line_before_any_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    transports = "rest,smtp" if message.startswith("loadgen sweep: --transport") else "rest,grpc"
    args = ["--transport", transports, "--reports-dir", str(tmp_path / "r"), "-f", LOCUSTFILE, *argv]
    assert run_command(sweep_cli, args) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_a_transport_the_reference_server_lacks_needs_a_host(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--transport", "pkg.mod:Cls", "--users", "2", "-f", LOCUSTFILE]
    assert run_command(sweep_cli, args) == 2
    assert capsys.readouterr().err == (
        "loadgen sweep: --transport pkg.mod:Cls: the reference server has no front for it; give the service: "
        "--host pkg.mod:Cls=URL\n"
    )
