"""Run a file of test cases in a Python of its own: importing Locust monkey-patches the process with gevent, which
the rest of the test session must not get. Locust is imported before pytest there, as the ``locust`` command does
(its own pytest plugin too, hence the assert-rewrite warning ignored)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

RUN_CASES = "import locust, sys, pytest; sys.exit(pytest.main(sys.argv[1:]))"


def run_gevent_cases(cases: Path, tmp_path: Path, timeout_s: float = 240) -> None:
    """Run ``cases`` with pytest in a gevent-patched Python; fail with its output unless every case passed."""
    done = subprocess.run(
        [sys.executable, "-c", RUN_CASES, "-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path),
         "-W", "ignore::pytest.PytestAssertRewriteWarning", str(cases)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout
