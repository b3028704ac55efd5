"""Bad options stop a real Locust run before any user starts: exit code 2, one line of ours, no traceback, no run
folder. (The option table itself is unit-tested in ``gevent_cases.py``.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

LOCUSTFILE = REPO_ROOT / "scenarios" / "multiturn.py"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--run-id", "nightly/1"], "chat-loadgen: --run-id 'nightly/1': use letters, digits, '.', '_' and '-' only"),
        (["--think-min", "2", "--think-max", "1"], "chat-loadgen: --think-min 2.0 is larger than --think-max 1.0"),
    ],
)
def test_a_bad_option_exits_2_with_one_line_and_no_run_folder(tmp_path: Path, args: list[str], line: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "1", "-r", "1", "-t", "5s",
         "--dialogues", str(REPO_ROOT / "scenarios" / "dialogues"), "--reports-dir", str(tmp_path / "reports"), *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    ours = [text for text in done.stderr.splitlines() if "chat-loadgen" in text]
    assert ours == [line]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "reports").exists()
