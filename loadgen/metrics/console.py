"""The end-of-run console table: one row per dialogue and turn."""

from __future__ import annotations

from typing import Any

_COLUMNS = (
    ("transport", 9, "s"),
    ("dialogue", 18, "s"),
    ("turn", 4, "d"),
    ("count", 7, "d"),
    ("fail", 6, "d"),
    ("e2e p50", 9, ".1f"),
    ("e2e p95", 9, ".1f"),
    ("e2e p99", 9, ".1f"),
    ("ttft p50", 9, ".1f"),
    ("ttft p99", 9, ".1f"),
    ("itl p50", 8, ".2f"),
    ("itl p99", 8, ".2f"),
    ("retained", 9, "s"),
)


def _row_values(row: dict[str, Any]) -> list[Any]:
    r = row["retention"]
    retained = f"{100.0 * r['passed'] / r['checked']:.1f}%" if r["checked"] else "-"
    return [
        row.get("transport", ""),
        row.get("dialogue", "(all)"),
        row.get("turn", 0),
        row["count"],
        row["failures"],
        row["e2e_ms"]["p50"],
        row["e2e_ms"]["p95"],
        row["e2e_ms"]["p99"],
        row["ttft_ms"]["p50"],
        row["ttft_ms"]["p99"],
        row["itl_ms"]["p50"],
        row["itl_ms"]["p99"],
        retained,
    ]


def format_table(summary: dict[str, Any]) -> str:
    """Latencies in ms. Aggregate rows ("(all)") close each transport's block."""
    header = " ".join(f"{name:>{width}}" if fmt != "s" else f"{name:<{width}}" for name, width, fmt in _COLUMNS)
    lines = ["Per-turn latency (ms) and context retention", header, "-" * len(header)]
    by_transport: dict[str, list[dict[str, Any]]] = {}
    for row in summary["turns"]:
        by_transport.setdefault(row["transport"], []).append(row)
    for transport, rows in by_transport.items():
        for row in rows:
            lines.append(_format(_row_values(row)))
        agg = summary["transports"].get(transport)
        if agg is not None:
            lines.append(_format(_row_values({**agg, "transport": transport, "dialogue": "(all)", "turn": 0})))
    lag = summary["generator_lag_ms"]
    lines.append(f"generator lag: p50 {lag['p50']} ms, p99 {lag['p99']} ms, max {lag['max']} ms")
    lines.extend(f"WARNING: {w}" for w in summary.get("warnings", []))
    return "\n".join(lines)


def _format(values: list[Any]) -> str:
    out = []
    for (_, width, fmt), value in zip(_COLUMNS, values, strict=True):
        if fmt == "s":
            out.append(f"{str(value)[:width]:<{width}}")
        elif value is None:  # a latency with no samples
            out.append(f"{'-':>{width}}")
        else:
            out.append(f"{value:>{width}{fmt}}")
    return " ".join(out)
