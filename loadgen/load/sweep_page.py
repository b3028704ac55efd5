"""``sweep.html``: the sweep on one page: the headline table, then latency against throughput per transport side by
side (the hockey stick: flat while the service keeps up, rising steeply past its capacity), then every step.

Each plot has one point per step at (measured turns/s, latency): e2e p50 and p99 as two lines, each point labelled
with its load, the steps that did not hold drawn hollow, and the knee marked. The plots share the shared report
layout (:func:`loadgen.report.plots.layout`) and the page is self-contained (:func:`loadgen.report.html.page`).
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from loadgen.load.sweep_out import HEADLINE, STEP_HEADER, criteria, headline_rows, load_unit, step_row
from loadgen.load.sweep_runner import Sweep
from loadgen.load.sweep_step import StepResult
from loadgen.report.html import figure_div, page
from loadgen.report.plots import layout
from loadgen.report.tables import esc, table

_LINES = (("p50", "e2e p50", "#1f77b4"), ("p99", "e2e p99", "#d62728"))


def curve(sweep: Sweep, transport: str) -> go.Figure | None:
    """Latency against throughput for ``transport``'s steps, or None when no step measured a turn."""
    steps = [s for s in sweep.of(transport) if s.turns and s.e2e_ms.get("p50") is not None]
    if not steps:
        return None
    unit = load_unit(sweep.plan.mode)
    fig = go.Figure()
    for stat, name, color in _LINES:
        fig.add_trace(
            go.Scatter(
                x=[round(s.turns_per_s, 3) for s in steps],
                y=[s.e2e_ms.get(stat) for s in steps],
                mode="lines+markers+text",
                name=name,
                text=[f"{s.load:g}" for s in steps],
                textposition="top left",
                line={"color": color},
                marker={
                    "size": 9,
                    "color": [color if s.holds else "white" for s in steps],
                    "line": {"color": color, "width": 2},
                },
                hovertemplate=f"%{{text}} {unit}<br>%{{x:.2f}} turns/s<br>{name} %{{y:.1f}} ms<extra></extra>",
            )
        )
    knee = sweep.knee(transport).knee
    if knee is not None:
        fig.add_vline(x=knee.turns_per_s, line_dash="dash", line_color="#2e9e44")
        fig.add_annotation(
            x=knee.turns_per_s, y=1, yref="paper", text=f"knee: {knee.load:g} {unit}", showarrow=False, xanchor="left"
        )
    fig.update_layout(
        **layout(
            f"{transport}: e2e latency against throughput (hollow: did not hold)",
            xaxis={"title": {"text": "turns/s (measured)"}, "rangemode": "tozero"},
            yaxis={"title": {"text": "e2e latency (ms)"}, "rangemode": "tozero"},
        )
    )
    return fig


def _step_table(transport: str, steps: Sequence[StepResult]) -> str:
    rows = [("" if s.holds else "bad", [esc(c) for c in step_row(s)]) for s in steps]
    return table(f"steps-{transport}", STEP_HEADER, rows)


def to_html(sweep: Sweep) -> str:
    plan = sweep.plan
    title = f"chat-loadgen sweep {plan.sweep_id}"
    body = [f"<h1>{esc(title)}</h1>"]
    if sweep.interrupted:
        body.append('<div class="status bad">INTERRUPTED: the sweep was stopped; these are the steps that ran.</div>')
    body.append(f"<p>{esc(criteria(sweep))}</p>")
    body.append("<h2>Per transport</h2>")
    body.append(table("sweep-table", HEADLINE, [("", [esc(c) for c in r]) for r in headline_rows(sweep)]))
    transports = [t for t in plan.transports if t in sweep.steps]
    body.append("<h2>Latency against throughput</h2>")
    plots = [figure_div(curve(sweep, t), f"sweep-{t}", f"{t}: no step measured a turn") for t in transports]
    body.append('<div class="grid">' + "".join(plots) + "</div>")
    for transport in transports:
        body.append(f"<h2>{esc(transport)}: every step ({esc(load_unit(plan.mode))})</h2>")
        body.append(_step_table(transport, sweep.of(transport)))
    return page(title, body)


__all__ = ["curve", "to_html"]
