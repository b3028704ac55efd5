"""``--transport`` in a real Locust: any registered name or ``package.module:Class``, one clear line for anything
else; the embedded reference server only for the transports it serves, one line asking for --host otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadgen.errors import ConfigError
from loadgen.server.app import run_in_thread
from loadgen.server.config import ServerConfig
from loadgen.server.launcher import start_embedded_server
from tests.conftest import REPO_ROOT
from tests.e2e.harness import LOCUSTFILE, run_locust
from tests.plugins.plugin_path import PLUGIN_SRC, WEBSOCKET

pytestmark = pytest.mark.e2e


def _locust_fails(tmp_path: Path, *args: str) -> str:
    """Run Locust with ``args``; it must stop before any user starts, exit 2, with one line: that line."""
    dialogues = str(REPO_ROOT / "scenarios" / "dialogues")
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "1", "-t", "5s",
           "--dialogues", dialogues, "--reports-dir", str(tmp_path), *args]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(PLUGIN_SRC))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("chat-loadgen: ")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return lines[0]


def test_an_unknown_transport_is_one_line(tmp_path: Path) -> None:
    assert _locust_fails(tmp_path, "--transport", "bogus") == (
        "chat-loadgen: --transport 'bogus': unknown transport; installed: amqp, grpc, rest (`loadgen transports` "
        "lists them), or give package.module:Class"
    )


def test_a_class_that_does_not_import_is_one_line(tmp_path: Path) -> None:
    assert _locust_fails(tmp_path, "--transport", "no_such_pkg.mod:Transport") == (
        "chat-loadgen: --transport no_such_pkg.mod:Transport: no module named 'no_such_pkg' on this Python's path "
        "(is the package installed?)"
    )


def test_a_transport_the_reference_server_does_not_serve_needs_a_host(tmp_path: Path) -> None:
    assert _locust_fails(tmp_path, "--transport", WEBSOCKET) == (
        f"chat-loadgen: the reference server has no {WEBSOCKET!r} front, so there is no embedded target for it: "
        "give --host URL of the service to test"
    )
    with pytest.raises(ConfigError, match="give --host URL of the service to test"):
        start_embedded_server("my_pkg.mod:Transport", "amqp://unused", [])


def test_a_class_named_on_the_command_line_runs_against_its_host(tmp_path: Path) -> None:
    with run_in_thread(ServerConfig(rest_port=None, ws_port=0)) as server:
        run = run_locust(
            tmp_path, "--transport", WEBSOCKET, "--host", server.urls["websocket"], run_time="8s", users=4,
            env={"PYTHONPATH": str(PLUGIN_SRC)},
        )  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    rows = [r for r in run.summary["turns"] if r["transport"] == WEBSOCKET]
    assert sum(r["count"] for r in rows) >= 10 and sum(r["failures"] for r in rows) == 0, json.dumps(rows)[:2000]
    assert {name.split(":turn")[0] for name in run.locust_requests()} <= {r["dialogue"] for r in rows}
