"""The transport comparison's figures and text files (``comparison.md``, ``.csv``, ``.json``).

Per arm (a transport, or a labelled second arm of one): every figure of :data:`~.transports_stats.FIGURES` as
the median over its kept rounds with a 95% interval (CSV: ``<figure>``, ``<figure>_ci_low``,
``<figure>_ci_high``; JSON: ``{"value", "ci_low", "ci_high"}``), the turns measured, the rounds kept, the worst
generator lag p99 of a kept round, from ``summary.json`` ``recovery`` the outages and recovery times (the seed's
"error recovery time": give every run the same fault schedule with ``--embedded-server-args '--faults ...'``),
and from a sweep folder the highest load that held the SLO. Then every pairwise difference with its verdict, and
every run (round) with its own figures and whether it was kept. A figure with no data is ``None`` (CSV: empty,
tables: "-"), never 0. The HTML page is :mod:`.transports_page`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from loadgen.analysis.bootstrap import CONFIDENCE
from loadgen.analysis.nested import FEW_ROUNDS
from loadgen.metrics.keys import Count
from loadgen.report.csvout import fmt, write_csv
from loadgen.report.transports_rounds import RoundRun
from loadgen.report.transports_stats import FIGURES, ArmResult, Difference, recovery, round_figures

#: The comparison table: (row key, heading); every figure also has _ci_low and _ci_high columns in the CSV.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("transport", "transport"),
    ("run", "run"),
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
#: The seed's table: what a reader of the comparison wants first.
HEADLINE: tuple[tuple[str, str], ...] = (
    ("transport", "transport"),
    ("e2e_avg_ms", "avg latency (ms)"),
    ("e2e_p95_ms", "p95 latency (ms)"),
    ("max_turns_per_s_slo", "max turns/s within SLO"),
    ("error_rate", "error rate"),
    ("recovery_max_s", "recovery time max (s)"),
)
#: Where the time goes: the wire and server (the floor), what the generator adds, CPU per turn on each side.
TIME: tuple[tuple[str, str], ...] = (
    ("transport", "transport"),
    ("ttft_p50_ms", "TTFT p50 (ms)"),
    ("floor_ttft_p50_ms", "floor TTFT p50 (ms)"),
    ("ttft_above_floor_ms", "above the floor (ms)"),
    ("client_cpu_ms_per_turn", "client CPU per turn (ms)"),
    ("server_cpu_ms_per_turn", "server CPU per request (ms)"),
    ("lag_p99_ms", "generator lag p99 (ms)"),
)
ROUND_COLUMNS: tuple[tuple[str, str], ...] = (
    ("round", "round"),
    ("transport", "arm"),
    ("run", "run"),
    ("kept", "kept"),
    ("turns", "turns"),
    ("window_s", "measured (s)"),
    ("ttft_p50_ms", "TTFT p50 (ms)"),
    ("e2e_p50_ms", "e2e p50 (ms)"),
    ("error_rate", "error rate"),
    ("lag_p99_ms", "generator lag p99 (ms)"),
    ("client_cpu_ms_per_turn", "client CPU per turn (ms)"),
    ("server_cpu_ms_per_turn", "server CPU per request (ms)"),
    ("floor_ttft_p50_ms", "floor TTFT p50 (ms)"),
)
EXTRA_COLUMNS = ("max_turns_per_s_slo", "rounds", "rounds_kept", "lag_p99_ms")
#: The verdicts the text files list (comparison.json has every figure's).
HEADLINE_VERDICTS = (
    "ttft_p50_ms",
    "e2e_avg_ms",
    "e2e_p95_ms",
    "error_rate",
    "ttft_above_floor_ms",
    "client_cpu_ms_per_turn",
    "server_cpu_ms_per_turn",
)
_PERCENT = ("error_rate", "retention")
_FIGURE_KEYS = tuple(f.key for f in FIGURES)


@dataclass
class Comparison:
    title: str
    arms: list[ArmResult]
    diffs: list[Difference]
    notes: list[str] = field(default_factory=list)
    sweep: dict[str, float | None] = field(default_factory=dict)  # arm -> max turns/s within the SLO
    meta: dict[str, Any] = field(default_factory=dict)  # repeats, warm-up, order, lag limit, ...

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [arm_row(a, self.sweep.get(a.arm)) for a in self.arms]

    def round_rows(self) -> list[dict[str, Any]]:
        return [round_row(r) for a in self.arms for r in a.runs]


def arm_row(arm: ArmResult, max_slo: float | None = None) -> dict[str, Any]:
    kept = arm.kept
    row: dict[str, Any] = {
        "transport": arm.arm,
        "run": kept[0].data.run_id if len(arm.runs) == 1 and kept else f"{len(kept)}/{len(arm.runs)} rounds",
        "turns": sum(r.count(Count.TURNS) for r in kept),
    }
    for key in _FIGURE_KEYS:
        found = arm.estimates.get(key)
        iv = found.interval if found is not None else None
        row[key] = found.value if found is not None else None
        row[f"{key}_ci_low"] = iv.low if iv is not None else None
        row[f"{key}_ci_high"] = iv.high if iv is not None else None
    row.update(recovery(kept, arm.transport))
    lags = [lag for r in kept if (lag := r.lag_p99_ms) is not None]
    row.update(
        max_turns_per_s_slo=max_slo, rounds=len(arm.runs), rounds_kept=len(kept), lag_p99_ms=max(lags) if lags else None
    )
    return row


def round_row(run: RoundRun) -> dict[str, Any]:
    figures = round_figures(run)
    row: dict[str, Any] = {
        "round": run.round,
        "transport": run.arm,
        "run": run.data.run_id,
        "kept": "yes" if run.kept else f"no: {run.why_left_out}",
        "turns": run.count(Count.TURNS),
        "window_s": round(run.window_s, 1),
        "lag_p99_ms": run.lag_p99_ms,
    }
    row.update({key: figures[key].value if key in figures else None for key in _FIGURE_KEYS})
    return row


def csv_columns() -> list[str]:
    keys = [k for k, _ in COLUMNS]
    keys += [k for k in _FIGURE_KEYS if k not in keys]
    out: list[str] = []
    for key in keys:
        out.append(key)
        if key in _FIGURE_KEYS:
            out += [f"{key}_ci_low", f"{key}_ci_high"]
    return out + list(EXTRA_COLUMNS)


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    columns = csv_columns()
    return write_csv(columns, ([fmt(r.get(k)) for k in columns] for r in rows))


def to_json(comparison: Comparison) -> str:
    data = {
        "schema_version": 1,
        "title": comparison.title,
        **comparison.meta,
        "confidence": CONFIDENCE,
        "transports": {
            a.arm: {
                "transport": a.transport,
                "figures": {k: e.to_json() for k, e in a.estimates.items()},
                **{k: v for k, v in arm_row(a, comparison.sweep.get(a.arm)).items() if k not in _non_figure_skip()},
            }
            for a in comparison.arms
        },
        "differences": [d.to_json() for d in comparison.diffs],
        "rounds": comparison.round_rows(),
        "notes": comparison.notes,
    }
    return json.dumps(data, indent=1) + "\n"


def _non_figure_skip() -> set[str]:
    """Row keys that comparison.json holds in ``figures`` instead."""
    return {"transport", *_FIGURE_KEYS, *(f"{k}_ci_{s}" for k in _FIGURE_KEYS for s in ("low", "high"))}


def cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key in _PERCENT:
        return f"{100.0 * float(value):.2f}%"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def cell_ci(key: str, row: dict[str, Any]) -> str:
    """A figure with its interval: ``12.3 (11.9-12.8)``; the figure alone when it has none."""
    text = cell(key, row.get(key))
    low, high = row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
    if low is None or high is None or row.get(key) is None:
        return text
    sep = " to " if float(low) < 0 else "-"
    return f"{text} ({cell(key, low)}{sep}{cell(key, high)})"


def _md_table(columns: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]], left: int = 1) -> list[str]:
    lines = ["| " + " | ".join(t for _, t in columns) + " |"]
    lines.append("| " + " | ".join("---" if i < left else "---:" for i in range(len(columns))) + " |")
    lines.extend("| " + " | ".join(cell_ci(k, r) for k, _ in columns) + " |" for r in rows)
    return lines


def method_note(comparison: Comparison) -> str:
    """How the figures and intervals were taken, in one paragraph."""
    rounds = max((len(a.kept) for a in comparison.arms), default=0)
    meta = comparison.meta
    text = (
        f"Each figure is the median over an arm's kept rounds with a {CONFIDENCE:.0%} interval: a two-level bootstrap "
        "(rounds drawn, then turns within each drawn round), paired between arms with the same rounds. "
    )
    warmup = float(meta.get("warmup_s") or 0.0)
    text += f"Warm-up left out: the first {warmup:g} s of each run." if warmup else "No warm-up left out."
    if rounds < FEW_ROUNDS:
        text += (
            f" With {rounds} round(s) per arm the intervals lean on the turns within rounds and leave out most of "
            f"the round-to-round noise of a busy machine: use --repeats {FEW_ROUNDS} or more for verdicts to rely on."
        )
    return text


def verdict_lines(diffs: Sequence[Difference], keys: Sequence[str] = HEADLINE_VERDICTS) -> list[str]:
    return [d.verdict for key in keys for d in diffs if d.figure.key == key]


def to_markdown(comparison: Comparison) -> str:
    rows = comparison.rows
    lines = [f"# {comparison.title}", ""]
    lines.extend(f"- {n}" for n in comparison.notes)
    lines += ["", method_note(comparison), "", "## Per transport", ""]
    lines += _md_table(HEADLINE, rows)
    lines += ["", "## Every figure (median over kept rounds, 95% interval)", ""]
    lines += _md_table(COLUMNS, rows, left=2)
    lines += ["", "## Where the time goes", ""]
    lines += _md_table(TIME, rows)
    verdicts = verdict_lines(comparison.diffs)
    if verdicts:
        lines += ["", "## Differences", ""]
        lines.extend(f"- {v}" for v in verdicts)
    lines += ["", "## Rounds", ""]
    lines += _md_table(ROUND_COLUMNS, comparison.round_rows(), left=4)
    return "\n".join(lines) + "\n"


__all__ = [
    "COLUMNS",
    "HEADLINE",
    "TIME",
    "Comparison",
    "arm_row",
    "cell",
    "cell_ci",
    "csv_columns",
    "method_note",
    "round_row",
    "to_csv",
    "to_json",
    "to_markdown",
    "verdict_lines",
]
