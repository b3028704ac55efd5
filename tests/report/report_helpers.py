"""Helpers for the report tests: a synthetic but realistic run folder, written by the same code a Locust run
uses (no server needed), and running one ``loadgen`` sub-command in-process."""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from loadgen.errors import ServerError, TurnTimeout
from loadgen.load.slo import SloChecker, parse_objectives
from loadgen.metrics.aggregator import RunAggregator
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.histograms import Metric
from loadgen.metrics.keys import ALL, SeriesKey
from loadgen.metrics.rundir import write_run
from loadgen.metrics.turns import TurnOutcome, record_turn
from loadgen.types import Reply, Usage

T0 = 1_760_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _reply(rng: random.Random, scale: float, prompt_tokens: int) -> Reply:
    t0 = 100.0
    ttft = rng.lognormvariate(-3.0, 0.4) * scale
    times = [t0 + ttft]
    for _ in range(rng.randint(5, 20)):
        times.append(times[-1] + rng.uniform(0.002, 0.006) * scale)
    return Reply(
        text="ok",
        t_sent=t0,
        t_done=times[-1] + 0.001,
        chunk_times=times,
        chunk_tokens=[1.0] * len(times),
        usage=Usage(prompt_tokens, len(times)),
    )


def make_run(
    reports: Path,
    run_id: str = "synthetic",
    *,
    transports: tuple[str, ...] = ("rest", "grpc"),
    seed: int = 7,
    scale: float = 1.0,
    failure_every: int = 17,
    retention_miss_every: int = 11,
    intervals: int = 4,
    users: int = 8,
    dialogues: dict[str, int] | None = None,
    scale_at: Callable[[int], float] | None = None,
    lag_us: tuple[int, int] = (50, 3000),
    slo: tuple[str, ...] = (),
) -> Path:
    """Write ``reports/<run_id>/`` with two dialogues of 3 and 5 turns over the given transports (every
    ``failure_every``-th turn fails on the wire, every ``retention_miss_every``-th probe misses: 1 = all).
    ``scale_at(i)`` multiplies the latencies of interval ``i`` (0-based); the generator lag is drawn from
    ``lag_us`` (microseconds); ``slo``: ``--slo`` expressions the turns are checked against."""
    objectives = parse_objectives(slo)
    checker = SloChecker(objectives) if objectives else None
    rng = random.Random(seed)
    clock = FakeClock()
    agg = RunAggregator(interval_s=5.0, clock=clock)
    dialogues = dialogues or {"travel_booking": 5, "coding_help": 3}
    n = 0
    for index in range(intervals):
        batch = MetricsBatch()
        at_scale = scale * (scale_at(index) if scale_at is not None else 1.0)
        for transport in transports:
            for dialogue, turns in dialogues.items():
                for turn in range(1, turns + 1):
                    for _ in range(12):
                        n += 1
                        prompt = rng.choice((100, 900, 3000, 6000))
                        if n % failure_every == 0:
                            error = TurnTimeout("turn timed out after 60 s") if n % 2 else ServerError("HTTP 503")
                            outcome = TurnOutcome(transport, dialogue, turn, None, error=error)
                        else:
                            probe = turn in (3, 5)
                            outcome = TurnOutcome(
                                transport,
                                dialogue,
                                turn,
                                _reply(rng, at_scale * (1.5 if transport == "grpc" else 1.0), prompt),
                                retention_checked=1 if probe else 0,
                                retention_passed=not (probe and n % retention_miss_every == 0),
                                retention_reason=(
                                    "booking code missing" if probe and n % retention_miss_every == 0 else None
                                ),
                                schedule_lag_s=rng.uniform(0, 0.002),
                            )
                        record_turn(batch, outcome, checker)
        lag_key = SeriesKey(ALL, ALL, 0, Metric.GENERATOR_LAG)
        for _ in range(500):
            batch.record(lag_key, rng.randint(*lag_us))
        clock.now += 5.0
        agg.merge(batch)
    agg.maybe_roll(force=True)
    run = {
        "id": run_id,
        "target": "http://127.0.0.1:1",
        "transports": list(transports),
        "history_mode": "client",
        "stream": True,
        "dialogues": sorted(dialogues),
        "started_at": T0,
        "ended_at": clock.now,
        "duration_s": clock.now - T0,
        "users": users,
        "processes": 1,
        "complete": True,
        "command": "locust -f scenarios/multiturn.py",
    }
    run_dir = reports / run_id
    write_run(run_dir, agg, run, slo=objectives)
    return run_dir


def update_summary(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Set top-level fields of a run folder's summary.json (``run=...`` updates the run block); the summary."""
    path = run_dir / "summary.json"
    summary: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    run = fields.pop("run", None)
    if run is not None:
        summary["run"].update(run)
    summary.update(fields)
    path.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary


def run_command(module: ModuleType, argv: list[str]) -> int:
    """Run one ``loadgen`` sub-command in-process through its own ``configure``/``run`` (as loadgen.cli does)."""
    parser = argparse.ArgumentParser(prog="loadgen")
    module.configure(parser)
    code: int = module.run(parser.parse_args(argv))
    return code


CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
BROWSER_HINT = "no Debian chromium + chromium-driver: apt-get install -y chromium chromium-driver"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PLOTS_JS = """
return Array.from(document.querySelectorAll('.js-plotly-plot')).map(function (el) {
  return {id: el.id, svgs: el.querySelectorAll('.main-svg').length,
          traces: el.querySelectorAll('g.trace').length, data: (el.data || []).length};
});
"""


def has_browser() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


def browser_available() -> bool:
    """Skip without Debian chromium + chromium-driver on a developer machine; fail in CI (.ci/run installs them)."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return True
    if IN_CI:
        pytest.fail(BROWSER_HINT)
    pytest.skip(BROWSER_HINT)


def start_browser() -> Any:
    browser_available()
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for arg in CHROME_ARGS:
        options.add_argument(arg)
    options.binary_location = str(CHROMIUM)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_window_size(1400, 1000)
    return driver


def drawn_plots(driver: Any, url_or_path: Path | str, expected: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Open a page and wait until ``expected`` plotly plots each have their SVG and at least one trace."""
    url = url_or_path.resolve().as_uri() if isinstance(url_or_path, Path) else url_or_path
    driver.get(url)
    deadline = time.monotonic() + timeout
    plots: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        plots = driver.execute_script(PLOTS_JS)
        if len(plots) >= expected and all(p["svgs"] and p["traces"] for p in plots):
            return plots
        time.sleep(0.25)
    return plots


def read_hlog(path: Path) -> tuple[int, int]:
    """(intervals, total count) of an .hlog file, read with hdrhistogram's own HistogramLogReader."""
    reader = HistogramLogReader(str(path), HdrHistogram(1, 3_600_000_000, 3))
    intervals = total = 0
    while True:
        hist = reader.get_next_interval_histogram()
        if hist is None:
            break
        intervals += 1
        total += hist.get_total_count()
    reader.close()
    return intervals, total


def soak_fields(
    duration_s: float,
    transports: tuple[str, ...] = ("rest",),
    *,
    outages: list[dict[str, Any]] | None = None,
    faults: list[dict[str, Any]] | None = None,
    windows: int = 8,
    ttft_creep_ms_per_window: float = 2.0,
) -> dict[str, Any]:
    """The summary.json fields of a soak run (``outages``, ``faults``, ``recovery``, ``windows``, ``drift``,
    ``workers``), written by hand as the run folder contract states them, for tests of how they are shown."""
    outages = outages or []
    width = duration_s / windows
    rows = []
    for w in range(windows):
        figures = {
            t: {"turns": 100 + w, "failures": w % 3, "error_rate": (w % 3) / (100 + w),
                "ttft_ms": {"p50": 40.0 + w, "p99": 80.0 + ttft_creep_ms_per_window * w},
                "e2e_ms": {"p50": 90.0 + w, "p99": 150.0 + w}, "retention_rate": 1.0 - 0.001 * w}
            for t in transports
        }  # fmt: skip
        rows.append({"start_s": w * width, "end_s": (w + 1) * width, "transports": figures,
                     "generator_lag_ms": {"p99": 1.5}})  # fmt: skip
    hours = width / 3600.0
    drift = {
        t: {"ttft_p99": {"windows": windows, "first": 80.0, "per_hour": ttft_creep_ms_per_window / hours,
                         "pct_per_hour": 100.0 * ttft_creep_ms_per_window / hours / 80.0},
            "e2e_p99": {"windows": windows, "first": 150.0, "per_hour": 1.0 / hours,
                        "pct_per_hour": 100.0 / hours / 150.0},
            "error_rate": {"windows": windows, "first": 0.0, "per_hour": 0.0, "pct_per_hour": None},
            "retention_rate": {"windows": windows, "first": 1.0, "per_hour": -0.001 / hours,
                               "pct_per_hour": -0.1 / hours}}
        for t in transports
    }  # fmt: skip
    recovery: dict[str, Any] = {}
    for t in transports:
        mine = [o["recovery_s"] for o in outages if o["transport"] == t and o.get("recovery_s") is not None]
        n = sum(1 for o in outages if o["transport"] == t)
        mine.sort()
        middle = mine[len(mine) // 2] if mine else None
        recovery[t] = {"outages": n, "max_s": mine[-1] if mine else None, "p50_s": middle}
    return {
        "schema_version": 2,
        "outages": outages,
        "faults": faults or [],
        "recovery": recovery,
        "windows": {"window_s": width, "rows": rows},
        "drift": drift,
        "workers": {"expected": None, "reported": 1, "lost": []},
    }


def outage(transport: str, start_s: float, end_s: float | None, recovery_s: float | None = 0.5) -> dict[str, Any]:
    return {"transport": transport, "start_s": start_s, "end_s": end_s,
            "duration_s": None if end_s is None else end_s - start_s, "failed_turns": 12, "users": 4,
            "recovery_s": None if end_s is None else recovery_s}  # fmt: skip


def make_long_run(
    reports: Path, run_id: str, *, duration_s: float, interval_s: float = 5.0, spike_at_s: float | None = None
) -> Path:
    """A run folder of ``duration_s`` seconds with one ``intervals.jsonl`` line per ``interval_s`` (the run
    folder contract's format), the per-interval figures cycled from a short synthetic run; with ``spike_at_s``,
    the interval holding that second has one 30 s turn."""
    run_dir = make_run(reports, run_id, transports=("rest",), intervals=4)
    lines = (run_dir / "intervals.jsonl").read_text(encoding="utf-8").splitlines()
    wires = [{k: item[k] for k in ("v", "h", "c")} for item in map(json.loads, lines)]
    spike = MetricsBatch()
    spike.merge_wire(wires[0])
    spike.record(SeriesKey("rest", ALL, 0, Metric.E2E), 30_000_000, count=5)
    count = round(duration_s / interval_s)
    with (run_dir / "intervals.jsonl").open("w", encoding="utf-8") as fh:
        for i in range(count):
            start = T0 + i * interval_s
            at_spike = spike_at_s is not None and i * interval_s <= spike_at_s < (i + 1) * interval_s
            wire = spike.to_wire() if at_spike else wires[i % len(wires)]
            fh.write(json.dumps({"start": start, "end": start + interval_s, **wire}) + "\n")
    update_summary(run_dir, run={"duration_s": duration_s, "ended_at": T0 + duration_s}, **soak_fields(duration_s))
    return run_dir
