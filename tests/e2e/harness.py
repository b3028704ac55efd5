"""Run ``locust -f scenarios/multiturn.py --headless`` as a user would, and read back what it wrote: to its end
(:func:`run_locust`), or started in the background (:func:`start_locust`) to read its run folder while it goes,
interrupt it or kill it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
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


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie waiting for its new parent to reap it has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _command(
    tmp_path: Path, args: tuple[str, ...], users: int, spawn_rate: int, run_time: str, think: tuple[float, float]
) -> list[str]:
    cmd = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "-u", str(users), "-r", str(spawn_rate), "-t", run_time, "--stop-timeout", "5",
        "--think-min", str(think[0]), "--think-max", str(think[1]),
        "--reports-dir", str(tmp_path / "reports"), "--run-id", "run", "--json-file", str(tmp_path / "locust-stats"),
        "--dialogues", str(REPO_ROOT / "scenarios" / "dialogues"), "--only-summary",
        *args,
    ]  # fmt: skip
    if "--processes" in args:  # a master port of its own: never collide with another run's 5557
        port = str(free_port())
        cmd += ["--master-port", port, "--master-bind-port", port]
    return cmd


def _env(env: dict[str, str] | None) -> dict[str, str]:
    full_env = dict(os.environ, PYTHONUNBUFFERED="1")
    full_env.update(env or {})
    return full_env


def _stats(tmp_path: Path) -> list[dict[str, Any]]:
    written = tmp_path / "locust-stats.json"  # Locust appends ".json"
    return json.loads(written.read_text()) if written.exists() else []


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
    cmd = _command(tmp_path, args, users, spawn_rate, run_time, think)
    proc = subprocess.run(
        cmd, cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=_env(env), check=False
    )
    return LocustRun(proc.returncode, proc.stdout + proc.stderr, tmp_path / "reports" / "run", _stats(tmp_path))


@dataclass
class RunningLocust:
    """A headless run started in the background, in a session of its own, its output in ``log``."""

    proc: subprocess.Popen[bytes]
    tmp_path: Path
    log: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def run_dir(self) -> Path:
        return self.tmp_path / "reports" / "run"

    def summary_now(self) -> dict[str, Any] | None:
        """summary.json as it is now (rewritten atomically: whole, or not there yet)."""
        try:
            data: dict[str, Any] = json.loads((self.run_dir / "summary.json").read_text())
        except (OSError, ValueError):
            return None
        return data

    def wait_for(self, check: Any, timeout: float, what: str) -> dict[str, Any]:
        """The first summary for which ``check(summary)`` holds (polled every 0.2 s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            summary = self.summary_now()
            if summary is not None and check(summary):
                return summary
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"{what}: not seen in {timeout:.0f} s; output:\n{self.output()[-4000:]}")

    def children(self) -> list[int]:
        try:
            return [int(p) for p in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()]
        except OSError:
            return []

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def finish(self, timeout: float = 120.0) -> LocustRun:
        try:
            code = self.proc.wait(timeout)
        finally:
            self.stop()
        return LocustRun(code, self.output(), self.run_dir, _stats(self.tmp_path))

    def stop(self) -> None:
        """Whatever still runs of it is killed (its process group)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)


def start_locust(
    tmp_path: Path,
    *args: str,
    users: int = 8,
    spawn_rate: int = 8,
    run_time: str = "120s",
    think: tuple[float, float] = (0.05, 0.2),
    env: dict[str, str] | None = None,
) -> RunningLocust:
    cmd = _command(tmp_path, args, users, spawn_rate, run_time, think)
    log = tmp_path / "locust.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, env=_env(env), start_new_session=True
        )
    return RunningLocust(proc, tmp_path, log)
