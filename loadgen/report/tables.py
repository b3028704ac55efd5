"""The HTML tables of ``report.html``: per turn, per window ("per hour"), drift, outages and faults.

One rule for a missing figure: ``None`` (or a latency block with ``count`` 0) is shown as "-", never 0.
Column headings may wrap and the tables are as narrow as their figures allow, so each fits a 1,400 px window.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

DASH = "-"


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def num(value: Any, digits: int | None = None) -> str:
    """A figure for display: "-" for no data; ms with 2 decimals under 10, 1 above (or ``digits``)."""
    if value is None:
        return DASH
    value = float(value)
    if digits is None:
        digits = 2 if abs(value) < 10 else 1
    return f"{value:.{digits}f}"


def pct(value: Any, digits: int = 2) -> str:
    return DASH if value is None else f"{100.0 * float(value):.{digits}f}%"


def latency(block: dict[str, Any] | None, stat: str, digits: int | None = None) -> str:
    """One statistic of a latency block; "-" when the block has no samples (``count`` 0 or values null)."""
    if not block or not block.get("count"):
        return DASH
    return num(block.get(stat), digits)


def table(table_id: str, header: Sequence[str], rows: Sequence[tuple[str, Sequence[str]]], left: int = 1) -> str:
    """An HTML table: ``rows`` of (tr class, escaped cells); the first ``left`` columns are left-aligned."""

    def cell(tag: str, i: int, text: str) -> str:
        return f'<{tag} class="l">{text}</{tag}>' if i < left else f"<{tag}>{text}</{tag}>"

    lines = [f'<div class="scroll"><table id="{esc(table_id)}">', "<thead><tr>"]
    lines.extend(cell("th", i, esc(h)) for i, h in enumerate(header))
    lines.append("</tr></thead><tbody>")
    for css, cells in rows:
        attr = f' class="{css}"' if css else ""
        lines.append(f"<tr{attr}>" + "".join(cell("td", i, c) for i, c in enumerate(cells)) + "</tr>")
    lines.append("</tbody></table></div>")
    return "\n".join(lines)


# --- per turn ----------------------------------------------------------------------------------------------
TURN_HEADER: tuple[str, ...] = (
    "transport", "dialogue", "turn", "turns", "failed",
    "e2e p50", "e2e p95", "e2e p99", "e2e max", "TTFT p50", "TTFT p95", "TTFT p99", "TTFT max",
    "ITL p50", "ITL p95", "ITL p99", "ITL max", "out tok/s per user", "out tok/s total", "retention",
)  # fmt: skip


def _failed(row: dict[str, Any]) -> str:
    failures = int(row.get("failures") or 0)
    kinds = {k: int(n) for k, n in (row.get("failures_by_kind") or {}).items() if n}
    if not failures or not kinds:
        return str(failures)
    return f"{failures} ({', '.join(f'{n} {k}' for k, n in kinds.items())})"


def retention_cell(row: dict[str, Any]) -> str:
    r = row.get("retention") or {}
    if not r.get("checked"):
        return DASH
    return f"{100.0 * r['passed'] / r['checked']:.1f}% ({r['passed']}/{r['checked']})"


def _turn_cells(row: dict[str, Any], transport: str, dialogue: str, turn: str) -> list[str]:
    cells = [esc(transport), esc(dialogue), esc(turn), str(row.get("count", 0)), esc(_failed(row))]
    for field, digits in (("e2e_ms", None), ("ttft_ms", None), ("itl_ms", 2)):
        block = row.get(field)
        cells.extend(latency(block, s, digits) for s in ("p50", "p95", "p99", "max"))
    streamed = bool((row.get("e2e_ms") or {}).get("count"))  # no reply, no rate while one streams
    cells.append(num(row.get("output_tokens_per_s_per_user") if streamed else None, 1))
    cells.append(num(row.get("output_tokens_per_s"), 1))
    cells.append(esc(retention_cell(row)))
    return cells


def turns_table(summary: dict[str, Any]) -> str:
    rows: list[tuple[str, Sequence[str]]] = []
    by_transport: dict[str, list[dict[str, Any]]] = {}
    for row in summary.get("turns", []):
        by_transport.setdefault(row["transport"], []).append(row)
    aggregates = summary.get("transports", {})
    for transport in sorted(set(by_transport) | set(aggregates)):
        for row in by_transport.get(transport, []):
            rows.append(("", _turn_cells(row, transport, row["dialogue"], str(row["turn"]))))
        agg = aggregates.get(transport)
        if agg is not None:
            rows.append(("agg", _turn_cells(agg, transport, "(all dialogues)", "all")))
    return table("turns-table", TURN_HEADER, rows, left=2)


# --- per token and from the intended start ---------------------------------------------------------------------
INTENDED_HEADER: tuple[str, ...] = (
    "transport", "TPOT p50", "TPOT p95", "TPOT p99", "ITL p50", "ITL p99", "e2e p50", "e2e p99",
    "e2e from intended p50", "e2e from intended p99", "schedule lag p99",
)  # fmt: skip


def intended_table(summary: dict[str, Any]) -> str | None:
    """Per transport: TPOT beside ITL, and e2e from the intended start beside the service e2e (None in a run folder
    from before these figures)."""
    rows: list[tuple[str, Sequence[str]]] = []
    for transport, row in sorted((summary.get("transports") or {}).items()):
        if row.get("tpot_ms") is None and row.get("e2e_from_intended_ms") is None:
            continue
        cells = [esc(transport)]
        cells.extend(latency(row.get("tpot_ms"), s, 2) for s in ("p50", "p95", "p99"))
        cells.extend(latency(row.get("itl_ms"), s, 2) for s in ("p50", "p99"))
        cells.extend(latency(row.get("e2e_ms"), s) for s in ("p50", "p99"))
        cells.extend(latency(row.get("e2e_from_intended_ms"), s) for s in ("p50", "p99"))
        cells.append(latency(row.get("schedule_lag_ms"), "p99"))
        rows.append(("agg", cells))
    if not rows:
        return None
    return table("intended-table", INTENDED_HEADER, rows)


# --- SLOs -------------------------------------------------------------------------------------------------------
SLO_HEADER: tuple[str, ...] = ("transport", "objective", "value", "held")


def slo_table(summary: dict[str, Any]) -> str | None:
    """With --slo: per transport its goodput and attainment, then each objective as written and whether it held."""
    slo = summary.get("slo")
    if not slo:
        return None
    rows: list[tuple[str, Sequence[str]]] = []
    aggregates = summary.get("transports") or {}
    for transport, verdict in sorted((slo.get("transports") or {}).items()):
        figures = (aggregates.get(transport) or {}).get("slo") or {}
        goodput = figures.get("goodput_per_s")
        rows.append(("agg", [esc(transport), "goodput (turns/s that met every per-turn SLO)", num(goodput, 2),
                             _held(verdict.get("held"))]))  # fmt: skip
        rows.append(("", [esc(transport), "SLO attainment (turns that met them / turns)",
                          pct(figures.get("attainment"), 1), ""]))  # fmt: skip
        for check in verdict.get("checks") or []:
            value = check.get("value_ms")
            shown = DASH if value is None else f"{float(value):.2f} ms"
            rows.append(("", [esc(transport), esc(str(check.get("objective"))), shown, _held(check.get("held"))]))
    return table("slo-table", SLO_HEADER, rows, left=2)


def _held(held: Any) -> str:
    return "no data" if held is None else ("held" if held else "NOT held")


# --- per window, drift ------------------------------------------------------------------------------------------
WINDOW_HEADER: tuple[str, ...] = (
    "window", "transport", "turns", "errors", "TTFT p50", "TTFT p99", "e2e p50", "e2e p99", "retention",
    "generator lag p99",
)  # fmt: skip


def clock(seconds: Any) -> str:
    """Seconds since the start as h:mm:ss."""
    if seconds is None:
        return DASH
    s = round(float(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def windows_table(summary: dict[str, Any]) -> str | None:
    windows = summary.get("windows") or {}
    rows: list[tuple[str, Sequence[str]]] = []
    for window in windows.get("rows") or []:
        span = f"{clock(window.get('start_s'))}-{clock(window.get('end_s'))}"
        lag = num((window.get("generator_lag_ms") or {}).get("p99"))
        for transport, fig in sorted((window.get("transports") or {}).items()):
            ttft, e2e = fig.get("ttft_ms") or {}, fig.get("e2e_ms") or {}
            rows.append(
                ("", [esc(span), esc(transport), str(fig.get("turns", 0)), pct(fig.get("error_rate")),
                      num(ttft.get("p50")), num(ttft.get("p99")), num(e2e.get("p50")), num(e2e.get("p99")),
                      pct(fig.get("retention_rate"), 1), lag])
            )  # fmt: skip
    if not rows:
        return None
    return table("windows-table", WINDOW_HEADER, rows, left=2)


#: (summary.json drift field, what it is, its unit, whether per_hour is a fraction shown in percentage points)
DRIFT_FIGURES: tuple[tuple[str, str, str, bool], ...] = (
    ("ttft_p99", "TTFT p99", "ms", False),
    ("e2e_p99", "e2e p99", "ms", False),
    ("error_rate", "error rate", "pp", True),
    ("retention_rate", "retention", "pp", True),
)
DRIFT_HEADER = ("transport", "figure", "first window", "trend per hour", "relative", "windows")


def drift_cells(d: dict[str, Any] | None, unit: str, fraction: bool) -> tuple[str, str, str]:
    """(first window, slope per hour, relative slope) of a drift block, "-" where it has none."""
    d = d or {}
    scale = 100.0 if fraction else 1.0
    first = d.get("first")
    per_hour = d.get("per_hour")
    first_text = DASH if first is None else (pct(first) if fraction else f"{num(first)} {unit}")
    slope = DASH if per_hour is None else f"{scale * float(per_hour):+.3g} {unit}/h"
    relative = DASH if fraction or d.get("pct_per_hour") is None else f"{float(d['pct_per_hour']):+.2f}%/h"
    return first_text, slope, relative


def drift_table(summary: dict[str, Any]) -> str | None:
    rows: list[tuple[str, Sequence[str]]] = []
    for transport, figures in sorted((summary.get("drift") or {}).items()):
        for field, label, unit, fraction in DRIFT_FIGURES:
            if field not in figures:
                continue
            first, slope, relative = drift_cells(figures[field], unit, fraction)
            windows = str((figures[field] or {}).get("windows", DASH))
            rows.append(("", [esc(transport), esc(label), esc(first), esc(slope), esc(relative), windows]))
    return table("drift-table", DRIFT_HEADER, rows, left=2) if rows else None


# --- outages and faults -----------------------------------------------------------------------------------------
OUTAGE_HEADER = ("transport", "from", "to", "lasted", "failed turns", "users", "recovery")


def seconds(value: Any) -> str:
    return DASH if value is None else f"{float(value):.2f} s"


def outages_table(summary: dict[str, Any]) -> str | None:
    rows: list[tuple[str, Sequence[str]]] = []
    for o in summary.get("outages") or []:
        still = o.get("end_s") is None
        end = "still out at the end" if still else clock(o.get("end_s"))
        rows.append(
            ("bad" if still else "",
             [esc(o.get("transport", "?")), clock(o.get("start_s")), end, seconds(o.get("duration_s")),
              str(o.get("failed_turns", DASH)), str(o.get("users", DASH)), seconds(o.get("recovery_s"))])
        )  # fmt: skip
    for f in summary.get("faults") or []:
        rows.append(
            ("fault", [esc(f"server fault: {f.get('fault', f.get('kind', '?'))}"), clock(f.get("start_s")),
                       clock(f.get("end_s")) if f.get("end_s") is not None else "(instant)", DASH, DASH, DASH, DASH])
        )  # fmt: skip
    return table("outages-table", OUTAGE_HEADER, rows) if rows else None


def recovery_line(summary: dict[str, Any]) -> list[str]:
    """One line per transport of ``recovery``: "rest: 2 outages, recovery max 1.80 s, p50 0.90 s"."""
    out = []
    for transport, r in sorted((summary.get("recovery") or {}).items()):
        n = int(r.get("outages") or 0)
        if not n:
            out.append(f"{transport}: no outage")
            continue
        out.append(f"{transport}: {n} outage(s), recovery max {seconds(r.get('max_s'))}, p50 {seconds(r.get('p50_s'))}")
    return out
