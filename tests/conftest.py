"""Shared test helpers: where the repository is, whether a RabbitMQ broker answers, and CI's rule on skips.

In CI (``CI`` set, as ``.ci/run`` does) a skipped test fails the run unless it is marked
``@pytest.mark.allow_skip(reason="...")``: a missing broker, torch, Chromium or openssl must never turn into a
green run that tested less. Every skip is listed at the end of the run, allowed or not.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BROKER_HINT = "no RabbitMQ on 127.0.0.1:5672: start one with `rabbitmq-server -detached` (guest/guest)"


def broker_available(host: str = "127.0.0.1", port: int = 5672, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_broker() -> None:
    """Skip without a broker on a developer machine; fail in CI, where .ci/run starts one."""
    if broker_available():
        return
    if IN_CI:
        pytest.fail(BROKER_HINT)
    pytest.skip(BROKER_HINT)


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A throw-away self-signed certificate for 127.0.0.1 (cert, key)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


# ---------------------------------------------------------------------------------------------------------------
# CI: a skip is a failure unless allowed


def skip_is_allowed(item: pytest.Item | None) -> bool:
    return item is not None and item.get_closest_marker("allow_skip") is not None


_skips: list[tuple[str, str, bool]] = []  # (test id, reason, allowed)


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        allowed = skip_is_allowed(item)
        _skips.append((item.nodeid, _skip_reason(report), allowed))
        if IN_CI and not allowed:
            report.outcome = "failed"
            report.longrepr = f"skipped in CI, where a skip is a failure: {_skip_reason(report)}"


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:
        _skips.append((report.nodeid, _skip_reason(report), False))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # a skipped test already failed above; a module skipped whole at collection fails the run here
    if IN_CI and exitstatus == 0 and any(not allowed for _, _, allowed in _skips):
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _skips:
        return
    terminalreporter.section("skipped tests")
    for nodeid, reason, allowed in _skips:
        mark = "allowed" if allowed else ("FAILS IN CI" if IN_CI else "would fail in CI")
        terminalreporter.write_line(f"{nodeid}: {reason} [{mark}]")
