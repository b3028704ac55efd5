"""``report.html``: one self-contained page per run (plotly's JavaScript inlined, readable offline).

The page is deterministic for a given run folder: figure ids are fixed and nothing depends on the time
the report was generated. Its size does not grow with the run's length: the over-time plots are downsampled
to a fixed budget of points (:mod:`loadgen.report.plots_time`) and the per-window table has one row per window.
The header says how the run went first (:func:`loadgen.report.status.run_health`): a run whose users never
sent a turn, or whose every turn failed, says so in red.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from loadgen.metrics.histograms import Metric
from loadgen.report import plots, plots_time
from loadgen.report.rundata import RunData
from loadgen.report.status import run_health
from loadgen.report.tables import (
    drift_table,
    esc,
    intended_table,
    outages_table,
    recovery_line,
    slo_table,
    turns_table,
    windows_table,
)
from loadgen.report.timeline import build_timeline
from loadgen.report.tokens_table import tokens_section

__all__ = ["esc", "figure_div", "page", "render_report"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.8em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 2px 5px; text-align: right; }
td { white-space: nowrap; }
th { background: #f4f4f4; position: sticky; top: 0; vertical-align: bottom; max-width: 6.5em; }
td.l, th.l { text-align: left; }
tr.agg td { font-weight: 600; background: #fafafa; }
tr.bad td { background: #fdecea; } tr.fault td { color: #555; font-style: italic; }
.warn { background: #fff4e5; border-left: 4px solid #f0a020; padding: 0.5em 1em; margin: 0.5em 0; }
.status { padding: 0.6em 1em; margin: 0.5em 0 1em; font-weight: 600; border-left: 6px solid; }
.status.ok { background: #eaf6ec; border-color: #2e9e44; }
.status.warn { background: #fff4e5; border-color: #f0a020; }
.status.bad { background: #fdecea; border-color: #d62728; color: #8a1010; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 1em; }
.grid > div { min-width: 0; }
.scroll { overflow-x: auto; max-width: 100%; }
.empty { color: #888; font-style: italic; padding: 1em; border: 1px dashed #ccc; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 2px 1em; font-size: 0.9em; }
dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; overflow-wrap: anywhere; }
"""

_PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}


def figure_div(fig: go.Figure | None, div_id: str, empty_text: str) -> str:
    if fig is None:
        return f'<div class="empty" id="{esc(div_id)}-empty">{esc(empty_text)}</div>'
    body: str = pio.to_html(
        fig,
        include_plotlyjs=False,
        full_html=False,
        div_id=div_id,
        config=_PLOTLY_CONFIG,
        default_height="440px",
        validate=True,
    )
    return f'<div class="plot">{body}</div>'


def page(title: str, body: Sequence[str]) -> str:
    """A whole HTML document with plotly inlined once."""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f"<title>{esc(title)}</title>",
            f"<style>{_CSS}</style>",
            f'<script type="text/javascript">{get_plotlyjs()}</script>',
            "</head>",
            "<body>",
            *body,
            "</body>",
            "</html>",
            "",
        ]
    )


def _meta(summary: dict[str, Any]) -> str:
    run = summary.get("run", {})
    workers = summary.get("workers") or {}
    fields = [
        ("run id", run.get("id")),
        ("target", run.get("target")),
        ("transports", ", ".join(run.get("transports", []) or [])),
        ("users", run.get("users")),
        ("processes", run.get("processes")),
        ("workers", _workers(workers)),
        ("duration", f"{run.get('duration_s', 0)} s"),
        ("history mode", run.get("history_mode")),
        ("streaming", run.get("stream")),
        ("dialogues", ", ".join(run.get("dialogues", []) or [])),
        ("complete", run.get("complete")),
        ("command", run.get("command")),
    ]
    lag = summary.get("generator_lag_ms", {})
    if lag.get("count"):
        fields.append(("generator lag", f"p50 {lag['p50']} ms, p99 {lag['p99']} ms, max {lag['max']} ms"))
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in fields if v not in (None, ""))
    return f'<dl class="meta">{items}</dl>'


def _workers(workers: dict[str, Any]) -> str | None:
    if not workers:
        return None
    expected = workers.get("expected")
    text = f"{workers.get('reported')} reported" + (f" of {expected} expected" if expected is not None else "")
    lost = workers.get("lost") or []
    return text + (f"; LOST: {', '.join(str(w) for w in lost)}" if lost else "")


def _grid(items: Sequence[str]) -> str:
    return '<div class="grid">' + "".join(items) + "</div>"


def _header(data: RunData) -> list[str]:
    summary = data.summary
    health = run_health(summary)
    body = [
        f"<h1>chat-loadgen run {esc(data.run_id)}</h1>",
        f'<div class="status {health.level}" id="run-status">{esc(health.headline)}</div>',
        _meta(summary),
    ]
    body.extend(f'<div class="warn">WARNING: {esc(w)}</div>' for w in summary.get("warnings", []))
    return body


def _distributions(data: RunData) -> list[str]:
    metrics = (Metric.E2E, Metric.TTFT, Metric.ITL)
    return [
        "<h2>Latency percentile distribution (HDR)</h2>",
        _grid(
            [
                figure_div(plots.distribution_by_transport(data, m), f"dist-transport-{m}", f"no {m} samples")
                for m in metrics
            ]
        ),
        _grid([figure_div(plots.distribution_by_turn(data, m), f"dist-turn-{m}", f"no {m} samples") for m in metrics]),
    ]


def _over_time(data: RunData) -> list[str]:
    tl = build_timeline(data)
    body = [
        "<h2>Over time</h2>",
        "<p>x = seconds since the start, at the end of each interval. A long run is drawn with at most "
        f"{plots_time.DISPLAY_POINTS} points per line: each point is the mean of consecutive intervals, the band "
        "around it their lowest and highest. Shaded: outages as the clients saw them (red) and the server's "
        "injected faults (grey). Generator lag is the lateness of a 10 ms ticker in each load-generating process: "
        "past 5 ms p99 the generator, not the service, adds latency.</p>",
        _grid(
            [
                figure_div(plots_time.latency_over_time(data, tl), "latency-over-time", "no interval data"),
                figure_div(plots_time.throughput_over_time(data, tl), "throughput-over-time", "no interval data"),
                figure_div(plots_time.generator_lag_over_time(data, tl), "generator-lag-over-time", "no generator lag"),
                figure_div(plots_time.failures_over_time(data, tl), "failures-over-time", "no failures"),
            ]
        ),
    ]
    outages = outages_table(data.summary)
    if outages is not None or data.summary.get("recovery"):
        body.append("<h2>Outages and recovery</h2>")
        body.append(
            "<p>An outage runs from the first failed turn after a success to the first success after it; its "
            "recovery is how long turns sent after that still failed.</p>"
        )
        body.extend(f"<p>{esc(line)}</p>" for line in recovery_line(data.summary))
        if outages is not None:
            body.append(outages)
    windows = windows_table(data.summary)
    if windows is not None:
        body.extend(["<h2>Per window</h2>", windows])
    drift = drift_table(data.summary)
    if drift is not None:
        body.append("<h2>Drift</h2>")
        body.append(
            "<p>The trend of each figure over the windows above: a robust slope (Theil-Sen) per hour, relative to "
            "the first window. A slow leak shows here while the whole-run percentiles still look fine.</p>"
        )
        body.append(drift)
    return body


def _slo_section(summary: dict[str, Any]) -> list[str]:
    body = []
    intended = intended_table(summary)
    if intended is not None:
        body.append("<h2>Per token and from the intended start</h2>")
        body.append(
            "<p>TPOT = a turn's (e2e - TTFT) / (output tokens - 1), one sample per turn; when the generator-lag "
            "warning is on, trust it over ITL, whose single gaps take the generator's stalls in full. e2e from "
            "intended = from when the turn was meant to start (the previous turn's end plus its think time, or "
            "its arrival) to its last byte: e2e plus the schedule lag.</p>"
        )
        body.append(intended)
    run = summary.get("run") or {}
    steady = run.get("steady") or {}
    if run.get("warmup_s") or run.get("cooldown_s"):
        body.append(
            f"<p>Steady state: {esc(str(steady.get('duration_s')))} s. Turns started in the warm-up "
            f"({esc(str(run.get('warmup_s')))} s) or the cool-down ({esc(str(run.get('cooldown_s')))} s) are left "
            "out of these figures and rates (they are in the over-time plots).</p>"
        )
    slo = slo_table(summary)
    if slo is not None:
        body.append("<h2>Service-level objectives</h2>")
        body.append(
            "<p>Each turn is checked against every objective's bound on its own value (a failed turn never meets "
            "them); goodput = the turns that met them per second of the steady state. Each objective is also "
            "evaluated as written over the steady-state histogram.</p>"
        )
        body.append(slo)
    return body


def render_report(data: RunData) -> str:
    summary = data.summary
    body = _header(data)
    body.append("<h2>Per dialogue and turn</h2>")
    body.append(
        "<p>Latencies in milliseconds from the HDR histograms (- = no sample). e2e = sent to last byte; TTFT = sent "
        "to first content chunk; ITL = gap between content chunks per token. Retention = probed facts the reply "
        "still knew.</p>"
    )
    body.append(turns_table(summary))
    body.extend(tokens_section(summary))
    body.extend(_slo_section(summary))
    body.extend(_distributions(data))
    body.extend(_over_time(data))
    body.append("<h2>Failures by reason</h2>")
    body.append(figure_div(plots.failures_by_reason(data), "failures-by-reason", "no failures"))
    body.append("<h2>Context length and output rate</h2>")
    body.append(
        _grid(
            [
                figure_div(plots.latency_by_context(data), "latency-by-context", "no prompt token counts reported"),
                figure_div(plots.output_tokens_rate(data), "output-tokens-rate", "no output tokens"),
            ]
        )
    )
    body.append(figure_div(plots.output_tokens_by_turn(data), "output-tokens-by-turn", "no output tokens"))
    body.append("<h2>Context retention by turn</h2>")
    body.append(figure_div(plots.retention_by_turn(data), "retention-by-turn", "no turn probed a planted fact"))
    body.append(
        '<script type="application/json" id="loadgen-summary">'
        + json.dumps(summary, sort_keys=True).replace("</", "<\\/")
        + "</script>"
    )
    return page(f"chat-loadgen run {data.run_id}", body)
