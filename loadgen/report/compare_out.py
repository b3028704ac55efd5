"""A :class:`~loadgen.report.compare.Comparison` written out: text, markdown, CSV and JSON.

A figure with no data is "-" in text and markdown, empty in CSV and ``null`` in JSON; a baseline row missing from
the current run is "gone". Text and markdown end with the drift rows of both runs (per transport, per hour).
"""

from __future__ import annotations

import json
from typing import Any

from loadgen.metrics.keys import ALL
from loadgen.report.compare import LATENCY_COLUMNS, Comparison, RowDelta, pct_change
from loadgen.report.compare_shape import drift_cell
from loadgen.report.csvout import fmt, write_csv

COLUMNS: tuple[str, ...] = (
    "transport",
    "dialogue",
    "turn",
    "count_base",
    "count_cur",
    *(f"{name}_{part}" for name, _, _ in LATENCY_COLUMNS for part in ("base", "cur", "delta_pct")),
    "error_rate_base",
    "error_rate_cur",
    "error_rate_delta_pp",
    "retention_base",
    "retention_cur",
    "retention_delta_pp",
)
HEADER = (
    "transport", "dialogue", "turn", "turns", "e2e p50", "e2e p99", "TTFT p50", "TTFT p99", "ITL p50", "ITL p99",
    "errors", "retention",
)  # fmt: skip
DRIFT_HEADER = ("transport", "drift per hour", "baseline", "current")


def _values(row: RowDelta) -> dict[str, Any]:
    v: dict[str, Any] = {
        "transport": row.transport,
        "dialogue": row.dialogue,
        "turn": row.turn,
        "count_base": row.count("base") if row.base else None,
        "count_cur": row.count("cur") if row.cur else None,
    }
    for name, field_name, stat in LATENCY_COLUMNS:
        base, cur = row.latency("base", field_name, stat), row.latency("cur", field_name, stat)
        change = pct_change(base, cur)
        v[f"{name}_base"], v[f"{name}_cur"] = base, cur
        v[f"{name}_delta_pct"] = round(100 * change, 3) if change is not None else None
    for name, getter in (("error_rate", row.error_rate), ("retention", row.retention)):
        base, cur = getter("base"), getter("cur")
        v[f"{name}_base"] = round(base, 6) if base is not None else None
        v[f"{name}_cur"] = round(cur, 6) if cur is not None else None
        v[f"{name}_delta_pp"] = round(100 * (cur - base), 3) if base is not None and cur is not None else None
    return v


def to_csv(comparison: Comparison) -> str:
    return write_csv(COLUMNS, ([fmt(_values(r)[c]) for c in COLUMNS] for r in comparison.rows))


def to_json(comparison: Comparison) -> str:
    data = {
        "rows": [_values(r) for r in comparison.rows],
        "violations": [{"row": v.row, "what": v.what, "limit": v.limit} for v in comparison.violations],
        "skipped_rows": comparison.skipped_rows,
        "gone_rows": comparison.gone_rows,
        "shape_differences": comparison.shape,
        "drift": [
            {"transport": d.transport, "figure": d.figure, "unit": d.unit, "base": d.base, "cur": d.cur}
            for d in comparison.drift
        ],
    }
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def _latency_cell(row: RowDelta, base: float | None, cur: float | None) -> str:
    if cur is None:
        if base is None:
            return "-"
        return f"gone (was {base:.1f})" if row.cur is None else f"- (was {base:.1f})"
    text = f"{cur:.2f}" if cur < 10 else f"{cur:.1f}"
    change = pct_change(base, cur)
    if base is None:
        return f"{text} (new)"
    return f"{text} ({100 * change:+.1f}%)" if change is not None else f"{text} (base 0)"


def _rate_cell(row: RowDelta, base: float | None, cur: float | None) -> str:
    if cur is None:
        return "gone" if row.cur is None and row.base is not None else "-"
    if base is None:
        return f"{100 * cur:.2f}% (new)"
    return f"{100 * cur:.2f}% ({100 * (cur - base):+.2f}pp)"


def _cells(row: RowDelta) -> list[str]:
    counts = f"{row.count('base') if row.base else '-'}->{row.count('cur') if row.cur else '-'}"
    cells = [
        row.transport,
        "(all)" if row.dialogue == ALL else row.dialogue,
        "all" if row.dialogue == ALL else str(row.turn),
        counts,
    ]
    for _, field_name, stat in LATENCY_COLUMNS:
        cells.append(_latency_cell(row, row.latency("base", field_name, stat), row.latency("cur", field_name, stat)))
    cells.append(_rate_cell(row, row.error_rate("base"), row.error_rate("cur")))
    cells.append(_rate_cell(row, row.retention("base"), row.retention("cur")))
    return cells


def _drift_cells(comparison: Comparison) -> list[list[str]]:
    return [[d.transport, d.figure, drift_cell(d.base, d.unit), drift_cell(d.cur, d.unit)] for d in comparison.drift]


def _aligned(header: tuple[str, ...], body: list[list[str]], left: int) -> list[str]:
    table = [list(header), *body]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for n, row in enumerate(table):
        cells = (c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def to_text(comparison: Comparison, title: str = "") -> str:
    lines = [title] if title else []
    lines.append("Latency in ms of the current run (change vs baseline); errors and retention in % (pp change)")
    lines.extend(_aligned(HEADER, [_cells(r) for r in comparison.rows], 3))
    if comparison.drift:
        lines.append("")
        lines.append("Drift over each run (trend per hour; latency relative to the first window)")
        lines.extend(_aligned(DRIFT_HEADER, _drift_cells(comparison), 2))
    return "\n".join(lines)


def _markdown(header: tuple[str, ...], body: list[list[str]], left: int) -> list[str]:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("| " + " | ".join("---" if i < left else "---:" for i in range(len(header))) + " |")
    lines.extend("| " + " | ".join(cells) + " |" for cells in body)
    return lines


def to_markdown(comparison: Comparison, title: str = "") -> str:
    lines = [f"## {title}", ""] if title else []
    lines.extend(_markdown(HEADER, [_cells(r) for r in comparison.rows], 3))
    if comparison.drift:
        lines.extend(["", "Drift over each run (per hour)", ""])
        lines.extend(_markdown(DRIFT_HEADER, _drift_cells(comparison), 2))
    return "\n".join(lines)
