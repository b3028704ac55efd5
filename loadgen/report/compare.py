"""Per-turn deltas between two runs (baseline and current) and the regression checks on them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from loadgen.metrics.keys import ALL
from loadgen.report.csvout import fmt, write_csv

#: (column name, summary field, statistic) of the latency deltas shown.
LATENCY_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("e2e_p50", "e2e_ms", "p50"),
    ("e2e_p99", "e2e_ms", "p99"),
    ("ttft_p50", "ttft_ms", "p50"),
    ("ttft_p99", "ttft_ms", "p99"),
    ("itl_p50", "itl_ms", "p50"),
    ("itl_p99", "itl_ms", "p99"),
)
SUMMARY_STATS = ("p50", "p95", "p99", "max", "mean")
RowKey = tuple[str, str, int]


@dataclass
class RowDelta:
    transport: str
    dialogue: str  # "*" for the transport's aggregate row
    turn: int  # 0 for the aggregate row
    base: dict[str, Any] | None
    cur: dict[str, Any] | None

    @property
    def label(self) -> str:
        return (
            f"{self.transport} (all)" if self.dialogue == ALL else f"{self.transport} {self.dialogue}:turn{self.turn}"
        )

    def count(self, which: str) -> int:
        row = self.base if which == "base" else self.cur
        return int(row.get("count", 0)) if row else 0

    def latency(self, which: str, field_name: str, stat: str) -> float | None:
        row = self.base if which == "base" else self.cur
        if not row:
            return None
        block = row.get(field_name, {})
        if not block.get("count"):
            return None
        return float(block.get(stat, 0.0))

    def error_rate(self, which: str) -> float | None:
        row = self.base if which == "base" else self.cur
        if not row or not row.get("count"):
            return None
        return float(row.get("failures", 0)) / float(row["count"])

    def retention(self, which: str) -> float | None:
        row = self.base if which == "base" else self.cur
        if not row:
            return None
        r = row.get("retention", {})
        return float(r["passed"]) / float(r["checked"]) if r.get("checked") else None


@dataclass(frozen=True)
class Violation:
    row: str
    what: str
    base: float | None
    cur: float | None
    limit: str

    def line(self) -> str:
        return f"REGRESSION {self.row}: {self.what} {self.limit}"


@dataclass
class RegressionRules:
    max_regression: float | None = None  # fraction: 0.10 = 10% slower fails
    stats: tuple[str, ...] = ("p99",)
    metrics: tuple[str, ...] = ("e2e", "ttft", "itl")
    min_count: int = 20
    min_delta_ms: float = 0.0
    max_error_increase: float | None = None  # fraction (percentage points / 100)
    max_retention_drop: float | None = None  # fraction (percentage points / 100)


@dataclass
class Comparison:
    rows: list[RowDelta]
    violations: list[Violation] = field(default_factory=list)
    skipped_rows: list[str] = field(default_factory=list)  # too few samples to judge


def _rows_of(summary: dict[str, Any]) -> dict[RowKey, dict[str, Any]]:
    out: dict[RowKey, dict[str, Any]] = {}
    for transport, agg in summary.get("transports", {}).items():
        out[(transport, ALL, 0)] = agg
    for row in summary.get("turns", []):
        out[(row["transport"], row["dialogue"], int(row["turn"]))] = row
    return out


def _sort_key(key: RowKey) -> tuple[str, int, str, int]:
    transport, dialogue, turn = key
    return (transport, 0 if dialogue == ALL else 1, dialogue, turn)


def compare_summaries(base: dict[str, Any], cur: dict[str, Any], rules: RegressionRules | None = None) -> Comparison:
    b, c = _rows_of(base), _rows_of(cur)
    rows = [RowDelta(k[0], k[1], k[2], b.get(k), c.get(k)) for k in sorted(set(b) | set(c), key=_sort_key)]
    comparison = Comparison(rows)
    if rules is not None:
        check(comparison, rules)
    return comparison


def _pct(base: float | None, cur: float | None) -> float | None:
    if base is None or cur is None or base == 0:
        return None
    return (cur - base) / base


def check(comparison: Comparison, rules: RegressionRules) -> None:
    for row in comparison.rows:
        if row.base is None or row.cur is None:
            continue
        if min(row.count("base"), row.count("cur")) < rules.min_count:
            comparison.skipped_rows.append(row.label)
            continue
        if rules.max_regression is not None:
            for metric in rules.metrics:
                for stat in rules.stats:
                    base = row.latency("base", f"{metric}_ms", stat)
                    cur = row.latency("cur", f"{metric}_ms", stat)
                    change = _pct(base, cur)
                    if change is None or base is None or cur is None:
                        continue
                    if change > rules.max_regression and cur - base >= rules.min_delta_ms:
                        comparison.violations.append(
                            Violation(
                                row.label,
                                f"{metric} {stat} {base:.3f} -> {cur:.3f} ms ({100 * change:+.1f}%)",
                                base,
                                cur,
                                f"> +{100 * rules.max_regression:g}% allowed",
                            )
                        )
        if rules.max_error_increase is not None:
            base, cur = row.error_rate("base"), row.error_rate("cur")
            if base is not None and cur is not None and cur - base > rules.max_error_increase:
                comparison.violations.append(
                    Violation(
                        row.label,
                        f"error rate {100 * base:.2f}% -> {100 * cur:.2f}% ({100 * (cur - base):+.2f} pp)",
                        base,
                        cur,
                        f"> +{100 * rules.max_error_increase:g} pp allowed",
                    )
                )
        if rules.max_retention_drop is not None:
            base, cur = row.retention("base"), row.retention("cur")
            if base is not None and cur is not None and base - cur > rules.max_retention_drop:
                comparison.violations.append(
                    Violation(
                        row.label,
                        f"retention {100 * base:.2f}% -> {100 * cur:.2f}% ({100 * (cur - base):+.2f} pp)",
                        base,
                        cur,
                        f"> -{100 * rules.max_retention_drop:g} pp allowed",
                    )
                )


# --- output ------------------------------------------------------------------------------------------------
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
        change = _pct(base, cur)
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
    }
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def _latency_cell(base: float | None, cur: float | None) -> str:
    if cur is None:
        return "-" if base is None else f"gone (was {base:.1f})"
    text = f"{cur:.2f}" if cur < 10 else f"{cur:.1f}"
    change = _pct(base, cur)
    if base is None:
        return f"{text} (new)"
    return f"{text} ({100 * change:+.1f}%)" if change is not None else f"{text} (base 0)"


def _rate_cell(base: float | None, cur: float | None) -> str:
    if cur is None:
        return "-"
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
        cells.append(_latency_cell(row.latency("base", field_name, stat), row.latency("cur", field_name, stat)))
    cells.append(_rate_cell(row.error_rate("base"), row.error_rate("cur")))
    cells.append(_rate_cell(row.retention("base"), row.retention("cur")))
    return cells


HEADER = (
    "transport",
    "dialogue",
    "turn",
    "turns",
    "e2e p50",
    "e2e p99",
    "TTFT p50",
    "TTFT p99",
    "ITL p50",
    "ITL p99",
    "errors",
    "retention",
)


def to_text(comparison: Comparison, title: str = "") -> str:
    table = [list(HEADER), *(_cells(r) for r in comparison.rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    lines = [title] if title else []
    lines.append("Latency in ms of the current run (change vs baseline); errors and retention in % (pp change)")
    for n, row in enumerate(table):
        lines.append(
            "  ".join(
                cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_markdown(comparison: Comparison, title: str = "") -> str:
    lines = [f"## {title}", ""] if title else []
    lines.append("| " + " | ".join(HEADER) + " |")
    lines.append("| " + " | ".join("---" if i < 3 else "---:" for i in range(len(HEADER))) + " |")
    lines.extend("| " + " | ".join(_cells(r)) + " |" for r in comparison.rows)
    return "\n".join(lines)


def verdict_lines(comparison: Comparison, rules: RegressionRules) -> list[str]:
    out = [v.line() for v in comparison.violations]
    if comparison.skipped_rows:
        out.append(
            f"not judged (fewer than {rules.min_count} turns in a run): {len(comparison.skipped_rows)} row(s): "
            + ", ".join(comparison.skipped_rows[:8])
            + (" ..." if len(comparison.skipped_rows) > 8 else "")
        )
    return out


def parse_percent(text: str, option: str) -> float:
    """'10%' or '10' -> 0.10."""
    raw = text.strip().removesuffix("%").strip()
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{option} {text!r}: expected a percentage such as 10%") from None
    if value < 0:
        raise ValueError(f"{option} {text!r}: must not be negative")
    return value / 100.0


def comparison_stats(stats: Sequence[str]) -> tuple[str, ...]:
    bad = [s for s in stats if s not in SUMMARY_STATS]
    if bad:
        raise ValueError(f"--stat {bad[0]!r}: choose from {', '.join(SUMMARY_STATS)}")
    return tuple(stats)
