"""Plotly figures drawn from the run's HDR histograms and summary (no hand-made geometry); the over-time plots
are in :mod:`loadgen.report.plots_time`.

Each builder returns a :class:`plotly.graph_objects.Figure`, or ``None`` when the run has no data for it
(the page then says so instead of showing an empty frame). Every figure shares :func:`layout`: the title sits
low in a top margin that leaves Plotly's toolbar a row of its own, the legend goes below the plot, and axes
grow their margins to fit their labels (nothing clipped).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from loadgen.metrics.histograms import Metric, TrackedHistogram
from loadgen.metrics.keys import CONTEXT_BUCKET_ORDER, ContextMetric, SeriesKey
from loadgen.report.rundata import RunData

#: The HDR "percentile distribution" x axis: 1/(1-p), log scale, out to 99.999%.
PERCENTILE_TICKS: tuple[tuple[float, str], ...] = (
    (2.0, "50%"),
    (10.0, "90%"),
    (100.0, "99%"),
    (1_000.0, "99.9%"),
    (10_000.0, "99.99%"),
    (100_000.0, "99.999%"),
)
MAX_X = 100_000.0
POINTS_PER_DECADE = 24
METRIC_TITLES: dict[str, str] = {
    Metric.E2E: "end-to-end latency",
    Metric.TTFT: "time to first token",
    Metric.ITL: "inter-token latency",
    Metric.SCHEDULE_LAG: "schedule lag",
    Metric.GENERATOR_LAG: "generator lag",
}
#: Above this many lines, the "by turn" plots merge each turn index over the dialogues (and say so).
MAX_TURN_CURVES = 12
_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "height": 440,
    "margin": {"l": 60, "r": 30, "t": 78, "b": 40},
    "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": 0, "yref": "container", "yanchor": "bottom"},
}


def layout(title: str, **extra: Any) -> dict[str, Any]:
    """The shared layout. The title's baseline is 12 px above the plot area, in a 78 px margin whose top row
    is the toolbar's: the two never overlap."""
    axes = {name: {"automargin": True, **extra.pop(name, {})} for name in ("xaxis", "yaxis")}
    title_spec = {
        "text": title,
        "x": 0,
        "xref": "paper",
        "xanchor": "left",
        "y": 1,
        "yref": "paper",
        "yanchor": "bottom",
        "pad": {"b": 12},
        "font": {"size": 15},
    }
    return {**_LAYOUT, "title": title_spec, **axes, **extra}


def percentile_curve(hist: TrackedHistogram) -> tuple[list[float], list[float], list[float]]:
    """Points of the HDR percentile distribution: x = 1/(1-p), latency in ms, and p (0..100).

    Read in one pass over the histogram. The curve stops where the data stops: with N samples the last point
    is x = N (percentile 1 - 1/N), drawn at the histogram's max.
    """
    count = hist.count
    if count == 0:
        return [], [], []
    limit = min(MAX_X, float(count))
    xs: list[float] = []
    steps = int(math.log10(MAX_X) * POINTS_PER_DECADE)
    for i in range(steps + 1):
        x = 10 ** (i / POINTS_PER_DECADE)
        if x >= limit:
            break
        xs.append(x)
    quantiles = [1.0 - 1.0 / x for x in xs]
    values = hist.quantiles(quantiles)
    ys = [values[q] / 1000.0 for q in quantiles]
    pct = [q * 100.0 for q in quantiles]
    if limit > 1.0 or not xs:
        xs.append(limit)
        ys.append(hist.max() / 1000.0)
        pct.append(100.0 * (1.0 - 1.0 / limit))
    return xs, ys, pct


def distribution_figure(title: str, curves: Sequence[tuple[str, TrackedHistogram]]) -> go.Figure | None:
    traces = []
    for name, hist in curves:
        xs, ys, pct = percentile_curve(hist)
        if not xs:
            continue
        traces.append(
            go.Scatter(
                x=xs,
                y=ys,
                customdata=pct,
                mode="lines" if len(xs) > 2 else "lines+markers",
                line={"shape": "hv"},
                name=f"{name} (n={hist.count})",
                hovertemplate="p%{customdata:.4f}: %{y:.3f} ms<extra>" + name + "</extra>",
            )
        )
    if not traces:
        return None
    return go.Figure(
        data=traces,
        layout=layout(
            title,
            xaxis={
                "type": "log",
                "title": {"text": "percentile"},
                "tickvals": [t for t, _ in PERCENTILE_TICKS],
                "ticktext": [label for _, label in PERCENTILE_TICKS],
                "range": [0, math.log10(MAX_X)],
                "tickangle": 0,
            },
            yaxis={"title": {"text": "latency (ms)"}, "rangemode": "tozero"},
        ),
    )


def distribution_by_transport(data: RunData, metric: str) -> go.Figure | None:
    curves = [(t, data.histogram(metric, transport=t)) for t in data.transports()]
    return distribution_figure(f"{METRIC_TITLES.get(metric, metric)} by transport", curves)


def turn_curves(data: RunData) -> tuple[list[tuple[str, str | None, int]], bool]:
    """The lines of a "by turn" plot: (transport, dialogue, turn) each, and whether turn k of different
    dialogues is merged (dialogue None). One line per dialogue's turn while that is at most
    :data:`MAX_TURN_CURVES` lines; more than that merges each turn index over the dialogues."""
    keys = data.turn_keys()
    if len(keys) <= MAX_TURN_CURVES:
        return [(t, d, n) for t, d, n in keys], False
    dialogues = {d for _, d, _ in keys}
    return sorted({(t, None, n) for t, _, n in keys}), len(dialogues) > 1


def distribution_by_turn(data: RunData, metric: str) -> go.Figure | None:
    """One line per dialogue and turn; or, with many, per turn index with the dialogues merged (labelled so)."""
    transports = data.transports()
    lines, pooled = turn_curves(data)
    curves = []
    for transport, dialogue, turn in lines:
        label = f"{dialogue}:turn{turn}" if dialogue is not None else f"turn {turn}, all dialogues"
        if len(transports) > 1:
            label = f"{transport} {label}"
        curves.append((label, data.histogram(metric, transport=transport, dialogue=dialogue, turn=turn)))
    title = f"{METRIC_TITLES.get(metric, metric)} by turn"
    if pooled:
        title += " (turn k of every dialogue merged)"
    return distribution_figure(title, curves)


def failures_by_reason(data: RunData) -> go.Figure | None:
    traces = []
    for transport, agg in sorted(data.summary.get("transports", {}).items()):
        reasons = sorted(agg.get("failure_reasons", {}).items(), key=lambda kv: (-kv[1], kv[0]))
        if not reasons:
            continue
        traces.append(
            go.Bar(
                x=[n for _, n in reasons],
                y=[_shorten(r) for r, _ in reasons],
                orientation="h",
                name=transport,
                hovertext=[r for r, _ in reasons],
            )
        )
    if not traces:
        return None
    return go.Figure(
        data=traces,
        layout=layout(
            "Failures by reason",
            xaxis={"title": {"text": "failed turns"}},
            yaxis={"automargin": True, "autorange": "reversed"},
            margin={"l": 200, "r": 20, "t": 50, "b": 50},
        ),
    )


def _shorten(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def latency_by_context(data: RunData) -> go.Figure | None:
    traces = []
    for transport in data.transports():
        for metric in (Metric.E2E, Metric.TTFT):
            for q, stat in ((0.5, "p50"), (0.99, "p99")):
                xs, ys, counts = [], [], []
                for bucket in CONTEXT_BUCKET_ORDER:
                    key = SeriesKey.series(transport).with_metric(ContextMetric(metric, bucket))
                    hist = data.batch.histograms.get(key)
                    if hist is None or hist.count == 0:
                        continue
                    xs.append(bucket)
                    ys.append(hist.quantiles([q])[q] / 1000.0)
                    counts.append(hist.count)
                if xs:
                    traces.append(
                        go.Bar(
                            x=xs,
                            y=ys,
                            name=f"{transport} {metric} {stat}",
                            customdata=counts,
                            hovertemplate="%{x}: %{y:.3f} ms (n=%{customdata})",
                        )
                    )
    if not traces:
        return None
    return go.Figure(
        data=traces,
        layout=layout(
            "Latency by context length (prompt tokens)",
            barmode="group",
            xaxis={
                "title": {"text": "prompt tokens"},
                "categoryorder": "array",
                "categoryarray": list(CONTEXT_BUCKET_ORDER),
            },
            yaxis={"title": {"text": "latency (ms)"}},
        ),
    )


def output_tokens_rate(data: RunData) -> go.Figure | None:
    """Per transport: a conversation's rate while its reply streams, and all users' together."""
    transports = sorted(data.summary.get("transports", {}).items())
    names = [t for t, _ in transports]
    per_user = [agg.get("output_tokens_per_s_per_user") or None for _, agg in transports]
    total = [agg.get("output_tokens_per_s") or None for _, agg in transports]
    if not any(per_user) and not any(total):
        return None
    traces = [
        go.Bar(x=names, y=per_user, name="per user, while a reply streams"),
        go.Bar(x=names, y=total, name="in total, all users"),
    ]
    return go.Figure(data=traces, layout=layout("Output tokens per second", barmode="group",
                                                yaxis={"title": {"text": "tokens/s"}}))  # fmt: skip


def output_tokens_by_turn(data: RunData) -> go.Figure | None:
    """Per dialogue and turn: one conversation's output rate while its reply streams (one trace per transport)."""
    traces = []
    for transport in data.transports():
        rows = [
            r for r in data.summary.get("turns", [])
            if r["transport"] == transport and r.get("output_tokens_per_s_per_user")
        ]  # fmt: skip
        if rows:
            traces.append(
                go.Bar(x=[f"{r['dialogue']}:turn{r['turn']}" for r in rows],
                       y=[r["output_tokens_per_s_per_user"] for r in rows], name=transport)
            )  # fmt: skip
    if not traces:
        return None
    return go.Figure(
        data=traces,
        layout=layout("Output tokens per second per user, by turn", barmode="group",
                      yaxis={"title": {"text": "tokens/s"}}, xaxis={"tickangle": -30}, **_side_legend(traces)),
    )  # fmt: skip


def _side_legend(traces: Sequence[Any]) -> dict[str, Any]:
    """A vertical legend right of the plot: category labels along x (rotated, long) stay clear of it."""
    return {"legend": {"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top"},
            "showlegend": len(traces) > 1}  # fmt: skip


def retention_by_turn(data: RunData) -> go.Figure | None:
    traces = []
    for transport in data.transports():
        rows = [
            r
            for r in data.summary.get("turns", [])
            if r["transport"] == transport and r.get("retention", {}).get("checked")
        ]
        if not rows:
            continue
        traces.append(
            go.Bar(
                x=[f"{r['dialogue']}:turn{r['turn']}" for r in rows],
                y=[round(100.0 * r["retention"]["passed"] / r["retention"]["checked"], 3) for r in rows],
                text=[f"{r['retention']['passed']}/{r['retention']['checked']}" for r in rows],
                textposition="outside",  # a 0% bar has no inside: "0/11" goes above it
                cliponaxis=False,
                name=transport,
            )
        )
    if not traces:
        return None
    return go.Figure(
        data=traces,
        layout=layout(
            "Context retention by turn (turns that probe a fact)",
            barmode="group",
            yaxis={"title": {"text": "retained (%)"}, "range": [0, 115], "tickvals": [0, 20, 40, 60, 80, 100]},
            xaxis={"tickangle": -30},
            **_side_legend(traces),
        ),
    )
