"""The transport comparison table (``comparison.md``, ``.csv``, ``.html``) built from one run per transport.

Per transport: latency, turns/s, error rate, retention and, from ``summary.json`` ``recovery``, the number of
outages and the longest and median recovery time (the seed's "error recovery time": give every run the same
fault schedule with ``--embedded-server-args '--faults ...'``). A figure with no data is ``None`` (CSV: empty,
tables: "-"), never 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from loadgen.metrics.histograms import Metric
from loadgen.report import plots, plots_time
from loadgen.report.csvout import fmt, write_csv
from loadgen.report.html import figure_div, page
from loadgen.report.rundata import RunData
from loadgen.report.tables import esc, table
from loadgen.report.timeline import build_timeline

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
    ("outages", "outages"),
    ("recovery_max_s", "recovery max (s)"),
    ("recovery_p50_s", "recovery p50 (s)"),
)
_PERCENT = ("error_rate", "retention")


def _stat(block: dict[str, Any] | None, stat: str) -> float | None:
    """A latency statistic, None when the block has no samples (an old folder wrote 0.0 there)."""
    if not block or not block.get("count") or block.get(stat) is None:
        return None
    return float(block[stat])


def comparison_row(transport: str, data: RunData) -> dict[str, Any]:
    agg = data.summary.get("transports", {}).get(transport, {})
    count = int(agg.get("count", 0))
    retention = agg.get("retention", {})
    e2e, ttft, itl = agg.get("e2e_ms"), agg.get("ttft_ms"), agg.get("itl_ms")
    recovery = (data.summary.get("recovery") or {}).get(transport)
    return {
        "transport": transport,
        "run_id": data.run_id,
        "turns": count,
        "e2e_avg_ms": _stat(e2e, "mean"),
        "e2e_p50_ms": _stat(e2e, "p50"),
        "e2e_p95_ms": _stat(e2e, "p95"),
        "e2e_p99_ms": _stat(e2e, "p99"),
        "ttft_p50_ms": _stat(ttft, "p50"),
        "ttft_p99_ms": _stat(ttft, "p99"),
        "itl_p50_ms": _stat(itl, "p50"),
        "turns_per_s": agg.get("turns_per_s") if count else None,
        "error_rate": round(int(agg.get("failures", 0)) / count, 6) if count else None,
        "retention": round(retention["passed"] / retention["checked"], 6) if retention.get("checked") else None,
        "outages": int(recovery.get("outages") or 0) if recovery is not None else None,
        "recovery_max_s": recovery.get("max_s") if recovery is not None else None,
        "recovery_p50_s": recovery.get("p50_s") if recovery is not None else None,
    }


def comparison_rows(runs: Sequence[tuple[str, RunData]]) -> list[dict[str, Any]]:
    return [comparison_row(t, d) for t, d in runs]


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    return write_csv([k for k, _ in COLUMNS], ([fmt(r[k]) for k, _ in COLUMNS] for r in rows))


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key in _PERCENT:
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
    cells = [("", [esc(_cell(k, r[k])) for k, _ in COLUMNS]) for r in rows]
    return table("comparison-table", [t for _, t in COLUMNS], cells, left=2)


def _bars(rows: Sequence[dict[str, Any]]) -> go.Figure | None:
    if not rows:
        return None
    names = [r["transport"] for r in rows]
    traces = [
        go.Bar(x=names, y=[r.get(key) for r in rows], name=label)  # None: no bar, never a 0 one
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
        layout=plots.layout("Latency by transport", barmode="group", yaxis={"title": {"text": "ms"}}),
    )


def _distribution(runs: Sequence[tuple[str, RunData]], metric: str) -> go.Figure | None:
    curves = [(t, d.histogram(metric, transport=t)) for t, d in runs]
    return plots.distribution_figure(f"{plots.METRIC_TITLES[metric]}", curves)


def _over_time(transport: str, data: RunData) -> go.Figure | None:
    return plots_time.latency_over_time(data, build_timeline(data), [transport])


def to_html(
    runs: Sequence[tuple[str, RunData]], rows: Sequence[dict[str, Any]], title: str, notes: Sequence[str]
) -> str:
    body = [f"<h1>{esc(title)}</h1>"]
    body.extend(f"<p>{esc(n)}</p>" for n in notes)
    body.append(_html_table(rows))
    if any(r["outages"] is not None for r in rows):
        body.append(
            "<p>Recovery: after an outage (failed turns after a success, until a success), how long turns sent "
            "after the service came back still failed. - = the run has no recovery figures.</p>"
        )
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
