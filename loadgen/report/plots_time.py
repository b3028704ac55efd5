"""Over-time plots: latency, throughput, generator lag and failures per interval, downsampled for display.

A run of any length gives at most :data:`DISPLAY_POINTS` points per line (:func:`loadgen.analysis.downsample.envelope`):
consecutive intervals are grouped into buckets, each drawn at its last interval's end with the mean of its values,
and a band from the bucket's lowest to its highest interval, so the worst interval of a night is still on the page
(failures are summed per bucket instead). A run no longer than the budget keeps every interval and draws no band.

Outages (``summary.json`` ``outages``: when the clients saw a transport fail and come back; one still open at the
end runs to the end of the run) and the server's injected faults (``faults``; an instant one, with no end, is a
dotted line) are shaded on every over-time plot, behind the data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.colors import qualitative

from loadgen.analysis.downsample import Bucket, envelope
from loadgen.metrics.histograms import Metric
from loadgen.report.plots import layout
from loadgen.report.rundata import RunData
from loadgen.report.timeline import Timeline

#: Points per line at most, whatever the run's length.
DISPLAY_POINTS = 240
X_TITLE = "seconds since start (interval end)"
OUTAGE_FILL = "rgba(214, 39, 40, 0.14)"
FAULT_FILL = "rgba(120, 120, 120, 0.18)"
PALETTE: tuple[str, ...] = tuple(qualitative.Plotly)


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


class _Colors:
    def __init__(self) -> None:
        self._n = 0

    def next(self) -> str:
        color = PALETTE[self._n % len(PALETTE)]
        self._n += 1
        return color


def buckets_of(
    x: Sequence[float], values: Sequence[float | None], pick: Callable[[list[float]], float] | None = None
) -> list[Bucket]:
    return envelope(x, values, DISPLAY_POINTS, pick=pick)


def line_traces(
    x: Sequence[float],
    values: Sequence[float | None],
    name: str,
    color: str,
    *,
    band: bool = True,
    pick: Callable[[list[float]], float] | None = None,
    yaxis: str | None = None,
) -> list[go.Scatter]:
    """A downsampled line, with its min..max band (when a bucket holds more than one interval)."""
    buckets = buckets_of(x, values, pick) if values else []
    if not buckets:
        return []
    xs = [b.end for b in buckets]
    extra: dict[str, Any] = {"yaxis": yaxis} if yaxis else {}
    traces = []
    if band and any(b.points > 1 for b in buckets):
        edge = {"width": 0, "color": color}
        traces.append(
            go.Scatter(x=xs, y=[b.low for b in buckets], mode="lines", line=edge, hoverinfo="skip",
                       showlegend=False, legendgroup=name, **extra)
        )  # fmt: skip
        traces.append(
            go.Scatter(x=xs, y=[b.high for b in buckets], mode="lines", line=edge, fill="tonexty",
                       fillcolor=_rgba(color, 0.18), name=f"{name} (min-max)", legendgroup=name,
                       hovertemplate="%{y:.3f} (highest interval)<extra>" + name + "</extra>", **extra)
        )  # fmt: skip
    traces.append(
        go.Scatter(
            x=xs,
            y=[b.value for b in buckets],
            mode="lines" if len(buckets) > 60 else "lines+markers",
            line={"color": color},
            name=name,
            legendgroup=name,
            customdata=[b.points for b in buckets],
            hovertemplate="%{y:.3f} (%{customdata} interval(s))<extra>" + name + "</extra>",
            **extra,
        )
    )
    return traces


def event_shapes(data: RunData, transports: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Shaded spans: each outage of the given transports (all when None) and each fault of the server."""
    summary = data.summary
    end_of_run = data.duration_s or None
    shapes: list[dict[str, Any]] = []
    named: set[str] = set()

    def span(x0: Any, x1: Any, fill: str, name: str) -> None:
        if x0 is None:
            return
        x1 = x1 if x1 is not None else end_of_run
        if x1 is None:
            return
        shapes.append(
            {"type": "rect", "xref": "x", "yref": "paper", "x0": float(x0), "x1": float(x1), "y0": 0, "y1": 1,
             "fillcolor": fill, "line": {"width": 0}, "layer": "below", "name": name, "legendgroup": name,
             "showlegend": name not in named}
        )  # fmt: skip
        named.add(name)

    for outage in summary.get("outages") or []:
        if transports is None or outage.get("transport") in transports:
            span(outage.get("start_s"), outage.get("end_s"), OUTAGE_FILL, f"outage ({outage.get('transport')})")
    for fault in summary.get("faults") or []:
        name = f"server fault: {fault.get('kind')}"
        if fault.get("end_s") is None and fault.get("start_s") is not None:  # an instant fault: a line
            x = float(fault["start_s"])
            shapes.append(
                {"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1, "layer": "below",
                 "line": {"width": 2, "dash": "dot", "color": "rgba(90, 90, 90, 0.8)"}, "name": name,
                 "legendgroup": name, "showlegend": name not in named}
            )  # fmt: skip
            named.add(name)
            continue
        span(fault.get("start_s"), fault.get("end_s"), FAULT_FILL, name)
    return shapes


def _time_layout(data: RunData, title: str, y_title: str, transports: Sequence[str] | None = None, **extra: Any) -> Any:
    return layout(
        title,
        xaxis={"title": {"text": X_TITLE}, "automargin": True},
        yaxis={"title": {"text": y_title}, "rangemode": "tozero", "automargin": True},
        shapes=event_shapes(data, transports),
        **extra,
    )


def latency_over_time(data: RunData, tl: Timeline, transports: Sequence[str] | None = None) -> go.Figure | None:
    traces: list[go.Scatter] = []
    colors = _Colors()
    names = list(transports if transports is not None else data.transports())
    single = transports is not None and len(names) == 1
    for transport in names:
        for metric in (Metric.E2E, Metric.TTFT):
            for stat in ("p50", "p99"):
                values = tl.latency.get((transport, metric, stat), [])
                label = f"{metric} {stat}" if single else f"{transport} {metric} {stat}"
                traces.extend(line_traces(tl.x, values, label, colors.next(), band=stat == "p99"))
    if not traces:
        return None
    title = "Latency over time" if transports is None else f"{', '.join(names)}: latency over time"
    return go.Figure(data=traces, layout=_time_layout(data, title, "latency (ms)", transports))


def throughput_over_time(data: RunData, tl: Timeline) -> go.Figure | None:
    if not len(tl):
        return None
    colors = _Colors()
    traces: list[go.Scatter] = []
    for transport in data.transports():
        turns = [n / length if length else None for n, length in zip(tl.turns[transport], tl.lengths, strict=True)]
        tokens = [
            n / length if length else None for n, length in zip(tl.output_tokens[transport], tl.lengths, strict=True)
        ]
        traces.extend(line_traces(tl.x, turns, f"{transport} turns/s", colors.next()))
        traces.extend(line_traces(tl.x, tokens, f"{transport} output tokens/s", colors.next(), band=False, yaxis="y2"))
    if not traces:
        return None
    y2 = {"title": {"text": "output tokens/s"}, "overlaying": "y", "side": "right", "rangemode": "tozero",
          "automargin": True}  # fmt: skip
    return go.Figure(data=traces, layout=_time_layout(data, "Throughput over time", "turns/s", yaxis2=y2))


def generator_lag_over_time(data: RunData, tl: Timeline) -> go.Figure | None:
    if not any(v is not None for v in tl.lag.get("p50", [])):
        return None
    colors = _Colors()
    traces = [
        *line_traces(tl.x, tl.lag["p50"], "p50", colors.next(), band=False),
        *line_traces(tl.x, tl.lag["p99"], "p99", colors.next()),
        *line_traces(tl.x, tl.lag["max"], "max", colors.next(), band=False, pick=max),
    ]
    return go.Figure(data=traces, layout=_time_layout(data, "Load generator lag over time", "lag (ms)"))


def failures_over_time(data: RunData, tl: Timeline) -> go.Figure | None:
    traces = []
    per_bucket = ""
    for (transport, kind), counts in sorted(tl.failures.items()):
        if not any(counts):
            continue
        buckets = buckets_of(tl.x, counts, pick=sum)
        if any(b.points > 1 for b in buckets):
            per_bucket = f" (summed over {buckets[0].points} intervals)"
        traces.append(go.Bar(x=[b.end for b in buckets], y=[b.value for b in buckets], name=f"{transport} {kind}"))
    if not traces:
        return None
    return go.Figure(
        data=traces, layout=_time_layout(data, "Failed turns over time", "failed turns" + per_bucket, barmode="stack")
    )
