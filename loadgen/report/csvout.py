"""``turns.csv``: one row per (transport, dialogue, turn) plus one aggregate row per transport.

A statistic with no data (a latency with no sample, a rate of nothing) is an empty cell, never 0. The TPOT, the
latency from the intended start and the SLO figures (empty without ``--slo``) are the last columns.
Deterministic: rows sorted, fixed columns, numbers formatted the same way every time, so regenerating the
file from the same ``summary.json`` gives identical bytes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from loadgen.metrics.keys import ALL

_LATENCY_FIELDS = ("e2e_ms", "ttft_ms", "itl_ms", "schedule_lag_ms")
_LATENCY_STATS = ("p50", "p95", "p99", "max", "mean")
#: Latencies added later: their columns come after the older ones, so that a reader by position still works.
_LATER_LATENCY_FIELDS = ("tpot_ms", "e2e_from_intended_ms")

TURN_COLUMNS: tuple[str, ...] = (
    "transport",
    "dialogue",
    "turn",
    "count",
    "failures",
    "failures_transport",
    "failures_retention",
    "error_rate",
    *(f"{field.removesuffix('_ms')}_{stat}_ms" for field in _LATENCY_FIELDS for stat in _LATENCY_STATS),
    "e2e_out_of_range",
    "ttft_out_of_range",
    "itl_out_of_range",
    "retention_checked",
    "retention_passed",
    "retention_rate",
    "output_tokens",
    "prompt_tokens",
    "output_tokens_per_s_per_user",
    "output_tokens_per_s",
    "turns_per_s",
    *(f"{field.removesuffix('_ms')}_{stat}_ms" for field in _LATER_LATENCY_FIELDS for stat in _LATENCY_STATS),
    "slo_met",
    "slo_attainment",
    "goodput_per_s",
)


def fmt(value: Any) -> str:
    """One cell: '' for missing, integers as integers, floats as Python's shortest repr (rounded to 6 places)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)


def turn_row(row: dict[str, Any], transport: str, dialogue: str, turn: int) -> list[str]:
    count = int(row.get("count", 0))
    failures = int(row.get("failures", 0))
    kinds = row.get("failures_by_kind", {})
    retention = row.get("retention", {})
    cells: list[Any] = [
        transport,
        dialogue,
        turn,
        count,
        failures,
        kinds.get("transport", 0),
        kinds.get("retention", 0),
        round(failures / count, 6) if count else None,
    ]
    cells.extend(_latency_cells(row, _LATENCY_FIELDS))
    for field in ("e2e_ms", "ttft_ms", "itl_ms"):
        cells.append((row.get(field) or {}).get("out_of_range", 0))
    rate = retention.get("rate")
    cells.extend(
        [
            retention.get("checked", 0),
            retention.get("passed", 0),
            round(rate, 6) if rate is not None else None,
            row.get("output_tokens"),
            row.get("prompt_tokens"),
            row.get("output_tokens_per_s_per_user") if (row.get("e2e_ms") or {}).get("count") else None,
            row.get("output_tokens_per_s"),
            row.get("turns_per_s"),
        ]
    )
    cells.extend(_latency_cells(row, _LATER_LATENCY_FIELDS))
    slo = row.get("slo") or {}  # empty cells without --slo
    cells.extend([slo.get("met"), slo.get("attainment"), slo.get("goodput_per_s")])
    return [fmt(c) for c in cells]


def _latency_cells(row: dict[str, Any], fields: Sequence[str]) -> list[Any]:
    cells: list[Any] = []
    for field in fields:
        block = row.get(field) or {}
        # no samples: empty cells, also for an old folder that wrote 0.0 there
        cells.extend(block.get(stat) if block.get("count") else None for stat in _LATENCY_STATS)
    return cells


def summary_rows(summary: dict[str, Any]) -> list[list[str]]:
    """Per-turn rows sorted by (transport, dialogue, turn), each transport's aggregate row (dialogue '*',
    turn 0) first in its block."""
    rows: list[tuple[tuple[str, int, str, int], list[str]]] = []
    for transport, agg in summary.get("transports", {}).items():
        rows.append(((transport, 0, ALL, 0), turn_row(agg, transport, ALL, 0)))
    for row in summary.get("turns", []):
        t, d, n = row["transport"], row["dialogue"], int(row["turn"])
        rows.append(((t, 1, d, n), turn_row(row, t, d, n)))
    rows.sort(key=lambda item: item[0])
    return [cells for _, cells in rows]


def write_csv(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buf.getvalue()


def turns_csv(summary: dict[str, Any]) -> str:
    return write_csv(TURN_COLUMNS, summary_rows(summary))
