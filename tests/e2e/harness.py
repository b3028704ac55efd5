"""Run ``locust -f scenarios/multiturn.py --headless`` as a user would, and read back what it wrote."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = REPO_ROOT / "scenarios" / "multiturn.py"


@dataclass
class LocustRun:
    returncode: int
    output: str
    run_dir: Path
    locust_stats: list[dict[str, Any]]

    @property
    def summary(self) -> dict[str, Any]:
        path = self.run_dir / "summary.json"
        assert path.exists(), f"no summary.json in {self.run_dir}; locust output:\n{self.output[-4000:]}"
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def locust_requests(self) -> dict[str, tuple[int, int]]:
        """Locust's own figures: name -> (requests, failures), excluding the Aggregated row."""
        return {
            s["name"]: (s["num_requests"], s["num_failures"]) for s in self.locust_stats if s["name"] != "Aggregated"
        }


def run_locust(
    tmp_path: Path,
    *args: str,
    users: int = 8,
    spawn_rate: int = 8,
    run_time: str = "10s",
    think: tuple[float, float] = (0.05, 0.2),
    timeout: float = 180.0,
    env: dict[str, str] | None = None,
) -> LocustRun:
    reports = tmp_path / "reports"
    json_file = tmp_path / "locust-stats"  # Locust appends ".json"
    cmd = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "-u", str(users), "-r", str(spawn_rate), "-t", run_time, "--stop-timeout", "5",
        "--think-min", str(think[0]), "--think-max", str(think[1]),
        "--reports-dir", str(reports), "--run-id", "run", "--json-file", str(json_file),
        "--dialogues", str(REPO_ROOT / "scenarios" / "dialogues"), "--only-summary",
        *args,
    ]  # fmt: skip
    if "--processes" in args:  # a master port of its own: never collide with another run's 5557
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = str(sock.getsockname()[1])
        cmd += ["--master-port", port, "--master-bind-port", port]
    full_env = dict(os.environ, PYTHONUNBUFFERED="1")
    full_env.update(env or {})
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=full_env, check=False)
    written = json_file.with_name(json_file.name + ".json")
    stats: list[dict[str, Any]] = json.loads(written.read_text()) if written.exists() else []
    return LocustRun(proc.returncode, proc.stdout + proc.stderr, reports / "run", stats)
