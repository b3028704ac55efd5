"""Per-turn deltas between two runs (baseline and current) and the regression checks on them.

The checks fail safe; a nightly job gets them without naming a limit:

- the current run has no successful turn (or the baseline has none: it cannot be a baseline): always a regression;
- a row (transport aggregate, or dialogue:turn) of the baseline with at least ``min_count`` turns is gone from
  the current run: a regression (``allow_missing`` loosens it);
- a row's error rate rose by more than ``max_error_increase`` (default :data:`DEFAULT_MAX_ERROR_INCREASE`,
  1 percentage point), or its retention fell by more than ``max_retention_drop`` (default 1 pp);
- with ``max_regression`` (opt-in: latency noise differs between services), a latency statistic slower by more
  than that fraction, or one with samples in the baseline and none now ("no data").

Rows with fewer than ``min_count`` turns in either run are shown but not judged (listed as such). How the runs
differ in shape (users, duration, ...) is :mod:`loadgen.report.compare_shape`; output formats are
:mod:`loadgen.report.compare_out`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from loadgen.metrics.keys import ALL
from loadgen.report.compare_shape import DriftRow, drift_rows, shape_differences
from loadgen.report.status import no_success_problem

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
DEFAULT_MAX_ERROR_INCREASE = 0.01  # 1 percentage point
DEFAULT_MAX_RETENTION_DROP = 0.01
DEFAULT_MIN_COUNT = 20
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

    def _row(self, which: str) -> dict[str, Any] | None:
        return self.base if which == "base" else self.cur

    def count(self, which: str) -> int:
        row = self._row(which)
        return int(row.get("count") or 0) if row else 0

    def latency(self, which: str, field_name: str, stat: str) -> float | None:
        """A statistic in ms; None when the row has no sample of it (count 0 or a null value)."""
        row = self._row(which)
        block = (row or {}).get(field_name) or {}
        if not block.get("count") or block.get(stat) is None:
            return None
        return float(block[stat])

    def error_rate(self, which: str) -> float | None:
        row = self._row(which)
        if not row or not row.get("count"):
            return None
        return float(row.get("failures") or 0) / float(row["count"])

    def retention(self, which: str) -> float | None:
        row = self._row(which)
        r = (row or {}).get("retention") or {}
        return float(r["passed"]) / float(r["checked"]) if r.get("checked") else None


@dataclass(frozen=True)
class Violation:
    row: str
    what: str
    base: float | None
    cur: float | None
    limit: str

    def line(self) -> str:
        return f"REGRESSION {self.row}: {self.what} {self.limit}".rstrip()


@dataclass
class RegressionRules:
    max_regression: float | None = None  # fraction: 0.10 = 10% slower fails; None: latency not judged
    stats: tuple[str, ...] = ("p99",)
    metrics: tuple[str, ...] = ("e2e", "ttft", "itl")
    min_count: int = DEFAULT_MIN_COUNT
    min_delta_ms: float = 0.0
    max_error_increase: float | None = DEFAULT_MAX_ERROR_INCREASE  # fraction (pp / 100); None: not judged
    max_retention_drop: float | None = DEFAULT_MAX_RETENTION_DROP
    allow_missing: bool = False  # a baseline row gone from the current run is then a note, not a regression
    strict_shape: bool = False  # runs that differ in shape fail, not only warn


@dataclass
class Comparison:
    rows: list[RowDelta]
    violations: list[Violation] = field(default_factory=list)
    skipped_rows: list[str] = field(default_factory=list)  # too few samples to judge
    gone_rows: list[str] = field(default_factory=list)
    shape: list[str] = field(default_factory=list)  # how the runs differ in shape, e.g. "users 50 -> 10"
    drift: list[DriftRow] = field(default_factory=list)


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
    comparison = Comparison(rows, shape=shape_differences(base, cur), drift=drift_rows(base, cur))
    if rules is not None:
        check_runs(comparison, base, cur)
        check(comparison, rules)
        if rules.strict_shape and comparison.shape:
            what = "the runs differ in shape: " + "; ".join(comparison.shape)
            comparison.violations.append(Violation("runs", what, None, None, "(--strict-shape)"))
    return comparison


def pct_change(base: float | None, cur: float | None) -> float | None:
    if base is None or cur is None or base == 0:
        return None
    return (cur - base) / base


def check_runs(comparison: Comparison, base: dict[str, Any], cur: dict[str, Any]) -> None:
    """Whole-run checks: a current run (or a baseline) with no successful turn is a regression."""
    for which, summary in (("current run", cur), ("baseline", base)):
        problem = no_success_problem(summary)
        if problem is not None:
            comparison.violations.append(Violation(which, problem, None, None, ""))


def _latency_violations(row: RowDelta, rules: RegressionRules) -> list[Violation]:
    out = []
    assert rules.max_regression is not None
    for metric in rules.metrics:
        for stat in rules.stats:
            base = row.latency("base", f"{metric}_ms", stat)
            cur = row.latency("cur", f"{metric}_ms", stat)
            if base is not None and cur is None:
                out.append(Violation(row.label, f"{metric} {stat}: no data now (was {base:.3f} ms)", base, None, ""))
                continue
            change = pct_change(base, cur)
            if change is None or base is None or cur is None:
                continue
            if change > rules.max_regression and cur - base >= rules.min_delta_ms:
                what = f"{metric} {stat} {base:.3f} -> {cur:.3f} ms ({100 * change:+.1f}%)"
                out.append(Violation(row.label, what, base, cur, f"> +{100 * rules.max_regression:g}% allowed"))
    return out


def _rate_violations(row: RowDelta, rules: RegressionRules) -> list[Violation]:
    out = []
    if rules.max_error_increase is not None:
        base, cur = row.error_rate("base"), row.error_rate("cur")
        if base is not None and cur is not None and cur - base > rules.max_error_increase:
            what = f"error rate {100 * base:.2f}% -> {100 * cur:.2f}% ({100 * (cur - base):+.2f} pp)"
            out.append(Violation(row.label, what, base, cur, f"> +{100 * rules.max_error_increase:g} pp allowed"))
    if rules.max_retention_drop is not None:
        base, cur = row.retention("base"), row.retention("cur")
        if base is not None and cur is not None and base - cur > rules.max_retention_drop:
            what = f"retention {100 * base:.2f}% -> {100 * cur:.2f}% ({100 * (cur - base):+.2f} pp)"
            out.append(Violation(row.label, what, base, cur, f"> -{100 * rules.max_retention_drop:g} pp allowed"))
    return out


def check(comparison: Comparison, rules: RegressionRules) -> None:
    for row in comparison.rows:
        if row.base is None or not row.count("base"):
            continue  # new in the current run: shown, nothing to compare with
        if row.cur is None or not row.count("cur"):
            if row.count("base") < rules.min_count:
                comparison.skipped_rows.append(row.label)
            elif rules.allow_missing:
                comparison.gone_rows.append(row.label)
            else:
                what = f"gone: {row.count('base')} turns in the baseline, none now"
                comparison.violations.append(Violation(row.label, what, float(row.count("base")), 0.0, ""))
            continue
        if min(row.count("base"), row.count("cur")) < rules.min_count:
            comparison.skipped_rows.append(row.label)
            continue
        if rules.max_regression is not None:
            comparison.violations.extend(_latency_violations(row, rules))
        comparison.violations.extend(_rate_violations(row, rules))


def verdict_lines(comparison: Comparison, rules: RegressionRules) -> list[str]:
    out = [v.line() for v in comparison.violations]
    if comparison.shape and not rules.strict_shape:
        out.append(
            "WARNING: the runs differ in shape, so the deltas measure that too: "
            + "; ".join(comparison.shape)
            + " (--strict-shape makes this fail)"
        )
    if comparison.gone_rows:
        out.append(f"gone from the current run (allowed by --allow-missing): {', '.join(comparison.gone_rows)}")
    if comparison.skipped_rows:
        out.append(
            f"not judged (fewer than {rules.min_count} turns in a run): {len(comparison.skipped_rows)} row(s): "
            + ", ".join(comparison.skipped_rows[:8])
            + (" ..." if len(comparison.skipped_rows) > 8 else "")
        )
    off = [
        name
        for name, limit in (("latency (no --max-regression)", rules.max_regression),
                            ("error rate (--max-error-increase off)", rules.max_error_increase),
                            ("retention (--max-retention-drop off)", rules.max_retention_drop))
        if limit is None
    ]  # fmt: skip
    if off:
        out.append("not judged: " + ", ".join(off))
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


def parse_limit(text: str, option: str) -> float | None:
    """A limit that may be switched off: 'off' -> None, else :func:`parse_percent`."""
    if text.strip().lower() == "off":
        return None
    try:
        return parse_percent(text, option)
    except ValueError as exc:
        raise ValueError(f"{exc} (or off)") from None


def comparison_stats(stats: Sequence[str]) -> tuple[str, ...]:
    bad = [s for s in stats if s not in SUMMARY_STATS]
    if bad:
        raise ValueError(f"--stat {bad[0]!r}: choose from {', '.join(SUMMARY_STATS)}")
    return tuple(stats)
