"""Run the contract's checks against one target and say how each went (the CLI and scripts; pytest runs them as
tests through :mod:`loadgen.testing.pytest_plugin`)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from loadgen.errors import LoadgenError
from loadgen.testing.checks import REPLY_CHECKS, Check, CheckSkipped, ContractFailure
from loadgen.testing.failures import FAILURE_CHECKS
from loadgen.testing.gevent_check import check_under_gevent
from loadgen.testing.target import ContractTarget

#: Every check, in the order they run; the last one starts a gevent-patched process.
CHECKS: tuple[Check, ...] = (*REPLY_CHECKS, *FAILURE_CHECKS, check_under_gevent)


def check_name(check: Check) -> str:
    return check.__name__.removeprefix("check_")


@dataclass(frozen=True)
class CheckResult:
    name: str
    outcome: str  # "pass" | "fail" | "skip"
    message: str
    seconds: float

    def line(self) -> str:
        text = f"{self.outcome.upper():4}  {self.name:22} {self.seconds:6.2f} s"
        return f"{text}  {self.message}" if self.message else text


def run_check(check: Check, target: ContractTarget) -> CheckResult:
    """One check; an error of the kit's own (the transport cannot even be made) counts as a failure."""
    started = time.perf_counter()
    try:
        check(target)
    except CheckSkipped as exc:
        return CheckResult(check_name(check), "skip", str(exc), time.perf_counter() - started)
    except (ContractFailure, LoadgenError) as exc:
        return CheckResult(check_name(check), "fail", str(exc), time.perf_counter() - started)
    return CheckResult(check_name(check), "pass", "", time.perf_counter() - started)


def run_contract(target: ContractTarget, checks: Iterable[Check] = CHECKS) -> list[CheckResult]:
    """Every check in turn, whatever the others gave."""
    return [run_check(check, target) for check in checks]


__all__ = ["CHECKS", "CheckResult", "check_name", "run_check", "run_contract"]
