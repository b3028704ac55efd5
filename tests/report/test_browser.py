"""The HTML reports render in a real browser (headless Chromium): every plot is drawn with its traces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from report_helpers import drawn_plots, make_run

from loadgen.report.files import write_reports
from loadgen.report.transports_build import Judging, from_folders
from loadgen.report.transports_page import to_html

pytestmark = pytest.mark.browser


def test_run_report_renders_every_plot(browser: Any, synthetic_run: Path) -> None:
    write_reports(synthetic_run)
    html = (synthetic_run / "report.html").read_text()
    expected = html.count('class="plotly-graph-div"')
    assert expected >= 12  # distributions, over time, failures, context, tokens, retention
    plots = drawn_plots(browser, synthetic_run / "report.html", expected)
    assert len(plots) == expected, plots
    for plot in plots:
        assert plot["svgs"] > 0, plot
        assert plot["traces"] > 0 and plot["data"] > 0, plot
    ids = {p["id"] for p in plots}
    assert {"dist-transport-e2e", "dist-transport-ttft", "dist-transport-itl", "retention-by-turn"} <= ids
    # the HDR distribution axis goes out to 99.999%
    ticks = browser.execute_script(
        "return Array.from(document.querySelectorAll('#dist-transport-e2e .xtick text')).map(t => t.textContent);"
    )
    assert "99.999%" in ticks and "99%" in ticks and "50%" in ticks
    assert (
        browser.execute_script("return document.querySelectorAll('#turns-table tbody tr').length;") == 2 * (5 + 3) + 2
    )


def test_transport_comparison_page_renders(browser: Any, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    folders = [
        make_run(reports, "cmp-rest", transports=("rest",), intervals=2),
        make_run(reports, "cmp-grpc", transports=("grpc",), intervals=2, scale=1.3),
    ]
    page = tmp_path / "comparison.html"
    page.write_text(to_html(from_folders(folders, "comparison", Judging(0.0))), encoding="utf-8")
    expected = page.read_text().count('class="plotly-graph-div"')
    plots = drawn_plots(browser, page, expected)
    assert len(plots) == expected == 6
    assert all(p["svgs"] and p["traces"] for p in plots), plots
