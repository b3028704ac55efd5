"""SLOs, goodput, the steady window and the latency from the intended start, over real headless Locust runs against
the embedded reference server with exact (``--fixed``) timing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from harness import LocustRun, run_locust

pytestmark = pytest.mark.e2e

FIXED = "--fixed --fixed-ttft-ms 50 --fixed-itl-ms 10"


def _rest(run: LocustRun) -> dict[str, Any]:
    assert run.returncode == 0, run.output[-4000:]
    row: dict[str, Any] = run.summary["transports"]["rest"]
    assert row["count"] >= 10, run.output[-4000:]
    assert row["failures"] == 0, row["failure_reasons"]
    return row


def _interval_turns(run: LocustRun) -> int:
    lines = (run.run_dir / "intervals.jsonl").read_text().splitlines()
    return sum(int(json.loads(line)["c"].get("rest|*|0|count", 0)) for line in lines if line.strip())


def test_a_ttft_slo_below_the_servers_ttft_is_never_met(tmp_path: Path) -> None:
    run = run_locust(tmp_path, "--embedded-server-args", FIXED, "--max-tokens", "20", "--slo", "ttft.p99 < 20ms",
                     run_time="8s", users=4)  # fmt: skip
    rest = _rest(run)
    assert rest["slo"] == {"met": 0, "attainment": 0.0, "goodput_per_s": 0.0}
    [check] = run.summary["slo"]["transports"]["rest"]["checks"]
    assert check["objective"] == "ttft.p99 < 20ms" and check["held"] is False and check["value_ms"] >= 49.5
    assert "SLO rest: goodput 0.00 turns/s" in run.output and "not held: ttft.p99 < 20ms" in run.output


def test_a_met_slo_makes_goodput_the_throughput_and_warm_up_stays_out_across_processes(tmp_path: Path) -> None:
    run = run_locust(tmp_path, "--embedded-server-args", FIXED, "--max-tokens", "20", "--slo", "ttft.p99 < 500ms",
                     "--warmup", "3s", "--cooldown", "2s", "--processes", "2", run_time="10s", users=4,
                     timeout=120)  # fmt: skip
    rest = _rest(run)
    assert rest["slo"]["met"] == rest["count"] and rest["slo"]["attainment"] == 1.0
    assert rest["slo"]["goodput_per_s"] == pytest.approx(rest["turns_per_s"], abs=0.001)
    assert run.summary["slo"]["transports"]["rest"]["held"] is True
    block = run.summary["run"]
    assert (block["warmup_s"], block["cooldown_s"]) == (3.0, 2.0)
    assert block["steady"]["duration_s"] == pytest.approx(5.0, abs=0.01)  # 10 s less 3 s and 2 s
    assert block["steady"]["start"] == pytest.approx(block["started_at"] + 3.0, abs=0.01)
    assert rest["turns_per_s"] == pytest.approx(rest["count"] / 5.0, abs=0.001)
    # every turn Locust counted reached the intervals, the warm-up's and cool-down's included; the summary has only
    # the steady state's (the workers shipped the mark)
    everything = sum(requests for requests, _ in run.locust_requests().values())
    assert _interval_turns(run) == everything
    assert 0 < rest["count"] < everything - 5


def test_a_stall_is_in_both_latencies_and_the_intended_start_adds_the_schedule_lag(tmp_path: Path) -> None:
    # A closed-model conversation means its next turn for when the reply has come and the think time passed, so a
    # stalled server lengthens the service time; the schedule lag (the generator's lateness) comes on top of it.
    run = run_locust(tmp_path, "--embedded-server-args", f"{FIXED} --faults '3s+2s stall'", "--max-tokens", "20",
                     run_time="10s", users=3)  # fmt: skip
    rest = _rest(run)
    e2e, intended, lag = rest["e2e_ms"], rest["e2e_from_intended_ms"], rest["schedule_lag_ms"]
    assert e2e["max"] >= 1000.0, e2e  # turns sent into the stall waited for its end
    assert intended["count"] == e2e["count"] == lag["count"]
    for stat in ("p50", "p95", "p99", "max"):
        assert intended[stat] >= e2e[stat], stat
    assert lag["mean"] > 0
    assert intended["mean"] == pytest.approx(e2e["mean"] + lag["mean"], abs=0.003)
    assert rest["tpot_ms"]["p50"] == pytest.approx(10.0, abs=1.0)  # one token every 10 ms
