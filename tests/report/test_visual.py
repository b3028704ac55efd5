"""report.html and comparison.html read at a glance, checked in a real headless Chromium at 1,400 px: on a good run,
a run with retention failures (and outages), and a run where every turn failed. Each page is screenshotted whole
(into ``$LOADGEN_SCREENSHOTS`` when set, to look at), and measured: no table wider than the window, no plot title
under Plotly's toolbar or cut off, axis labels and legends inside their plot and clear of each other, every drawn
plot has data, a 0% retention bar is labelled "0/N", and the header of a dead run says so."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
from report_helpers import drawn_plots, make_run, outage, soak_fields, update_summary

from loadgen.report.files import write_reports
from loadgen.report.rundata import load_run
from loadgen.report.transports_build import Judging, compare, round_run
from loadgen.report.transports_page import to_html

pytestmark = pytest.mark.browser
WIDTH = 1400
MEASURE_JS = """
const box = n => { if (!n) return null; const r = n.getBoundingClientRect();
                   return {l: r.left, r: r.right, t: r.top, b: r.bottom, w: r.width, h: r.height}; };
const all = (el, q) => Array.from(el.querySelectorAll(q)).map(box).filter(r => r.w > 0 && r.h > 0);
const status = document.getElementById('run-status');
const out = {pageWidth: document.documentElement.scrollWidth, viewport: window.innerWidth, tables: [], plots: [],
             status: status ? [status.className, status.textContent] : null};
for (const t of document.querySelectorAll('table')) {
  out.tables.push({id: t.id, box: box(t), scroll: t.parentElement.scrollWidth, client: t.parentElement.clientWidth});
}
for (const el of document.querySelectorAll('.js-plotly-plot')) {
  out.plots.push({
    id: el.id, box: box(el), title: box(el.querySelector('.gtitle')), modebar: box(el.querySelector('.modebar')),
    legend: box(el.querySelector('.legend .bg')), xtitle: all(el, '.g-xtitle text, .g-x2title text'),
    ytitle: all(el, '.g-ytitle text, .g-y2title text'), xticks: all(el, '.xtick text, .x2tick text'),
    texts: Array.from(el.querySelectorAll('.bars text, .textpoint text')).map(n => n.textContent),
    names: (el.data || []).map(t => t.name || ''),
    points: (el.data || []).map(t => (t.y || []).filter(v => v !== null && v !== undefined).length),
  });
}
return out;
"""


def _overlap(a: dict[str, float] | None, b: dict[str, float] | None, slack: float = 1.0) -> bool:
    if a is None or b is None:
        return False
    return a["l"] < b["r"] - slack and b["l"] < a["r"] - slack and a["t"] < b["b"] - slack and b["t"] < a["b"] - slack


def _inside(inner: dict[str, float], outer: dict[str, float], slack: float = 1.0) -> bool:
    return (inner["l"] >= outer["l"] - slack and inner["r"] <= outer["r"] + slack
            and inner["t"] >= outer["t"] - slack and inner["b"] <= outer["b"] + slack)  # fmt: skip


def _png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


def _screenshot(browser: Any, name: str, tmp_path: Path) -> Path:
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(WIDTH, min(int(height) + 140, 20_000))
    try:
        path = tmp_path / f"{name}.png"
        browser.save_screenshot(str(path))
    finally:
        browser.set_window_size(WIDTH, 1000)
    keep = os.environ.get("LOADGEN_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(keep) / path.name)
    assert _png_size(path)[0] == WIDTH and path.stat().st_size > 20_000, path
    return path


def _check_page(browser: Any, page: Path, name: str, tmp_path: Path) -> dict[str, Any]:
    expected = page.read_text(encoding="utf-8").count('class="plotly-graph-div"')
    plots = drawn_plots(browser, page, expected)
    assert len(plots) == expected, plots
    m: dict[str, Any] = browser.execute_script(MEASURE_JS)
    assert m["viewport"] == WIDTH
    assert m["pageWidth"] <= m["viewport"], f"{name}: the page scrolls sideways ({m['pageWidth']} px)"
    for t in m["tables"]:
        assert t["box"]["r"] <= m["viewport"] and t["scroll"] <= t["client"] + 1, f"{name}: table {t} too wide"
    for p in m["plots"]:
        where = f"{name} #{p['id']}"
        assert sum(p["points"]) > 0 and any(p["points"]), f"{where}: a plot without data: {p['names']}"
        assert p["title"] is not None and _inside(p["title"], p["box"]), f"{where}: title cut off {p}"
        assert not _overlap(p["title"], p["modebar"]), f"{where}: the toolbar covers the title {p}"
        for label in p["xtitle"] + p["ytitle"] + p["xticks"] + ([p["legend"]] if p["legend"] else []):
            assert _inside(label, p["box"]), f"{where}: an axis label or the legend is clipped {label} {p['box']}"
        for label in p["xtitle"] + p["xticks"]:
            assert not _overlap(label, p["legend"]), f"{where}: the legend covers an axis label {label}"
        if p["id"].startswith("dist-turn-"):  # turn k of different dialogues only merged when labelled so
            assert all(":turn" in n or "all dialogues" in n for n in p["names"]), f"{where}: {p['names']}"
    _screenshot(browser, name, tmp_path)
    return m


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    reports = tmp_path_factory.mktemp("visual") / "reports"
    good = make_run(reports, "good", transports=("rest", "grpc"), intervals=8,
                    slo=("ttft.p99 < 80ms", "rest.travel_booking.turn2.e2e_from_intended.p95 <= 2s"))  # fmt: skip
    update_summary(good, **soak_fields(40.0, ("rest", "grpc")))
    forgetful = make_run(reports, "forgetful", transports=("grpc",), intervals=8, retention_miss_every=1)
    update_summary(
        forgetful,
        **soak_fields(40.0, ("grpc",), outages=[outage("grpc", 10.0, 17.5, 1.2), outage("grpc", 33.0, None)],
                      faults=[{"fault": "10s+5s down", "kind": "down", "start_s": 10.0, "end_s": 15.0},
                              {"fault": "30s forget-sessions", "kind": "forget-sessions", "start_s": 30.0,
                               "end_s": None}]),
    )  # fmt: skip
    dead = make_run(reports, "dead", transports=("amqp",), intervals=8, failure_every=1)
    for run_dir in (good, forgetful, dead):
        write_reports(run_dir)
    return {"good": good, "forgetful": forgetful, "dead": dead}


def test_a_good_run_reads_at_a_glance(browser: Any, runs: dict[str, Path], tmp_path: Path) -> None:
    m = _check_page(browser, runs["good"] / "report.html", "good-report", tmp_path)
    assert m["status"][0] == "status warn" and "complete, 1536 turns; 139 of 1536 turns failed" in m["status"][1]
    ids = {p["id"] for p in m["plots"]}
    assert {"latency-over-time", "throughput-over-time", "failures-over-time", "retention-by-turn"} <= ids
    assert {"turns-table", "windows-table", "drift-table", "intended-table", "slo-table"} <= {
        t["id"] for t in m["tables"]
    }


def test_a_run_with_retention_failures_and_outages(browser: Any, runs: dict[str, Path], tmp_path: Path) -> None:
    m = _check_page(browser, runs["forgetful"] / "report.html", "forgetful-report", tmp_path)
    (retention,) = [p for p in m["plots"] if p["id"] == "retention-by-turn"]
    assert retention["texts"] and all(t.startswith("0/") for t in retention["texts"]), retention["texts"]
    assert "outages-table" in {t["id"] for t in m["tables"]}
    shapes = browser.execute_script(
        "return document.getElementById('latency-over-time').layout.shapes.map(s => [s.type, s.name, s.x0, s.x1]);"
    )
    assert ["rect", "outage (grpc)", 10, 17.5] in shapes and ["rect", "outage (grpc)", 33, 40] in shapes
    assert ["rect", "server fault: down", 10, 15] in shapes
    assert ["line", "server fault: forget-sessions", 30, 30] in shapes


def test_a_run_where_everything_failed(browser: Any, runs: dict[str, Path], tmp_path: Path) -> None:
    m = _check_page(browser, runs["dead"] / "report.html", "dead-report", tmp_path)
    assert m["status"] == ["status bad", "no successful turn: every one of the 768 turns failed"]
    empty = browser.execute_script("return Array.from(document.querySelectorAll('.empty')).map(e => e.id);")
    assert {"dist-transport-e2e-empty", "latency-over-time-empty", "retention-by-turn-empty"} <= set(empty)
    cells = browser.execute_script(
        "return Array.from(document.querySelectorAll('#turns-table tr.agg td')).map(td => td.textContent);"
    )
    assert cells[5:17] == ["-"] * 12  # no latency is 0


def test_the_transport_comparison_reads_at_a_glance(browser: Any, runs: dict[str, Path], tmp_path: Path) -> None:
    how = Judging(0.0)
    arms = (("rest", "good"), ("grpc", "forgetful"), ("amqp", "dead"))
    loaded = [round_run(name, name, 1, load_run(runs[folder]), None, how) for name, folder in arms]
    comparison = compare("comparison", [(name, name) for name, _ in arms], loaded, how)
    comparison.notes.append("three runs")
    page = tmp_path / "comparison.html"
    page.write_text(to_html(comparison), encoding="utf-8")
    m = _check_page(browser, page, "comparison", tmp_path)
    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('#comparison-table tbody tr'))"
        ".map(tr => Array.from(tr.children).map(td => td.textContent));"
    )
    assert [r[0] for r in rows] == ["rest", "grpc", "amqp"]
    # the dead run: no latency, every turn failed (its interval on a line of its own: textContent runs them on)
    assert rows[2][3:10] == ["-"] * 7 and rows[2][11] == "100.00%100.00%-100.00%"
    assert rows[1][13:] == ["2", "1.20", "1.20"]  # outages, recovery max and p50
    assert len(m["plots"]) == 6  # latency bars, three distributions, latency over time (none for the dead run)
