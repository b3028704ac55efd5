"""``report.html``: one self-contained page per run (plotly's JavaScript inlined, readable offline).

The page is deterministic for a given run folder: figure ids are fixed and nothing depends on the time
the report was generated.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from loadgen.metrics.histograms import Metric
from loadgen.report import plots
from loadgen.report.rundata import RunData

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; position: sticky; top: 0; }
td.l, th.l { text-align: left; }
tr.agg td { font-weight: 600; background: #fafafa; }
.warn { background: #fff4e5; border-left: 4px solid #f0a020; padding: 0.5em 1em; margin: 0.5em 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 1em; }
.grid > div { min-width: 0; }
.scroll { overflow-x: auto; max-width: 100%; }
.empty { color: #888; font-style: italic; padding: 1em; border: 1px dashed #ccc; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 2px 1em; font-size: 0.9em; }
dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; }
"""

_PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


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


def _lat(block: dict[str, Any], stat: str, small: bool = False) -> str:
    if not block or not block.get("count"):
        return "-"
    value = float(block.get(stat, 0.0))
    return f"{value:.2f}" if small or value < 10 else f"{value:.1f}"


def _retention(row: dict[str, Any]) -> str:
    r = row.get("retention", {})
    if not r.get("checked"):
        return "-"
    return f"{100.0 * r['passed'] / r['checked']:.1f}% ({r['passed']}/{r['checked']})"


_TURN_HEADER = (
    ["transport", "dialogue", "turn", "count", "failures"]
    + [f"{m} {s}" for m in ("e2e", "TTFT", "ITL") for s in ("p50", "p95", "p99", "max")]
    + ["out tok/s per user", "out tok/s total", "retention"]
)


def _turn_cells(row: dict[str, Any], transport: str, dialogue: str, turn: str) -> list[str]:
    cells = [esc(transport), esc(dialogue), esc(turn), str(row.get("count", 0))]
    failures = int(row.get("failures", 0))
    kinds = row.get("failures_by_kind", {})
    cells.append(
        f"{failures} ({kinds.get('transport', 0)} transport, {kinds.get('retention', 0)} retention)"
        if failures
        else "0"
    )
    for field, small in (("e2e_ms", False), ("ttft_ms", False), ("itl_ms", True)):
        block = row.get(field, {})
        cells.extend(_lat(block, s, small) for s in ("p50", "p95", "p99", "max"))
    cells.append(f"{float(row.get('output_tokens_per_s_per_user', 0.0)):.1f}")
    cells.append(f"{float(row.get('output_tokens_per_s', 0.0)):.1f}")
    cells.append(esc(_retention(row)))
    return cells


def turns_table(summary: dict[str, Any]) -> str:
    lines = ['<div class="scroll"><table id="turns-table">', "<thead><tr>"]
    lines.extend(f'<th class="{"l" if i < 2 else ""}">{esc(h)}</th>' for i, h in enumerate(_TURN_HEADER))
    lines.append("</tr></thead><tbody>")
    by_transport: dict[str, list[dict[str, Any]]] = {}
    for row in summary.get("turns", []):
        by_transport.setdefault(row["transport"], []).append(row)
    for transport in sorted(set(by_transport) | set(summary.get("transports", {}))):
        for row in by_transport.get(transport, []):
            cells = _turn_cells(row, transport, row["dialogue"], str(row["turn"]))
            lines.append("<tr>" + "".join(_td(i, c) for i, c in enumerate(cells)) + "</tr>")
        agg = summary.get("transports", {}).get(transport)
        if agg is not None:
            cells = _turn_cells(agg, transport, "(all dialogues)", "all")
            lines.append('<tr class="agg">' + "".join(_td(i, c) for i, c in enumerate(cells)) + "</tr>")
    lines.append("</tbody></table></div>")
    return "\n".join(lines)


def _td(i: int, cell: str) -> str:
    return f'<td class="l">{cell}</td>' if i < 2 else f"<td>{cell}</td>"


def _meta(summary: dict[str, Any]) -> str:
    run = summary.get("run", {})
    fields = [
        ("run id", run.get("id")),
        ("target", run.get("target")),
        ("transports", ", ".join(run.get("transports", []) or [])),
        ("users", run.get("users")),
        ("processes", run.get("processes")),
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


def _grid(items: Sequence[str]) -> str:
    return '<div class="grid">' + "".join(items) + "</div>"


def render_report(data: RunData) -> str:
    summary = data.summary
    body = [f"<h1>chat-loadgen run {esc(data.run_id)}</h1>", _meta(summary)]
    body.extend(f'<div class="warn">WARNING: {esc(w)}</div>' for w in summary.get("warnings", []))
    body.append("<h2>Per dialogue and turn</h2>")
    body.append(
        "<p>Latencies in milliseconds from the HDR histograms. e2e = sent to last byte; TTFT = sent to first "
        "content chunk; ITL = gap between content chunks per token. Retention = probed facts the reply still "
        "knew.</p>"
    )
    body.append(turns_table(summary))
    metrics = (Metric.E2E, Metric.TTFT, Metric.ITL)
    body.append("<h2>Latency percentile distribution (HDR)</h2>")
    body.append(
        _grid(
            [
                figure_div(plots.distribution_by_transport(data, m), f"dist-transport-{m}", f"no {m} samples")
                for m in metrics
            ]
        )
    )
    body.append(
        _grid([figure_div(plots.distribution_by_turn(data, m), f"dist-turn-{m}", f"no {m} samples") for m in metrics])
    )
    body.append("<h2>Over time</h2>")
    body.append(
        "<p>Per interval (x = seconds since the start, at the end of each interval). Generator lag is the lateness "
        "of a 10 ms ticker in each load-generating process: past 5 ms p99 the generator, not the service, adds "
        "latency.</p>"
    )
    body.append(
        _grid(
            [
                figure_div(plots.latency_over_time(data), "latency-over-time", "no interval data"),
                figure_div(plots.throughput_over_time(data), "throughput-over-time", "no interval data"),
                figure_div(plots.generator_lag_over_time(data), "generator-lag-over-time", "no generator lag data"),
                figure_div(plots.failures_over_time(data), "failures-over-time", "no failures"),
            ]
        )
    )
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
    body.append("<h2>Context retention by turn</h2>")
    body.append(figure_div(plots.retention_by_turn(data), "retention-by-turn", "no turn probed a planted fact"))
    body.append(
        '<script type="application/json" id="loadgen-summary">'
        + json.dumps(summary, sort_keys=True).replace("</", "<\\/")
        + "</script>"
    )
    return page(f"chat-loadgen run {data.run_id}", body)
