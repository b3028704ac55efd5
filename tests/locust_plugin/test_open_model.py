"""The open model's cases (``open_model_cases.py``) run in a Python of their own: importing Locust monkey-patches
the process with gevent, which the rest of the test session must not get."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

CASES = Path(__file__).with_name("open_model_cases.py")
RUN_CASES = "import locust, sys, pytest; sys.exit(pytest.main(sys.argv[1:]))"


def test_the_open_model_in_a_gevent_process(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", RUN_CASES, "-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path),
         "-W", "ignore::pytest.PytestAssertRewriteWarning", str(CASES)],  # Locust's own pytest plugin, imported first
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout
