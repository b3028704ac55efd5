"""Long runs: report.html's size does not grow with the run's length (the over-time plots are downsampled to a fixed
budget of points, with the min-max band keeping a spike), intervals are read from ``intervals.jsonl`` (a line cut
short by a crash is left out), and the per-window and drift tables come from ``summary.json``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plotly.offline import get_plotlyjs
from report_helpers import make_long_run, make_run, run_command, update_summary

from loadgen.errors import ConfigError
from loadgen.report import cli
from loadgen.report.html import render_report
from loadgen.report.plots_time import DISPLAY_POINTS, latency_over_time
from loadgen.report.rundata import load_run
from loadgen.report.timeline import build_timeline

NIGHT_S = 8 * 3600.0
SPIKE_S = 0.6 * NIGHT_S


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_long_run(tmp_path_factory.mktemp("night") / "reports", "night", duration_s=NIGHT_S, spike_at_s=SPIKE_S)


def test_an_eight_hour_page_is_no_bigger_than_a_ten_minute_one(night: Path, tmp_path: Path) -> None:
    ten = make_long_run(tmp_path / "reports", "ten", duration_s=600.0)
    assert sum(1 for _ in (night / "intervals.jsonl").open()) == 5760  # 8 h of 5 s intervals
    ten_page, night_page = render_report(load_run(ten)), render_report(load_run(night))
    plotly_js = len(get_plotlyjs())
    assert len(night_page) <= 1.1 * len(ten_page), (len(night_page), len(ten_page))
    # what the run adds to the page (tables, figures' data), without the 4.6 MB of plotly.js both inline
    assert len(night_page) - plotly_js <= 2 * (len(ten_page) - plotly_js), (len(night_page), len(ten_page))


def test_every_line_keeps_to_the_budget_and_the_spike_stays_visible(night: Path) -> None:
    data = load_run(night)
    timeline = build_timeline(data)
    assert len(timeline) == 5760
    figure = latency_over_time(data, timeline)
    assert figure is not None
    by_name = {t.name: t for t in figure.data if t.name}
    for trace in figure.data:
        assert len(trace.x) <= DISPLAY_POINTS, trace.name
    band = by_name["rest e2e p99 (min-max)"]
    assert max(band.y) >= 30_000.0  # the one 30 s turn of the night, in ms: the band's top keeps it ...
    line = by_name["rest e2e p99"]
    assert max(line.y) < 30_000.0  # ... where the bucket's mean alone would hide it
    spike_bucket = max(range(len(band.y)), key=lambda i: band.y[i])
    assert band.x[spike_bucket - 1] < SPIKE_S <= band.x[spike_bucket]


def test_intervals_jsonl_with_a_cut_last_line_a_header_and_a_bad_line(tmp_path: Path) -> None:
    run_dir = make_long_run(tmp_path / "reports", "cut", duration_s=60.0)
    path = run_dir / "intervals.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    header = json.dumps({"schema_version": 2, "unit": "us", "interval_s": 5.0, "started_at": 1_760_000_000.0})
    path.write_text("\n".join([header, *lines, lines[-1][:40]]) + "\n", encoding="utf-8")  # a crash mid-append
    data = load_run(run_dir)
    assert len(data.intervals) == 12
    assert run_command(cli, [str(run_dir), "--no-html", "-q"]) == 0
    assert sum(1 for line in (run_dir / "rest.e2e.hlog").open() if not line.startswith(("#", '"'))) == 12
    path.write_text("\n".join([*lines[:3], "{not json", *lines[3:]]) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"intervals.jsonl, line 4: not valid JSON"):
        list(load_run(run_dir).iter_raw_intervals())


def test_per_window_and_drift_tables(night: Path, tmp_path: Path) -> None:
    page = render_report(load_run(night))
    assert '<table id="windows-table">' in page and '<table id="drift-table">' in page
    assert '<td class="l">0:00:00-1:00:00</td><td class="l">rest</td><td>100</td>' in page  # first hour
    assert '<td class="l">7:00:00-8:00:00</td>' in page
    # summary: TTFT p99 creeps 2 ms a window (an hour) from 80 ms: +2 ms/h, +2.5%/h
    assert "<td>80.0 ms</td><td>+2 ms/h</td><td>+2.50%/h</td><td>8</td>" in page
    short = make_run(tmp_path / "reports", "no-windows", transports=("rest",), intervals=2)
    summary = json.loads((short / "summary.json").read_text(encoding="utf-8"))
    for section in ("windows", "drift", "outages", "recovery"):
        summary.pop(section, None)
    (short / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    page = render_report(load_run(short))  # an older folder: no windows, no drift, no outages: no such sections
    assert "windows-table" not in page and "drift-table" not in page and "Outages and recovery" not in page
    update_summary(short, windows={"window_s": 5.0, "rows": []}, drift={})
    assert "windows-table" not in render_report(load_run(short))
