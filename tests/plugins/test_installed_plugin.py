"""The WebSocket plug-in installed for real, into a temporary venv, is found through its entry point: listed by
``loadgen transports``, held to the contract kit, and driven by a headless Locust run that records turns.

The temporary venv sees this environment's packages (Locust, chat-loadgen itself) through a ``.pth`` file that
adds this environment's site-packages after its own; the plug-in is installed into it by pip (no dependencies,
no index, no build isolation: everything it needs is already here), from a copy of ``plugins/`` (pip builds in
the source tree). The development environment itself does not have the plug-in installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.e2e.harness import LOCUSTFILE, LocustRun
from tests.plugins.plugin_path import PLUGIN_DIR

pytestmark = pytest.mark.e2e


def _run(cmd: list[str], timeout: float = 180, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing but the venv decides what is found
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, check=False)


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plugin-venv")
    venv = root / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    parent = sysconfig.get_paths()["purelib"]
    (site / "_chat_loadgen_parent_env.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    source = root / "chat-loadgen-websocket"
    shutil.copytree(PLUGIN_DIR, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    installed = _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-build-isolation",
         "--no-index", "--quiet", str(source)],
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]
    where = _run([str(python), "-c", "import chat_loadgen_websocket as m; print(m.__file__)"])
    assert where.stdout.strip().startswith(str(site)), where  # the venv's own copy, not the source tree
    return python


def test_loadgen_transports_finds_it_through_its_entry_point(venv_python: Path) -> None:
    listed = _run([str(venv_python), "-m", "loadgen", "transports", "--json"])
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["websocket"] == {
        "name": "websocket", "module": "chat_loadgen_websocket:WebSocketTransport", "source": "chat-loadgen-websocket",
        "version": "0.1.0", "schemes": ["ws", "wss"], "api_version": 1, "error": None,
    }  # fmt: skip
    here = _run([sys.executable, "-m", "loadgen", "transports", "--json"])
    assert "websocket" not in {row["name"] for row in json.loads(here.stdout)}  # only the venv has it


def test_it_passes_the_contract_kit(venv_python: Path) -> None:
    kit = _run([str(venv_python), "-m", "loadgen.testing", "--transport", "websocket"], timeout=300)
    assert kit.returncode == 0, kit.stdout + kit.stderr[-3000:]
    assert "11 of 11 checks passed or skipped, 0 failed" in kit.stdout
    assert "SKIP" not in kit.stdout and "FAIL" not in kit.stdout


def test_a_headless_locust_run_over_it_records_turns(venv_python: Path, tmp_path: Path) -> None:
    reports, stats = tmp_path / "reports", tmp_path / "locust-stats"
    cmd = [
        str(venv_python), "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "6", "-r", "6", "-t", "10s",
        "--stop-timeout", "5", "--think-min", "0.05", "--think-max", "0.2", "--reports-dir", str(reports),
        "--run-id", "run", "--json-file", str(stats), "--dialogues", str(REPO_ROOT / "scenarios" / "dialogues"),
        "--only-summary", "--transport", "websocket",
    ]  # fmt: skip
    proc = _run(cmd, timeout=180, cwd=tmp_path)
    written = stats.with_name(stats.name + ".json")
    run = LocustRun(proc.returncode, proc.stdout + proc.stderr, reports / "run", json.loads(written.read_text()))
    assert run.returncode == 0, run.output[-3000:]
    assert "embedded reference server for websocket at ws://127.0.0.1:" in run.output
    ours = {f"{r['dialogue']}:turn{r['turn']}": r for r in run.summary["turns"] if r["transport"] == "websocket"}
    theirs = run.locust_requests()
    assert ours and set(ours) == set(theirs)
    for name, row in ours.items():
        assert (row["count"], row["failures"]) == theirs[name], name
    assert sum(r["count"] for r in ours.values()) >= 20
    assert sum(r["failures"] for r in ours.values()) == 0, run.summary["transports"]["websocket"]["failure_reasons"]
    agg = run.summary["transports"]["websocket"]
    assert agg["ttft_ms"]["count"] > 0 and agg["itl_ms"]["count"] > 0
    checked = sum(r["retention"]["checked"] for r in ours.values())
    assert checked > 0 and checked == sum(r["retention"]["passed"] for r in ours.values())
