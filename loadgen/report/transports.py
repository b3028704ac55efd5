"""The transport comparison table (``comparison.md``, ``.csv``, ``.html``) built from one run per transport."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from loadgen.metrics.histograms import Metric
from loadgen.metrics.keys import ALL, SeriesKey
from loadgen.report import plots
from loadgen.report.csvout import fmt, write_csv
from loadgen.report.html import esc, figure_div, page
from loadgen.report.rundata import RunData

COLUMNS: tuple[tuple[str, str], ...] = (
    ("transport", "transport"),
    ("run_id", "run"),
    ("turns", "turns"),
    ("e2e_avg_ms", "e2e avg (ms)"),
    ("e2e_p50_ms", "e2e p50 (ms)"),
    ("e2e_p95_ms", "e2e p95 (ms)"),
    ("e2e_p99_ms", "e2e p99 (ms)"),
    ("ttft_p50_ms", "TTFT p50 (ms)"),
    ("ttft_p99_ms", "TTFT p99 (ms)"),
    ("itl_p50_ms", "ITL p50 (ms)"),
    ("turns_per_s", "turns/s"),
    ("error_rate", "error rate"),
    ("retention", "retention"),
)


def comparison_row(transport: str, data: RunData) -> dict[str, Any]:
    agg = data.summary.get("transports", {}).get(transport, {})
    count = int(agg.get("count", 0))
    retention = agg.get("retention", {})
    e2e, ttft, itl = agg.get("e2e_ms", {}), agg.get("ttft_ms", {}), agg.get("itl_ms", {})
    return {
        "transport": transport,
        "run_id": data.run_id,
        "turns": count,
        "e2e_avg_ms": e2e.get("mean"),
        "e2e_p50_ms": e2e.get("p50"),
        "e2e_p95_ms": e2e.get("p95"),
        "e2e_p99_ms": e2e.get("p99"),
        "ttft_p50_ms": ttft.get("p50"),
        "ttft_p99_ms": ttft.get("p99"),
        "itl_p50_ms": itl.get("p50"),
        "turns_per_s": agg.get("turns_per_s"),
        "error_rate": round(int(agg.get("failures", 0)) / count, 6) if count else None,
        "retention": round(retention["passed"] / retention["checked"], 6) if retention.get("checked") else None,
    }


def comparison_rows(runs: Sequence[tuple[str, RunData]]) -> list[dict[str, Any]]:
    return [comparison_row(t, d) for t, d in runs]


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    return write_csv([k for k, _ in COLUMNS], ([fmt(r[k]) for k, _ in COLUMNS] for r in rows))


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key in ("error_rate", "retention"):
        return f"{100.0 * float(value):.2f}%"
    if isinstance(value, float):
        return f"{value:.2f}" if value < 10 else f"{value:.1f}"
    return str(value)


def to_markdown(rows: Sequence[dict[str, Any]], title: str, notes: Sequence[str] = ()) -> str:
    lines = [f"# {title}", ""]
    lines.extend(f"- {n}" for n in notes)
    if notes:
        lines.append("")
    lines.append("| " + " | ".join(t for _, t in COLUMNS) + " |")
    lines.append("| " + " | ".join("---" if i < 2 else "---:" for i in range(len(COLUMNS))) + " |")
    lines.extend("| " + " | ".join(_cell(k, r[k]) for k, _ in COLUMNS) + " |" for r in rows)
    return "\n".join(lines) + "\n"


def _html_table(rows: Sequence[dict[str, Any]]) -> str:
    head = "".join(f"<th>{esc(t)}</th>" for _, t in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{esc(_cell(k, r[k]))}</td>" for k, _ in COLUMNS) + "</tr>" for r in rows)
    return f'<table id="comparison-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _bars(rows: Sequence[dict[str, Any]]) -> go.Figure | None:
    if not rows:
        return None
    names = [r["transport"] for r in rows]
    traces = [
        go.Bar(x=names, y=[r.get(key) or 0.0 for r in rows], name=label)
        for key, label in (
            ("e2e_p50_ms", "e2e p50"),
            ("e2e_p95_ms", "e2e p95"),
            ("e2e_p99_ms", "e2e p99"),
            ("ttft_p50_ms", "TTFT p50"),
            ("ttft_p99_ms", "TTFT p99"),
        )
    ]
    return go.Figure(
        data=traces,
        layout=plots._layout("Latency by transport", barmode="group", yaxis={"title": {"text": "ms"}}),
    )


def _distribution(runs: Sequence[tuple[str, RunData]], metric: str) -> go.Figure | None:
    curves = [(t, d.histogram(metric, transport=t)) for t, d in runs]
    return plots.distribution_figure(f"{plots.METRIC_TITLES[metric]}: percentile distribution", curves)


def _over_time(transport: str, data: RunData) -> go.Figure | None:
    if not data.intervals:
        return None
    xs = plots._offsets(data)
    traces = []
    for metric in (Metric.E2E, Metric.TTFT):
        series = plots._interval_quantile(data, SeriesKey(transport, ALL, 0, metric), (0.5, 0.99))
        for q, name in ((0.5, "p50"), (0.99, "p99")):
            traces.append(go.Scatter(x=xs, y=series[q], mode="lines+markers", name=f"{metric} {name}"))
    return go.Figure(
        data=traces,
        layout=plots._layout(
            f"{transport}: latency over time",
            xaxis={"title": {"text": "seconds since start"}},
            yaxis={"title": {"text": "ms"}, "rangemode": "tozero"},
        ),
    )


def to_html(
    runs: Sequence[tuple[str, RunData]], rows: Sequence[dict[str, Any]], title: str, notes: Sequence[str]
) -> str:
    body = [f"<h1>{esc(title)}</h1>"]
    body.extend(f"<p>{esc(n)}</p>" for n in notes)
    body.append(_html_table(rows))
    body.append("<h2>Percentile distributions (HDR), one line per transport</h2>")
    body.append(
        '<div class="grid">'
        + "".join(
            figure_div(_distribution(runs, m), f"cmp-dist-{m}", f"no {m} samples")
            for m in (Metric.E2E, Metric.TTFT, Metric.ITL)
        )
        + "</div>"
    )
    body.append("<h2>Side by side</h2>")
    body.append(figure_div(_bars(rows), "cmp-bars", "no data"))
    body.append(
        '<div class="grid">'
        + "".join(figure_div(_over_time(t, d), f"cmp-time-{t}", f"{t}: no interval data") for t, d in runs)
        + "</div>"
    )
    return page(title, body)
