"""A run driven from Locust's web UI over HTTP on loopback (/swarm, /stats/reset, /stop): the chat-loadgen tab
follows Locust's reset and new-test semantics, and each test's run folder is written when the test stops."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO_ROOT
from tests.e2e.harness import free_port

pytestmark = pytest.mark.e2e
LOCUST_CACHE_S = 2.5  # /stats/requests is memoised for up to 2 s


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    port = free_port()
    log = tmp_path / "locust.log"
    cmd = [
        sys.executable, "-m", "locust", "-f", str(REPO_ROOT / "scenarios" / "multiturn.py"),
        "--web-host", "127.0.0.1", "--web-port", str(port), "--dialogues", str(REPO_ROOT / "scenarios" / "dialogues"),
        "--think-min", "0.05", "--think-max", "0.2", "--reports-dir", "reports", "--run-id", "run",
        "--checkpoint-interval", "1", "--no-html",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _until(lambda: _get(base, "/") is not None, 90, "the web UI")
        yield base, proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def _get(base: str, path: str) -> Any:
    try:
        response = httpx.get(base + path, timeout=10)
    except httpx.TransportError:
        return None
    return response.json() if "json" in response.headers.get("content-type", "") else response.text


def _post(base: str, path: str, data: dict[str, Any] | None = None) -> None:
    httpx.post(base + path, data=data or {}, timeout=30).raise_for_status()


def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def _ours(base: str) -> int:
    rows = _get(base, "/loadgen/turns")["rows"]
    return sum(r["count"] for r in rows if r["name"] == "(all)")


def _locust_total(base: str) -> int:
    stats = _get(base, "/stats/requests")
    return int(next(s["num_requests"] for s in stats["stats"] if s["name"] == "Aggregated"))


def _stop_and_read(base: str, folder: Path) -> dict[str, Any]:
    _post(base, "/stop")
    _until(lambda: _get(base, "/stats/requests")["state"] == "stopped", 60, "the test stopped")

    def complete() -> dict[str, Any] | None:
        try:
            summary: dict[str, Any] = json.loads((folder / "summary.json").read_text())
        except (OSError, ValueError):
            return None
        return summary if summary["run"]["complete"] else None

    summary: dict[str, Any] = _until(complete, 60, f"{folder} written whole at the stop")
    time.sleep(LOCUST_CACHE_S)
    return summary


def test_the_tab_follows_resets_and_new_tests_and_each_test_is_written_when_it_stops(
    web: tuple[str, subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    base, proc, log = web
    _post(base, "/swarm", {"user_count": 4, "spawn_rate": 4})
    before = _until(lambda: _ours(base) >= 15 and _ours(base), 90, "turns in the tab")
    _post(base, "/stats/reset")
    time.sleep(1.2)  # the tab recomputes at most once a second
    assert _ours(base) < before  # it started again from zero, as Locust's statistics did
    time.sleep(2.0)
    first = _stop_and_read(base, tmp_path / "reports" / "run")
    assert first["transports"]["rest"]["count"] == _locust_total(base) == _ours(base) > 0

    _post(base, "/swarm", {"user_count": 4, "spawn_rate": 4})  # a new test: Locust starts its statistics afresh
    _until(lambda: 0 < _ours(base) < first["transports"]["rest"]["count"] + 1000, 60, "the new test's turns")
    time.sleep(3.0)
    second = _stop_and_read(base, tmp_path / "reports" / "run-2")
    assert second["run"]["id"] == "run-2"
    assert second["transports"]["rest"]["count"] == _locust_total(base) == _ours(base) > 0
    assert json.loads((tmp_path / "reports" / "run" / "summary.json").read_text()) == first  # the first one kept

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    output = log.read_text(errors="replace")
    assert "Traceback" not in output
    # what stays on screen: our table after Locust's own final statistics
    assert output.rindex("Per-turn latency (ms)") > output.rindex("Response time percentiles")
