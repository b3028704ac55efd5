"""``comparison.html``: the transport comparison on one page, tables first, then the plots side by side.

Tables: the seed's (average and p95 latency, max turns/s within the SLO, error rate, recovery time), every figure
with its 95% interval, where the time goes (the timing floor, what the generator adds above it, client and server
CPU per turn), the verdicts, and every round. Plots: latency by arm with the intervals as error bars, the TTFT
split into floor and above-floor, CPU per turn on each side, the HDR percentile distributions of each arm's kept
rounds merged (one line per arm), and latency over time of each arm's first kept round.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from loadgen.metrics.histograms import Metric, TrackedHistogram
from loadgen.report import plots, plots_time
from loadgen.report.html import figure_div, page
from loadgen.report.tables import esc, table
from loadgen.report.timeline import build_timeline
from loadgen.report.transports import (
    COLUMNS,
    HEADLINE,
    ROUND_COLUMNS,
    TIME,
    Comparison,
    cell,
    method_note,
    verdict_lines,
)
from loadgen.report.transports_stats import ArmResult

_CI_STYLE = "color:#666;font-size:0.85em;white-space:nowrap"


def _cell(key: str, row: dict[str, Any]) -> str:
    """A figure, its 95% interval on a line of its own below it (the tables stay narrow enough for 1,400 px)."""
    text = cell(key, row.get(key))
    low, high = row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
    if low is None or high is None or row.get(key) is None:
        return esc(text)
    sep = " to " if float(low) < 0 else "-"
    return (
        f'{esc(text)}<br><span class="ci" style="{_CI_STYLE}">{esc(cell(key, low))}{sep}{esc(cell(key, high))}</span>'
    )


def _table(table_id: str, columns: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]], left: int = 1) -> str:
    cells = [("", [_cell(k, r) for k, _ in columns]) for r in rows]
    return table(table_id, [t for _, t in columns], cells, left=left)


def _error_bars(rows: Sequence[dict[str, Any]], key: str) -> dict[str, Any]:
    def gap(row: dict[str, Any], side: str) -> float | None:
        value, bound = row.get(key), row.get(f"{key}_ci_{side}")
        return None if value is None or bound is None else abs(float(bound) - float(value))

    return {
        "type": "data",
        "symmetric": False,
        "array": [gap(r, "high") for r in rows],
        "arrayminus": [gap(r, "low") for r in rows],
    }


def _bars(rows: Sequence[dict[str, Any]]) -> go.Figure | None:
    if not any(r.get("e2e_avg_ms") is not None or r.get("ttft_p50_ms") is not None for r in rows):
        return None
    names = [r["transport"] for r in rows]
    traces = [
        go.Bar(x=names, y=[r.get(key) for r in rows], name=label, error_y=_error_bars(rows, key))  # None: no bar
        for key, label in (
            ("e2e_avg_ms", "e2e avg"),
            ("e2e_p50_ms", "e2e p50"),
            ("e2e_p95_ms", "e2e p95"),
            ("e2e_p99_ms", "e2e p99"),
            ("ttft_p50_ms", "TTFT p50"),
            ("ttft_p99_ms", "TTFT p99"),
        )
    ]
    title = "Latency by transport (bars: median over rounds; whiskers: 95% interval)"
    return go.Figure(data=traces, layout=plots.layout(title, barmode="group", yaxis={"title": {"text": "ms"}}))


def _time_split(rows: Sequence[dict[str, Any]]) -> go.Figure | None:
    """TTFT p50 as the floor (a bare client: wire + server) plus what the generator adds above it."""
    shown = [r for r in rows if r.get("floor_ttft_p50_ms") is not None and r.get("ttft_p50_ms") is not None]
    if not shown:
        return None
    names = [r["transport"] for r in shown]
    traces = [
        go.Bar(x=names, y=[r["floor_ttft_p50_ms"] for r in shown], name="floor: wire + server (bare client)"),
        go.Bar(
            x=names,
            y=[r["ttft_above_floor_ms"] for r in shown],
            name="above the floor: the load generator",
            error_y=_error_bars(shown, "ttft_above_floor_ms"),
        ),
    ]
    return go.Figure(
        data=traces, layout=plots.layout("Where TTFT p50 goes", barmode="relative", yaxis={"title": {"text": "ms"}})
    )


def _cpu(rows: Sequence[dict[str, Any]]) -> go.Figure | None:
    keys = (("client_cpu_ms_per_turn", "client (Locust) per turn"), ("server_cpu_ms_per_turn", "server per request"))
    if not any(r.get(k) is not None for r in rows for k, _ in keys):
        return None
    names = [r["transport"] for r in rows]
    traces = [
        go.Bar(x=names, y=[r.get(k) for r in rows], name=label, error_y=_error_bars(rows, k)) for k, label in keys
    ]
    return go.Figure(
        data=traces, layout=plots.layout("CPU per turn", barmode="group", yaxis={"title": {"text": "CPU ms"}})
    )


def _merged(arm: ArmResult, metric: Metric) -> TrackedHistogram:
    out = TrackedHistogram(metric)
    for run in arm.kept:
        hist = run.hist(metric)
        if hist is not None:
            out.add(hist)
    return out


def _distribution(arms: Sequence[ArmResult], metric: Metric) -> go.Figure | None:
    return plots.distribution_figure(plots.METRIC_TITLES[metric], [(a.arm, _merged(a, metric)) for a in arms])


def _over_time(arm: ArmResult, warmup_s: float) -> go.Figure | None:
    """Latency over time of the arm's first kept round, its warm-up shaded."""
    if not arm.kept:
        return None
    run = arm.kept[0]
    fig = plots_time.latency_over_time(run.data, build_timeline(run.data), [arm.transport])
    if fig is not None:
        fig.layout.title.text = f"{arm.arm}, round {run.round}: latency over time"
        if warmup_s > 0:
            fig.add_vrect(x0=0, x1=warmup_s, fillcolor="#888", opacity=0.12, line_width=0, name="warm-up")
    return fig


def _grid(items: Sequence[str]) -> str:
    return '<div class="grid">' + "".join(items) + "</div>"


def _sweep_link(comparison: Comparison, out_dir: Path | None) -> list[str]:
    page_path = comparison.meta.get("sweep_page")
    if not page_path or out_dir is None:
        return []
    href = os.path.relpath(page_path, out_dir)
    return [f'<p>The sweep these loads come from: <a href="{esc(href)}">{esc(href)}</a></p>']


def to_html(comparison: Comparison, out_dir: Path | None = None) -> str:
    rows = comparison.rows
    body = [f"<h1>{esc(comparison.title)}</h1>"]
    for note in comparison.notes:
        alarm = note.startswith(("NOTHING TO JUDGE", "MISSING", "INTERRUPTED"))
        body.append(f'<div class="status bad">{esc(note)}</div>' if alarm else f"<p>{esc(note)}</p>")
    body.append(f"<p>{esc(method_note(comparison))}</p>")
    body.append("<h2>Per transport</h2>")
    body.append(_table("headline-table", HEADLINE, rows))
    body.extend(_sweep_link(comparison, out_dir))
    body.append("<h2>Every figure (median over kept rounds, 95% interval)</h2>")
    body.append(_table("comparison-table", COLUMNS, rows, left=2))
    if any(r["outages"] is not None for r in rows):
        body.append(
            "<p>Recovery: after an outage (failed turns after a success, until a success), how long turns sent "
            "after the service came back still failed. - = the run has no recovery figures.</p>"
        )
    body.append("<h2>Where the time goes</h2>")
    body.append(_table("time-table", TIME, rows))
    verdicts = verdict_lines(comparison.diffs)
    if verdicts:
        body.append("<h2>Differences</h2>")
        body.append('<ul id="verdicts">' + "".join(f"<li>{esc(v)}</li>" for v in verdicts) + "</ul>")
    body.append("<h2>Side by side</h2>")
    figures = [
        figure_div(_bars(rows), "cmp-bars", "no data"),
        *(figure_div(f, i, "") for f, i in ((_time_split(rows), "cmp-time-split"), (_cpu(rows), "cmp-cpu")) if f),
    ]
    body.append(_grid(figures))
    body.append("<h2>Percentile distributions (HDR), one line per transport</h2>")
    body.append(
        _grid(
            [
                figure_div(_distribution(comparison.arms, m), f"cmp-dist-{m}", f"no {m} samples")
                for m in (Metric.E2E, Metric.TTFT, Metric.ITL)
            ]
        )
    )
    body.append(
        _grid(
            [
                figure_div(
                    _over_time(a, float(comparison.meta.get("warmup_s") or 0.0)),
                    f"cmp-time-{a.arm}",
                    f"{a.arm}: no interval data",
                )
                for a in comparison.arms
            ]
        )
    )
    body.append("<h2>Rounds</h2>")
    body.append(_table("rounds-table", ROUND_COLUMNS, comparison.round_rows(), left=4))
    return page(comparison.title, body)


__all__ = ["to_html"]
