"""The end-of-run console table: one row per dialogue and turn, then the run's outages, recovery and drift.

A latency with no sample (a block with ``count`` 0, or a null statistic) is shown as "-", never 0.0. The lines
after the table come from ``summary.json``: per transport its TPOT and its latency from the intended start, its
SLO goodput and attainment (with ``--slo``), the steady window (with ``--warmup``/``--cooldown``), then
``outages``, ``recovery`` and ``drift`` when the run has them.
"""

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
_LATENCIES = (("e2e_ms", "p50"), ("e2e_ms", "p95"), ("e2e_ms", "p99"), ("ttft_ms", "p50"), ("ttft_ms", "p99"),
              ("itl_ms", "p50"), ("itl_ms", "p99"))  # fmt: skip


def _stat(row: dict[str, Any], field: str, stat: str) -> float | None:
    block = row.get(field) or {}
    if not block.get("count"):
        return None
    value = block.get(stat)
    return None if value is None else float(value)


def _row_values(row: dict[str, Any]) -> list[Any]:
    r = row.get("retention") or {}
    retained = f"{100.0 * r['passed'] / r['checked']:.1f}%" if r.get("checked") else "-"
    return [
        row.get("transport", ""),
        row.get("dialogue", "(all)"),
        row.get("turn", 0),
        row["count"],
        row["failures"],
        *(_stat(row, field, stat) for field, stat in _LATENCIES),
        retained,
    ]


def _lag_line(lag: dict[str, Any]) -> str:
    if not lag.get("count") or lag.get("p50") is None:
        return "generator lag: - (no samples)"
    return f"generator lag: p50 {lag['p50']} ms, p99 {lag['p99']} ms, max {lag['max']} ms"


def _ms(block: dict[str, Any] | None, stat: str) -> str:
    value = (block or {}).get(stat) if (block or {}).get("count") else None
    return "-" if value is None else f"{float(value):.1f} ms"


def latency_lines(summary: dict[str, Any]) -> list[str]:
    """One line per transport: TPOT p50/p99 and the e2e p99 from the intended start beside the service e2e p99."""
    lines = []
    for transport, row in sorted((summary.get("transports") or {}).items()):
        tpot, intended = row.get("tpot_ms"), row.get("e2e_from_intended_ms")
        if tpot is None and intended is None:
            continue  # a run folder from before these figures
        lines.append(
            f"{transport}: TPOT p50 {_ms(tpot, 'p50')}, p99 {_ms(tpot, 'p99')}; e2e p99 from the intended start "
            f"{_ms(intended, 'p99')} (service e2e p99 {_ms(row.get('e2e_ms'), 'p99')})"
        )
    return lines


def slo_lines(summary: dict[str, Any]) -> list[str]:
    """With --slo: one line per transport, its goodput and attainment and the objectives that did not hold."""
    slo = summary.get("slo")
    if not slo:
        return []
    lines = [f"SLOs: {'; '.join(slo.get('objectives') or [])}"]
    verdicts = slo.get("transports") or {}
    for transport, row in sorted((summary.get("transports") or {}).items()):
        figures = row.get("slo") or {}
        attainment, goodput = figures.get("attainment"), figures.get("goodput_per_s")
        attained = "-" if attainment is None else f"{100.0 * float(attainment):.1f}%"
        good = "-" if goodput is None else f"{float(goodput):.2f} turns/s"
        checks = (verdicts.get(transport) or {}).get("checks") or []
        missed = [c["objective"] for c in checks if c.get("held") is not True]
        held = "all held" if checks and not missed else f"not held: {', '.join(missed)}" if missed else "-"
        lines.append(
            f"SLO {transport}: goodput {good} of {float(row.get('turns_per_s') or 0.0):.2f} turns/s, "
            f"attainment {attained} ({figures.get('met', 0)}/{row.get('count', 0)} turns); {held}"
        )
    return lines


def steady_line(run: dict[str, Any]) -> list[str]:
    """The steady window, when a warm-up or cool-down was asked for."""
    steady = run.get("steady")
    if not steady or not (run.get("warmup_s") or run.get("cooldown_s")):
        return []
    return [
        f"steady state: {float(steady.get('duration_s') or 0.0):.1f} s (warm-up {float(run.get('warmup_s') or 0):g} s "
        f"and cool-down {float(run.get('cooldown_s') or 0):g} s left out of the figures)"
    ]


def _seconds(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f} s"


def event_lines(summary: dict[str, Any]) -> list[str]:
    """Outages per transport (from ``recovery`` and ``outages``), then each fault the server injected."""
    lines = []
    outages = summary.get("outages") or []
    for transport, r in sorted((summary.get("recovery") or {}).items()):
        mine = [o for o in outages if o.get("transport") == transport]
        n = int(r.get("outages") or len(mine))
        if not n:
            lines.append(f"outages {transport}: none")
            continue
        still = sum(1 for o in mine if o.get("end_s") is None)
        longest = max((float(o["duration_s"]) for o in mine if o.get("duration_s") is not None), default=None)
        failed = sum(int(o.get("failed_turns") or 0) for o in mine)
        text = (
            f"outages {transport}: {n} ({failed} failed turns, longest {_seconds(longest)}), "
            f"recovery max {_seconds(r.get('max_s'))}, p50 {_seconds(r.get('p50_s'))}"
        )
        if still:
            text += f"; {still} still out at the end"
        lines.append(text)
    for fault in summary.get("faults") or []:
        end = fault.get("end_s")
        span = f"{float(fault['start_s']):.1f}-{float(end):.1f} s" if end is not None else f"{fault['start_s']} s"
        lines.append(f"server fault: {fault.get('fault', fault.get('kind'))} at {span}")
    return lines


def drift_lines(summary: dict[str, Any]) -> list[str]:
    """One line per transport: the p99 TTFT and error-rate trend per hour (``-`` without enough windows)."""
    lines = []
    for transport, d in sorted((summary.get("drift") or {}).items()):
        ttft = (d.get("ttft_p99") or {}).get("pct_per_hour")
        errors = (d.get("error_rate") or {}).get("per_hour")
        ttft_text = "-" if ttft is None else f"{float(ttft):+.2f}%/h"
        errors_text = "-" if errors is None else f"{100.0 * float(errors):+.3f}pp/h"
        lines.append(f"drift {transport}: TTFT p99 {ttft_text}, error rate {errors_text}")
    return lines


def format_table(summary: dict[str, Any]) -> str:
    """Latencies in ms. Aggregate rows ("(all)") close each transport's block."""
    header = " ".join(f"{name:>{width}}" if fmt != "s" else f"{name:<{width}}" for name, width, fmt in _COLUMNS)
    lines = ["Per-turn latency (ms) and context retention", header, "-" * len(header)]
    by_transport: dict[str, list[dict[str, Any]]] = {}
    for row in summary["turns"]:
        by_transport.setdefault(row["transport"], []).append(row)
    for transport in sorted(set(by_transport) | set(summary["transports"])):
        for row in by_transport.get(transport, []):
            lines.append(_format(_row_values(row)))
        agg = summary["transports"].get(transport)
        if agg is not None:
            lines.append(_format(_row_values({**agg, "transport": transport, "dialogue": "(all)", "turn": 0})))
    lines.append(_lag_line(summary.get("generator_lag_ms") or {}))
    lines.extend(latency_lines(summary))
    lines.extend(slo_lines(summary))
    lines.extend(steady_line(summary.get("run") or {}))
    lines.extend(event_lines(summary))
    lines.extend(drift_lines(summary))
    lines.extend(f"WARNING: {w}" for w in summary.get("warnings", []))
    return "\n".join(lines)


def _format(values: list[Any]) -> str:
    out = []
    for (_, width, fmt), value in zip(_COLUMNS, values, strict=True):
        if fmt == "s":
            out.append(f"{str(value)[:width]:<{width}}")
        elif value is None:
            out.append(f"{'-':>{width}}")
        else:
            out.append(f"{value:>{width}{fmt}}")
    return " ".join(out)
