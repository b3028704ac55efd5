"""A transport comparison put together from its runs: the comparison's own ``rounds.json``, or run folders.

- :func:`from_rounds_file`: a comparison folder (``reports/<id>/rounds.json``, written as the runs go): every
  run with what was measured beside it, each cut at the warm-up's end.
- :func:`from_folders`: finished run folders with no ``rounds.json`` (``--runs a,b,c``): each transport in a
  folder is one round of the arm of that name (folders of one transport given twice are two rounds); there is no
  CPU or floor figure, and the warm-up cut is ``--warmup`` (none unless given).
- :func:`read_sweep`: ``sweep.json`` of a sweep folder (``{"transports": {name: {"max_sustainable_turns_per_s":
  x}}}``), the highest load per transport that held the SLO.

Then each run is judged (lagging or empty runs left out, :func:`~.transports_rounds.judge`) and the arms'
figures and differences taken (:mod:`.transports_stats`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from loadgen.analysis.bootstrap import RESAMPLES
from loadgen.errors import ConfigError
from loadgen.report.rundata import RunData, load_run
from loadgen.report.transports import Comparison
from loadgen.report.transports_rounds import LAG_LIMIT_MS, Beside, RoundRun, judge, measured
from loadgen.report.transports_runner import ROUNDS_FILE
from loadgen.report.transports_stats import arm_result, differences
from loadgen.transports import redact_url

SWEEP_FILE = "sweep.json"


@dataclass(frozen=True)
class Judging:
    """How runs are cut and judged (``warmup_s`` None: a comparison's own, or none for run folders)."""

    warmup_s: float | None = None
    lag_limit_ms: float = LAG_LIMIT_MS
    keep_lagging: bool = False
    resamples: int = RESAMPLES


def round_run(arm: str, transport: str, round_no: int, data: RunData, beside: Beside | None, how: Judging) -> RoundRun:
    window, batch = measured(data, transport, how.warmup_s or 0.0)
    run = RoundRun(arm, transport, round_no, data, window, batch, beside)
    return judge(run, lag_limit_ms=how.lag_limit_ms, keep_lagging=how.keep_lagging)


def compare(title: str, arms: Sequence[tuple[str, str]], runs: Sequence[RoundRun], how: Judging) -> Comparison:
    """Every arm's figures over its runs (``arms``: (label, transport) in the order given) and the differences."""
    results = [
        arm_result(label, transport, [r for r in runs if r.arm == label], resamples=how.resamples)
        for label, transport in arms
    ]
    comparison = Comparison(title, results, differences(results))
    comparison.meta.update(
        warmup_s=how.warmup_s or 0.0,
        lag_limit_ms=how.lag_limit_ms,
        keep_lagging_rounds=how.keep_lagging,
        resamples=how.resamples,
    )
    comparison.notes.extend(notes(arms, runs))
    return comparison


def from_folders(folders: Sequence[Path], title: str, how: Judging) -> Comparison:
    runs: list[RoundRun] = []
    arms: list[tuple[str, str]] = []
    for folder in folders:
        data = load_run(folder)
        for transport in data.transports() or [data.run_id]:
            if (transport, transport) not in arms:
                arms.append((transport, transport))
            round_no = 1 + sum(1 for r in runs if r.arm == transport)
            runs.append(round_run(transport, transport, round_no, data, None, how))
    return compare(title, arms, runs, how)


def from_rounds_file(out_dir: Path, title: str, how: Judging) -> Comparison:
    """The comparison in ``out_dir`` from its ``rounds.json``; runs whose folder is missing are noted, not read."""
    path = out_dir / ROUNDS_FILE
    try:
        saved: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        arms = [(str(a["arm"]), str(a["transport"])) for a in saved["arms"]]
        entries = list(saved["runs"])
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a comparison's rounds file ({exc})") from exc
    if how.warmup_s is None:
        how = replace(how, warmup_s=float(saved.get("warmup_s") or 0.0))
    runs, missing = [], []
    reports_dir = out_dir.parent
    for entry in entries:
        folder = reports_dir / str(entry["run_dir"])
        if not (folder / "summary.json").exists():
            missing.append(f"round {entry['round']}, {entry['arm']}: no run folder {folder} (see {entry.get('log')})")
            continue
        beside = Beside.from_json(entry)
        runs.append(round_run(entry["arm"], entry["transport"], int(entry["round"]), load_run(folder), beside, how))
    comparison = compare(title, arms, runs, how)
    comparison.meta.update(repeats=saved.get("repeats"), order=saved.get("order"), users=saved.get("users"))
    comparison.notes[:0] = [f"MISSING {m}" for m in missing]
    if saved.get("interrupted"):
        comparison.notes.insert(
            0, f"INTERRUPTED: {len(entries)} of {len(arms) * int(saved.get('repeats') or 1)} runs ran"
        )
    return comparison


_LAG_WARNING = "load generator lag p99 is"


def notes(arms: Sequence[tuple[str, str]], runs: Sequence[RoundRun]) -> list[str]:
    out = []
    seen: set[str] = set()
    for run in runs:
        meta = run.data.summary.get("run", {})
        if run.arm not in seen:
            seen.add(run.arm)
            out.append(
                f"{run.arm}: transport {run.transport}, {meta.get('users')} users, runs of {meta.get('duration_s')} s, "
                f"target {redact_url(str(meta.get('target')))}"
            )
        faults = [str(f.get("fault") or f.get("kind")) for f in run.data.summary.get("faults") or []]
        if faults:
            out.append(f"{run.arm} round {run.round}: server faults injected: {'; '.join(faults)}")
        if not run.kept:
            hint = " (--keep-lagging-rounds keeps it)" if "lag" in (run.why_left_out or "") else ""
            out.append(f"{run.arm} round {run.round} left out: {run.why_left_out}{hint}")
        warnings = run.data.summary.get("warnings", [])
        # the generator's lag is judged per round (the rounds table shows it): its run-level warning is left out
        out.extend(f"{run.arm} round {run.round}: WARNING {w}" for w in warnings if not w.startswith(_LAG_WARNING))
    empty = [label for label, _ in arms if not any(r.kept for r in runs if r.arm == label)]
    if empty:
        out.insert(0, f"NOTHING TO JUDGE for {', '.join(empty)}: no run was kept (see below and the rounds table)")
    return out


def read_sweep(folder: Path) -> tuple[dict[str, float | None], Path | None]:
    """Max turns/s within the SLO per transport from ``folder/sweep.json``, and the sweep's page if it has one."""
    path = folder / SWEEP_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        found = {
            str(name): (
                None if v.get("max_sustainable_turns_per_s") is None else float(v["max_sustainable_turns_per_s"])
            )
            for name, v in data["transports"].items()
        }
    except OSError as exc:
        raise ConfigError(
            f"--sweep {folder}: cannot read {path} ({exc.strerror or exc}); give a sweep's folder"
        ) from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"--sweep {folder}: {path} is not a sweep's result (expected "
            '{"transports": {NAME: {"max_sustainable_turns_per_s": X}}}: ' + f"{exc})"
        ) from exc
    pages = sorted(folder.glob("*.html"))
    return found, pages[0] if pages else None


def apply_sweep(comparison: Comparison, sweep: dict[str, float | None], page: Path | None) -> None:
    """Each arm's max turns/s within the SLO: the sweep's figure for its label, else for its transport."""
    for arm in comparison.arms:
        comparison.sweep[arm.arm] = sweep.get(arm.arm, sweep.get(arm.transport))
    if page is not None:
        comparison.meta["sweep_page"] = str(page)


__all__ = [
    "SWEEP_FILE",
    "Judging",
    "apply_sweep",
    "compare",
    "from_folders",
    "from_rounds_file",
    "notes",
    "read_sweep",
    "round_run",
]
