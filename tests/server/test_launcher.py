"""The embedded server's launcher (loadgen.server.launcher) over a stand-in server script: the ready line, the fault
lines collected while it runs, one truthful error line when it does not start, and no orphan when its parent is
killed with ``kill -9`` (Linux)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from loadgen.errors import ConfigError
from loadgen.server import launcher
from tests.conftest import REPO_ROOT
from tests.e2e.harness import alive

FAKE_SERVER = textwrap.dedent(
    """
    import json, sys, time
    mode = sys.argv[1]
    if mode == "ok":
        print('loadgen-ready {"rest": "http://127.0.0.1:1"}', flush=True)
        time.sleep(0.2)
        print('loadgen-fault {"fault": "0s+1s down", "kind": "down", "edge": "start", "at": 100.0}', flush=True)
        print("some other line", flush=True)
        print('loadgen-fault {"fault": "0s+1s down", "kind": "down", "edge": "end", "at": 101.0}', flush=True)
        print('loadgen-fault {"fault": "2s forget-sessions", "kind": "forget-sessions", "edge": "start", "at": 102.0}',
              flush=True)
        time.sleep(600)
    elif mode == "fails":
        time.sleep(0.3)
        sys.stderr.write("Traceback (most recent call last):\\n  File x, line 1\\n")
        sys.stderr.write("AmqpFrontError: cannot connect to amqp://guest:sekrit@127.0.0.1:5999/\\n")
        sys.exit(1)
    else:  # silent: never ready
        time.sleep(600)
    """
)


@pytest.fixture
def fake_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "fake_server.py"
    script.write_text(FAKE_SERVER, encoding="utf-8")

    def command(transport: str, amqp_url: str, extra_args: list[str]) -> list[str]:
        return [sys.executable, str(script), *extra_args]

    monkeypatch.setattr(launcher, "server_command", command)
    return script


def test_ready_then_the_fault_lines_are_collected_as_they_come(fake_server: Path) -> None:
    server = launcher.start_embedded_server("rest", "", ["ok"], timeout_s=30)
    try:
        assert server.urls == {"rest": "http://127.0.0.1:1"}
        deadline = time.monotonic() + 10
        while len(server.faults()) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.faults() == [
            {"fault": "0s+1s down", "kind": "down", "edge": "start", "at": 100.0},
            {"fault": "0s+1s down", "kind": "down", "edge": "end", "at": 101.0},
            {"fault": "2s forget-sessions", "kind": "forget-sessions", "edge": "start", "at": 102.0},
        ]
    finally:
        server.stop()
    assert server.proc.returncode is not None


def test_a_server_that_exits_says_when_and_why_in_one_line_without_the_password(fake_server: Path) -> None:
    began = time.monotonic()
    with pytest.raises(ConfigError) as failed:
        launcher.start_embedded_server("amqp", "", ["fails"], timeout_s=60)
    assert time.monotonic() - began < 30  # it exited: no waiting out the 60 s
    message = str(failed.value)
    assert "\n" not in message
    assert "exited (code 1)" in message and "before it was ready" in message and "within 60 s" not in message
    assert "AmqpFrontError: cannot connect to amqp://guest:***@127.0.0.1:5999/" in message
    assert "sekrit" not in message


def test_a_server_that_never_says_it_is_ready_is_stopped_after_the_time_out(fake_server: Path) -> None:
    with pytest.raises(ConfigError) as failed:
        launcher.start_embedded_server("rest", "", ["silent"], timeout_s=1)
    assert "did not become ready within 1 s (it printed no error)" in str(failed.value)


@pytest.mark.allow_skip(reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_server_exits_when_its_parent_is_killed(fake_server: Path, tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            sys.path.insert(0, {str(REPO_ROOT)!r})
            from loadgen.server import launcher
            launcher.server_command = lambda *a: [sys.executable, {str(fake_server)!r}, "ok"]
            server = launcher.start_embedded_server("rest", "", [], timeout_s=30)
            print(server.proc.pid, flush=True)
            time.sleep(600)
        """)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert parent.stdout is not None
        server_pid = int(parent.stdout.readline())
        assert alive(server_pid)
        parent.send_signal(signal.SIGKILL)  # no cleanup of its own
        parent.wait(10)
        deadline = time.monotonic() + 10
        while alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(server_pid), "the server outlived its parent"
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
