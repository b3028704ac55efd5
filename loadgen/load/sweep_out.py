"""A load sweep written down: ``sweep.json`` (every step's figures and each transport's knee) and ``sweep.md`` (the
headline table: per transport the average latency at the knee, the highest throughput within the SLO and the error
rate at the knee; then every step).

The knee (:func:`loadgen.analysis.knee.find_knee`) is the highest step that held; ``max_sustainable_turns_per_s`` is
the throughput measured there (successful turns per second), ``ceiling_turns_per_s`` the highest measured at any
step, and ``limited_by_generator`` says the first step above the knee failed only because the generator fell behind
(its lag p99 passed the limit, 5 ms unless ``--lag-limit-ms``): then the knee says more about the load generator
than the service.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from loadgen.load.sweep_runner import Sweep
from loadgen.load.sweep_step import StepResult, json_load
from loadgen.transports import redact_url

SCHEMA_VERSION = 1
SWEEP_JSON = "sweep.json"
SWEEP_MD = "sweep.md"
SWEEP_HTML = "sweep.html"


def load_unit(mode: str) -> str:
    return "users" if mode == "users" else "conversations/s"


def transport_block(sweep: Sweep, transport: str) -> dict[str, Any]:
    knee = sweep.knee(transport)
    steps = sweep.of(transport)
    at_knee = next((s for s in steps if knee.knee is not None and s.load == knee.knee.load), None)
    return {
        "max_sustainable_turns_per_s": _round(knee.max_sustainable_turns_per_s),
        "knee_load": None if knee.knee is None else json_load(knee.knee.load),
        "ceiling_turns_per_s": _round(knee.ceiling_turns_per_s),
        "limited_by_generator": knee.limited_by_generator,
        "e2e_mean_ms_at_knee": None if at_knee is None else at_knee.e2e_ms.get("mean"),
        "error_rate_at_knee": None if at_knee is None else round(at_knee.error_rate, 6),
        "held_any": knee.knee is not None,
        "steps": [s.to_json(sweep.plan.out_dir) for s in steps],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def to_json(sweep: Sweep) -> str:
    plan = sweep.plan
    data = {
        "schema_version": SCHEMA_VERSION,
        "id": plan.sweep_id,
        "mode": plan.mode,
        "loads": [json_load(load) for load in plan.loads],
        "step_s": plan.step_s,
        "warmup_s": plan.warmup_s,
        "slo": list(plan.slo_texts),
        "max_error_rate": plan.max_error_rate,
        "generator_lag_limit_ms": plan.lag_limit_ms,
        "find_steps": plan.find_steps,
        "hosts": {t: redact_url(u) for t, u in plan.hosts.items()},
        "server_args": [redact_url(a) if "://" in a else a for a in plan.server_args],
        "interrupted": sweep.interrupted,
        "transports": {t: transport_block(sweep, t) for t in plan.transports if t in sweep.steps},
    }
    return json.dumps(data, indent=1) + "\n"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.2f}%"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(r) + " |" for r in rows)
    return lines


HEADLINE = ("transport", "avg latency at knee (ms)", "max QPS within SLO (turns/s)", "error rate at knee",
            "knee", "ceiling (turns/s)", "note")  # fmt: skip
STEP_HEADER = ("load", "turns/s", "goodput", "e2e p50", "e2e p99", "e2e mean", "TTFT p50", "TTFT p99",
               "error rate", "lag p99 (ms)", "SLO", "holds")  # fmt: skip


def _note(block: dict[str, Any]) -> str:
    if not block["held_any"]:
        return "no step held"
    if block["limited_by_generator"]:
        return "the generator fell behind above the knee"
    return ""


def headline_rows(sweep: Sweep) -> list[list[str]]:
    rows = []
    unit = load_unit(sweep.plan.mode)
    for transport in sweep.plan.transports:
        if transport not in sweep.steps:
            continue
        b = transport_block(sweep, transport)
        knee = "-" if b["knee_load"] is None else f"{b['knee_load']:g} {unit}"
        rows.append(
            [
                transport,
                _ms(b["e2e_mean_ms_at_knee"]),
                _rate(b["max_sustainable_turns_per_s"]),
                _pct(b["error_rate_at_knee"]),
                knee,
                _rate(b["ceiling_turns_per_s"]),
                _note(b),
            ]
        )
    return rows


def step_row(s: StepResult) -> list[str]:
    slo = "-" if s.slo_held is None else ("held" if s.slo_held else "broken")
    return [
        f"{s.load:g}", _rate(s.turns_per_s), _rate(s.goodput), _ms(s.e2e_ms.get("p50")), _ms(s.e2e_ms.get("p99")),
        _ms(s.e2e_ms.get("mean")), _ms(s.ttft_ms.get("p50")), _ms(s.ttft_ms.get("p99")), _pct(s.error_rate),
        "-" if s.generator_lag_p99_ms is None else f"{s.generator_lag_p99_ms:.2f}", slo,
        "yes" if s.holds else f"no: {s.why_not}" if s.why_not else "no",
    ]  # fmt: skip


def criteria(sweep: Sweep) -> str:
    plan = sweep.plan
    slos = "; ".join(plan.slo_texts) if plan.slo_texts else "none given"
    return (
        f"A step holds when every SLO held ({slos}), its error rate stayed at or below "
        f"{100 * plan.max_error_rate:g}% and the generator lag p99 at or below {plan.lag_limit_ms:g} ms; "
        f"figures over each step's {plan.step_s:g} s after a {plan.warmup_s:g} s warm-up. The knee is the highest "
        "step that held; max QPS within SLO is the throughput measured there (successful turns per second), the "
        "ceiling the highest at any step."
    )


def to_markdown(sweep: Sweep) -> str:
    plan = sweep.plan
    lines = [f"# chat-loadgen sweep {plan.sweep_id}", ""]
    if sweep.interrupted:
        lines += ["INTERRUPTED: the sweep was stopped; the tables show the steps that ran.", ""]
    lines += [criteria(sweep), ""]
    lines += _md_table(HEADLINE, headline_rows(sweep))
    for transport in plan.transports:
        steps = sweep.of(transport)
        if not steps:
            continue
        lines += ["", f"## {transport} ({load_unit(plan.mode)})", ""]
        lines += _md_table(STEP_HEADER, [step_row(s) for s in steps])
    return "\n".join(lines) + "\n"


__all__ = [
    "HEADLINE",
    "STEP_HEADER",
    "SWEEP_HTML",
    "SWEEP_JSON",
    "SWEEP_MD",
    "criteria",
    "headline_rows",
    "load_unit",
    "step_row",
    "to_json",
    "to_markdown",
    "transport_block",
]
