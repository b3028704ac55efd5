"""Locust option handling. Importing ``loadgen.locust_plugin`` imports Locust, which monkey-patches the process
with gevent, so each check runs in a Python of its own."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT


def _json_file_after_drop(processes: str, json_file: str) -> str:
    code = (
        "from argparse import Namespace\n"
        "from loadgen.locust_plugin.options import drop_inherited_json_file\n"
        f"parsed = Namespace(processes={processes}, json_file={json_file!r})\n"
        "drop_inherited_json_file(parsed)\n"
        "print(parsed.json_file)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_forked_worker_drops_the_masters_json_file() -> None:
    # a --processes worker would overwrite the master's merged stats with its own, near-empty ones
    assert _json_file_after_drop("2", "out/stats") == "None"


def test_standalone_worker_keeps_its_json_file() -> None:
    assert _json_file_after_drop("None", "out/stats") == "out/stats"
