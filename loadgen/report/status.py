"""How a run went, in one line, and what makes it unfit to judge (``loadgen report --check``, thresholds).

:func:`run_health` reads ``summary.json`` only. A run that sent no turn (its users crashed at start, or never
ran), a run in which every turn failed, a run that lost a worker process and a run folder that is a checkpoint
(``run.complete`` false: the run was still going, or crashed) are *problems*: ``--check`` fails on each, and
thresholds fail on the first two, whatever the expressions say (a dead service is never a green light).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OK, WARN, BAD = "ok", "warn", "bad"


def turn_totals(summary: dict[str, Any]) -> tuple[int, int]:
    """(turns, failed turns) over every transport of the run."""
    turns = failures = 0
    for agg in (summary.get("transports") or {}).values():
        turns += int(agg.get("count") or 0)
        failures += int(agg.get("failures") or 0)
    return turns, failures


def no_success_problem(summary: dict[str, Any]) -> str | None:
    """Why the run has nothing to judge: no turn sent, or no turn succeeded; None when some turn succeeded."""
    turns, failures = turn_totals(summary)
    if turns == 0:
        return "no turn was sent: the users never completed a turn (did they crash at start? see Locust's errors)"
    if failures >= turns:
        return f"no successful turn: every one of the {turns} turns failed"
    return None


def lost_workers(summary: dict[str, Any]) -> list[str]:
    workers = summary.get("workers") or {}
    return [str(w) for w in workers.get("lost") or []]


@dataclass(frozen=True)
class RunHealth:
    level: str  # OK, WARN or BAD
    headline: str
    problems: list[str] = field(default_factory=list)  # what `loadgen report --check` fails on
    notes: list[str] = field(default_factory=list)  # worth a look, not a failure


def run_health(summary: dict[str, Any]) -> RunHealth:
    run = summary.get("run") or {}
    turns, failures = turn_totals(summary)
    problems: list[str] = []
    notes: list[str] = []
    dead = no_success_problem(summary)
    if dead:
        problems.append(dead)
    lost = lost_workers(summary)
    if lost:
        problems.append(f"{len(lost)} worker process(es) lost during the run ({', '.join(lost)}): figures after their "
                        "last report are missing")  # fmt: skip
    if run.get("complete") is False:
        problems.append("incomplete: this folder is a checkpoint written while the run was going (or it crashed)")
    open_outages = sorted({o.get("transport", "?") for o in summary.get("outages") or [] if o.get("end_s") is None})
    if open_outages:
        notes.append(f"still failing at the end of the run: {', '.join(open_outages)}")
    cut_off = int(run.get("cut_off_turns") or 0)
    if cut_off:
        notes.append(f"{cut_off} turn(s) were in flight when the run stopped (cut off, not counted)")
    if failures and not dead:
        notes.append(f"{failures} of {turns} turns failed ({100.0 * failures / turns:.2f}%)")
    if problems:
        return RunHealth(BAD, "; ".join(problems), problems, notes)
    if notes or summary.get("warnings"):
        warnings = len(summary.get("warnings") or [])
        extra = [f"{warnings} warning(s)"] if warnings else []
        return RunHealth(WARN, f"complete, {turns} turns; " + "; ".join(notes + extra), problems, notes)
    return RunHealth(OK, f"complete, {turns} turns, no failures", problems, notes)
