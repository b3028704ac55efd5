"""The steady state of a run: what is left of it after its warm-up and before its cool-down (``--warmup``,
``--cooldown``).

A turn belongs to the part of the run it *started* in: one started in the first ``warmup_s`` seconds of the test,
or in the last ``cooldown_s`` seconds before its planned end (the start plus ``-t``/``--run-time``), is kept out of
the summary's figures, the thresholds and comparisons (it still goes to ``intervals.jsonl``). A run with no
planned end (the web UI, a load shape without ``-t``) has no cool-down: :meth:`SteadyWindow.warnings` says so.
Rates (turns/s, tokens/s, goodput) are over the steady state's duration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SteadyWindow:
    started_at: float  # unix seconds: the test's start
    warmup_s: float = 0.0
    cooldown_s: float = 0.0
    run_s: float | None = None  # the planned run time; None: unknown (no cool-down then)

    @property
    def start(self) -> float:
        return self.started_at + self.warmup_s

    @property
    def end(self) -> float | None:
        """Where the cool-down begins; None when there is none (no cool-down asked for, or no planned end)."""
        if self.run_s is None or self.cooldown_s <= 0:
            return None
        return self.started_at + max(self.warmup_s, self.run_s - self.cooldown_s)

    def is_steady(self, turn_started: float) -> bool:
        """Whether a turn started at ``turn_started`` (unix seconds) counts in the summary's figures."""
        if turn_started < self.start:
            return False
        end = self.end
        return end is None or turn_started < end

    def run_block(self, ended: float) -> dict[str, Any]:
        """The run block's ``warmup_s``, ``cooldown_s`` and ``steady`` for a run (or a checkpoint) up to ``ended``."""
        start = min(self.start, ended)
        end = ended if self.end is None else min(self.end, ended)
        end = max(start, end)
        return {
            "warmup_s": self.warmup_s,
            "cooldown_s": self.cooldown_s,
            "steady": {"start": round(start, 3), "end": round(end, 3), "duration_s": round(end - start, 3)},
        }

    def warnings(self) -> list[str]:
        if self.cooldown_s > 0 and self.run_s is None:
            return [
                f"--cooldown {self.cooldown_s:g}s was not applied: the run has no planned end (give -t/--run-time); "
                "turns up to the end are in the figures"
            ]
        return []
