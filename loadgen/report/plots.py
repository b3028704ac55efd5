"""Plotly figures drawn from the run's HDR histograms and interval snapshots (no hand-made geometry).

Each builder returns a :class:`plotly.graph_objects.Figure`, or ``None`` when the run has no data for it
(the page then says so instead of showing an empty frame).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from loadgen.metrics.histograms import Metric, TrackedHistogram
from loadgen.metrics.keys import ALL, CONTEXT_BUCKET_ORDER, ContextMetric, Count, SeriesKey, Total
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
_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "height": 440,
    "margin": {"l": 60, "r": 20, "t": 50, "b": 40},
    "legend": {"orientation": "h", "y": -0.22, "yanchor": "top"},
}


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    return {**_LAYOUT, "title": {"text": title}, **extra}


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
        layout=_layout(
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
    return distribution_figure(f"{METRIC_TITLES.get(metric, metric)}: percentile distribution by transport", curves)


def distribution_by_turn(data: RunData, metric: str) -> go.Figure | None:
    """One line per turn index (all dialogues of that turn merged), per transport."""
    transports = data.transports()
    turns = sorted({(t, n) for t, _, n in data.turn_keys()})
    curves = []
    for transport, turn in turns:
        label = f"turn {turn}" if len(transports) == 1 else f"{transport} turn {turn}"
        curves.append((label, data.histogram(metric, transport=transport, turn=turn)))
    return distribution_figure(f"{METRIC_TITLES.get(metric, metric)}: percentile distribution by turn", curves)


def _offsets(data: RunData) -> list[float]:
    base = data.started_at if data.started_at is not None else (data.intervals[0].start if data.intervals else 0.0)
    return [round(i.end - base, 3) for i in data.intervals]


def _interval_quantile(data: RunData, key: SeriesKey, qs: Sequence[float]) -> dict[float, list[float | None]]:
    out: dict[float, list[float | None]] = {q: [] for q in qs}
    for interval in data.intervals:
        hist = interval.batch.histograms.get(key)
        if hist is None or hist.count == 0:
            for q in qs:
                out[q].append(None)
            continue
        values = hist.quantiles(qs)
        for q in qs:
            out[q].append(values[q] / 1000.0)
    return out


def latency_over_time(data: RunData) -> go.Figure | None:
    if not data.intervals:
        return None
    xs = _offsets(data)
    traces = []
    for transport in data.transports():
        for metric in (Metric.E2E, Metric.TTFT):
            series = _interval_quantile(data, SeriesKey(transport, ALL, 0, metric), (0.5, 0.99))
            for q, name in ((0.5, "p50"), (0.99, "p99")):
                if any(v is not None for v in series[q]):
                    traces.append(
                        go.Scatter(x=xs, y=series[q], mode="lines+markers", name=f"{transport} {metric} {name}")
                    )
    if not traces:
        return None
    return go.Figure(
        data=traces,
        layout=_layout(
            "Latency over time (per interval)",
            xaxis={"title": {"text": "seconds since start (interval end)"}},
            yaxis={"title": {"text": "latency (ms)"}, "rangemode": "tozero"},
        ),
    )


def throughput_over_time(data: RunData) -> go.Figure | None:
    if not data.intervals:
        return None
    xs = _offsets(data)
    traces = []
    for transport in data.transports():
        turns = []
        tokens = []
        for interval in data.intervals:
            length = interval.length_s or 1.0
            aggregate = SeriesKey.series(transport)
            turns.append(round(interval.batch.counter(aggregate.with_metric(Count.TURNS)) / length, 3))
            tokens.append(round(interval.batch.counter(aggregate.with_metric(Total.OUTPUT_TOKENS)) / length, 3))
        traces.append(go.Scatter(x=xs, y=turns, mode="lines+markers", name=f"{transport} turns/s"))
        traces.append(go.Scatter(x=xs, y=tokens, mode="lines+markers", name=f"{transport} output tokens/s", yaxis="y2"))
    return go.Figure(
        data=traces,
        layout=_layout(
            "Throughput over time",
            xaxis={"title": {"text": "seconds since start (interval end)"}},
            yaxis={"title": {"text": "turns/s"}, "rangemode": "tozero"},
            yaxis2={"title": {"text": "output tokens/s"}, "overlaying": "y", "side": "right", "rangemode": "tozero"},
        ),
    )


def generator_lag_over_time(data: RunData) -> go.Figure | None:
    if not data.intervals:
        return None
    key = SeriesKey(ALL, ALL, 0, Metric.GENERATOR_LAG)
    series = _interval_quantile(data, key, (0.5, 0.99, 1.0))
    if not any(v is not None for v in series[0.5]):
        return None
    xs = _offsets(data)
    traces = [
        go.Scatter(x=xs, y=series[q], mode="lines+markers", name=name)
        for q, name in ((0.5, "p50"), (0.99, "p99"), (1.0, "max"))
    ]
    return go.Figure(
        data=traces,
        layout=_layout(
            "Load generator lag over time",
            xaxis={"title": {"text": "seconds since start (interval end)"}},
            yaxis={"title": {"text": "lag (ms)"}, "rangemode": "tozero"},
        ),
    )


def failures_over_time(data: RunData) -> go.Figure | None:
    if not data.intervals:
        return None
    xs = _offsets(data)
    traces = []
    for transport in data.transports():
        for kind, count in (("transport", Count.TRANSPORT_FAILURES), ("retention", Count.RETENTION_FAILURES)):
            key = SeriesKey.series(transport).with_metric(count)
            ys = [i.batch.counts.get(key, 0) for i in data.intervals]
            if any(ys):
                traces.append(go.Bar(x=xs, y=ys, name=f"{transport} {kind} failures"))
    if not traces:
        return None
    return go.Figure(
        data=traces,
        layout=_layout(
            "Failures over time (per interval)",
            barmode="stack",
            xaxis={"title": {"text": "seconds since start (interval end)"}},
            yaxis={"title": {"text": "failed turns"}},
        ),
    )


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
        layout=_layout(
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
        layout=_layout(
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
    transports = sorted(data.summary.get("transports", {}).items())
    if not transports:
        return None
    names = [t for t, _ in transports]
    per_user = [agg.get("output_tokens_per_s_per_user", 0.0) for _, agg in transports]
    total = [agg.get("output_tokens_per_s", 0.0) for _, agg in transports]
    if not any(per_user) and not any(total):
        return None
    turns = [r for r in data.summary.get("turns", []) if r.get("output_tokens_per_s_per_user")]
    traces = [
        go.Bar(x=names, y=per_user, name="per user, while a reply streams (tokens/s)"),
        go.Bar(x=names, y=total, name="in total, all users (tokens/s)"),
    ]
    if turns:
        traces.append(
            go.Scatter(
                x=[f"{r['transport']} {r['dialogue']}:turn{r['turn']}" for r in turns],
                y=[r["output_tokens_per_s_per_user"] for r in turns],
                mode="markers",
                name="per user, by turn (tokens/s)",
                xaxis="x2",
            )
        )
    layout = _layout(
        "Output tokens per second, per user and in total",
        barmode="group",
        yaxis={"title": {"text": "tokens/s"}},
        xaxis={"domain": [0, 0.3] if turns else [0, 1]},
    )
    if turns:
        layout["xaxis2"] = {"domain": [0.38, 1], "anchor": "y", "tickangle": -45, "automargin": True}
        layout["height"] = 480
    return go.Figure(data=traces, layout=layout)


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
                textposition="auto",
                name=transport,
            )
        )
    if not traces:
        return None
    return go.Figure(
        data=traces,
        layout=_layout(
            "Context retention rate by turn (turns that probe a planted fact)",
            barmode="group",
            yaxis={"title": {"text": "retained (%)"}, "range": [0, 105]},
            xaxis={"tickangle": -30},
        ),
    )
