"""What a transport comparison measures beside each run, from outside the processes it measures.

- CPU: user + system time of the Locust process and its live descendants (``/proc/<pid>/stat`` of each,
  summed; a child that has exited counts no more), and of the reference server process, sampled every
  :data:`SAMPLE_S` by a thread (:class:`CpuSampler`) together with the server's own count of requests
  (``GET /stats`` of its REST front, ``service.requests``). With no ``/proc`` the CPU figures are None ("-").
- The timing floor: ``python -m loadgen.bench.floor`` in a process of its own (:func:`start_floor`), a bare client
  timing streamed turns one at a time against the same server during the run; :func:`finish_floor` reads its one
  line of JSON. Every call here has a timeout; a floor that fails gives None, never an error of the comparison.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from loadgen.report.transports_rounds import Beside, Sample

SAMPLE_S = 0.5
STATS_TIMEOUT_S = 2.0
#: The transports ``loadgen.bench.floor`` has a bare client for.
FLOOR_TRANSPORTS = ("rest", "grpc", "amqp")
_PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of one process (all its threads), None when it is gone or there is no /proc."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """The live descendants of ``pid`` (e.g. Locust's ``--processes`` workers), found by one scan of /proc."""
    children: dict[int, list[int]] = {}
    try:
        entries = [e for e in _PROC.iterdir() if e.name.isdigit()]
    except OSError:
        return []
    for entry in entries:
        if (fields := _stat_fields(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def server_requests(stats_url: str | None) -> int | None:
    """The reference server's count of chat requests (all fronts), None when it does not answer."""
    if not stats_url:
        return None
    try:
        with urllib.request.urlopen(stats_url, timeout=STATS_TIMEOUT_S) as resp:
            return int(json.loads(resp.read())["service"]["requests"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class CpuSampler:
    """Samples the client's and the server's CPU (and the server's requests) every :data:`SAMPLE_S` in a thread.

    The client is its process and its descendants, looked up again every :data:`TREE_EVERY` samples (a scan of
    /proc costs more than a sample)."""

    TREE_EVERY = 10

    def __init__(self, client_pid: int, server_pid: int | None, stats_url: str | None) -> None:
        self.client_pid, self.server_pid, self.stats_url = client_pid, server_pid, stats_url
        self.samples: list[Sample] = []
        self._tree: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="compare-cpu-sampler", daemon=True)

    def sample(self) -> Sample:
        if len(self.samples) % self.TREE_EVERY == 0:
            self._tree = descendants(self.client_pid)
        own = process_cpu_s(self.client_pid)
        client = None if own is None else own + sum(process_cpu_s(p) or 0.0 for p in self._tree)
        server = process_cpu_s(self.server_pid) if self.server_pid is not None else None
        return Sample(time.time(), client, server, server_requests(self.stats_url))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.sample())
            self._stop.wait(SAMPLE_S)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(STATS_TIMEOUT_S + 2 * SAMPLE_S)


def start_floor(transport: str, url: str, *, delay_s: float, duration_s: float) -> subprocess.Popen[str] | None:
    """The timing floor of ``transport`` at ``url``, started now, timing from ``delay_s`` for ``duration_s``."""
    if transport not in FLOOR_TRANSPORTS or duration_s <= 0:
        return None
    cmd = [
        sys.executable, "-m", "loadgen.bench.floor", "--transport", transport, "--url", url,
        "--delay", f"{delay_s:g}", "--duration", f"{duration_s:g}",
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def finish_floor(proc: subprocess.Popen[str] | None, beside: Beside, timeout_s: float) -> None:
    """Wait for the floor (at most ``timeout_s``) and put its samples into ``beside``."""
    if proc is None:
        return
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return
    try:
        result = json.loads(out.strip().splitlines()[-1])
        beside.floor_ms = [float(v) for v in result["ttft_ms"]]
        beside.floor_failures = int(result["failures"])
    except (IndexError, ValueError, KeyError, TypeError):
        return


__all__ = [
    "FLOOR_TRANSPORTS",
    "SAMPLE_S",
    "CpuSampler",
    "descendants",
    "finish_floor",
    "process_cpu_s",
    "server_requests",
    "start_floor",
]
