"""What else two runs compared night over night must agree on: their shape, and their drift.

:func:`shape_differences` lists how the runs differ in what was asked of the service (users, duration,
transports, target, dialogues, history mode, streaming, processes): deltas between runs of different shapes
measure the change of shape as much as the service. Two runs against an embedded reference server have the same
target whatever port each got; durations within :data:`DURATION_TOLERANCE` of each other are the same.

:func:`drift_rows` puts each transport's drift per hour (``summary.json`` ``drift``) of both runs side by side:
latency trends in %/h of the first window, rates in percentage points per hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Relative difference of run durations still counted as the same duration.
DURATION_TOLERANCE = 0.10
#: (run field, how it is named in a message)
SHAPE_FIELDS: tuple[tuple[str, str], ...] = (
    ("users", "users"),
    ("duration_s", "duration (s)"),
    ("transports", "transports"),
    ("target", "target"),
    ("dialogues", "dialogues"),
    ("history_mode", "history mode"),
    ("stream", "streaming"),
    ("processes", "processes"),
)
EMBEDDED = "the embedded reference server"


def _value(run: dict[str, Any], name: str) -> Any:
    if name == "target" and run.get("embedded_server"):
        return EMBEDDED
    value = run.get(name)
    if isinstance(value, list):
        return sorted(str(v) for v in value)
    return value


def _show(value: Any) -> str:
    return ",".join(value) if isinstance(value, list) else str(value)


def shape_differences(base: dict[str, Any], cur: dict[str, Any]) -> list[str]:
    """``["users 50 -> 10", ...]``: each shape field both runs state and that differs."""
    b, c = base.get("run") or {}, cur.get("run") or {}
    out = []
    for name, label in SHAPE_FIELDS:
        x, y = _value(b, name), _value(c, name)
        if x is None or y is None:
            continue
        if name == "duration_s":
            low, high = sorted((float(x), float(y)))
            if high - low <= DURATION_TOLERANCE * high:
                continue
        elif x == y:
            continue
        out.append(f"{label} {_show(x)} -> {_show(y)}")
    return out


@dataclass(frozen=True)
class DriftRow:
    transport: str
    figure: str  # e.g. "TTFT p99"
    unit: str  # "%/h" or "pp/h"
    base: float | None
    cur: float | None


#: (summary.json drift field, label, unit, whether the value shown is per_hour * 100 rather than pct_per_hour)
DRIFT_FIELDS: tuple[tuple[str, str, str, bool], ...] = (
    ("ttft_p99", "TTFT p99", "%/h", False),
    ("e2e_p99", "e2e p99", "%/h", False),
    ("error_rate", "error rate", "pp/h", True),
    ("retention_rate", "retention", "pp/h", True),
)


def _drift_value(d: dict[str, Any] | None, points: bool) -> float | None:
    if not d:
        return None
    value = d.get("per_hour") if points else d.get("pct_per_hour")
    if value is None:
        return None
    return float(value) * (100.0 if points else 1.0)


def drift_rows(base: dict[str, Any], cur: dict[str, Any]) -> list[DriftRow]:
    b, c = base.get("drift") or {}, cur.get("drift") or {}
    rows = []
    for transport in sorted(set(b) | set(c)):
        for name, label, unit, points in DRIFT_FIELDS:
            x = _drift_value((b.get(transport) or {}).get(name), points)
            y = _drift_value((c.get(transport) or {}).get(name), points)
            if x is not None or y is not None:
                rows.append(DriftRow(transport, label, unit, x, y))
    return rows


def drift_cell(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:+.3g}{unit}"
