"""``loadgen serve`` in a subprocess on a free 127.0.0.1 port, ready when it says so.

The embedded default target of a Locust run (started by the master, or the only process, when no ``--host`` is
given; stopped at exit), and the server of benchmarks and end-to-end tests. Importing this module imports
neither Locust nor gevent.

- Ready: the server's ``loadgen-ready {...}`` stdout line names its URLs. Until then its stderr is held back;
  if it exits first (or never says it is ready), :func:`start_embedded_server` raises one
  :class:`~loadgen.errors.ConfigError` line that says how long it ran and quotes the server's last error line
  (URLs with passwords redacted). Once ready, its stderr is passed on as it comes.
- Faults: stdout is read for as long as the server runs; each ``loadgen-fault {...}`` line (``{"fault", "kind",
  "edge": "start" | "end", "at": unix seconds}``, printed by ``loadgen serve --faults``) is kept for
  :meth:`EmbeddedServer.faults`.
- Orphans: on Linux the server is started through a small shim that asks the kernel to send it SIGTERM when its
  parent dies (``prctl(PR_SET_PDEATHSIG)``), so a parent killed with ``kill -9`` leaves no server behind (the
  parent being the thread that started it: call :func:`start_embedded_server` from the main thread).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import IO, Any

from loadgen.errors import ConfigError
from loadgen.server.fronts import READY_PREFIX
from loadgen.wire.text import redact_url, with_password_of

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0  # a torch engine builds its model first
STOP_TIMEOUT_S = 10.0
#: The transports the reference server has a front for (a front's name is its transport's name).
SERVED_TRANSPORTS = ("rest", "grpc", "amqp", "websocket")
#: Prefix of the server's stdout lines that report a fault's start or end.
FAULT_PREFIX = "loadgen-fault "
#: Lines of the server's stderr kept until it is ready (the last one goes into the error message).
_HELD_LINES = 50
#: Runs the server with PR_SET_PDEATHSIG (1) = SIGTERM, then execs it; exits at once if the parent is already gone.
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"
    "os.getppid() == int(sys.argv[1]) or os._exit(0)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


class EmbeddedServer:
    def __init__(self, proc: subprocess.Popen[str], urls: dict[str, str]) -> None:
        self.proc = proc
        self.urls = urls
        self._faults: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add_fault(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._faults.append(event)

    def faults(self) -> list[dict[str, Any]]:
        """The fault edges the server printed so far, in order."""
        with self._lock:
            return list(self._faults)

    def stop(self, *, wait: bool = True) -> None:
        """SIGTERM, then (``wait``) up to STOP_TIMEOUT_S for it to exit before a SIGKILL."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        if not wait:
            return
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            logger.warning("embedded server did not stop in %.0f s: killing it", STOP_TIMEOUT_S)
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT_S)


def server_command(transport: str, amqp_url: str, extra_args: Sequence[str]) -> list[str]:
    cmd = [sys.executable, "-m", "loadgen", "serve", "--bind", "127.0.0.1"]
    if transport == "rest":
        cmd += ["--rest-port", "0"]
    else:
        cmd += ["--no-rest"]
    if transport == "grpc":
        cmd += ["--grpc-port", "0"]
    if transport == "websocket":
        cmd += ["--ws-port", "0"]
    if transport == "amqp":
        # a queue of its own, so concurrent runs on one broker never take each other's requests
        cmd += ["--amqp-url", amqp_url, "--amqp-queue", f"loadgen.chat.requests.{secrets.token_hex(4)}"]
    return cmd + list(extra_args)


def _die_with_parent(cmd: list[str]) -> list[str]:
    if not sys.platform.startswith("linux"):
        return cmd
    return [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *cmd]


class _Output:
    """Reads the server's stdout (ready line, fault lines) and stderr (held until ready, then passed on)."""

    def __init__(self, proc: subprocess.Popen[str], server: EmbeddedServer) -> None:
        self.proc, self.server = proc, server
        self.ready = threading.Event()
        self.held: deque[str] = deque(maxlen=_HELD_LINES)
        self._lock = threading.Lock()
        self._passing = False

    def start(self) -> None:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        threading.Thread(target=self._stdout, args=(self.proc.stdout,), name="server-stdout", daemon=True).start()
        threading.Thread(target=self._stderr, args=(self.proc.stderr,), name="server-stderr", daemon=True).start()

    def _stdout(self, stream: IO[str]) -> None:
        for line in stream:  # read to the end, so the server never blocks on a full pipe
            if line.startswith(READY_PREFIX) and not self.ready.is_set():
                self.server.urls.update(json.loads(line[len(READY_PREFIX) :]))
                self.pass_stderr_on()
                self.ready.set()
            elif line.startswith(FAULT_PREFIX):
                try:
                    self.server.add_fault(json.loads(line[len(FAULT_PREFIX) :]))
                except ValueError:
                    logger.warning("unreadable fault line from the embedded server: %s", line.strip())
        self.ready.set()  # the server's stdout closed: it is gone (or going)

    def _stderr(self, stream: IO[str]) -> None:
        for line in stream:
            with self._lock:
                if not self._passing:
                    self.held.append(line)
                    continue
            sys.stderr.write(line)

    def pass_stderr_on(self) -> None:
        with self._lock:
            self._passing = True
            held, self.held = list(self.held), deque(maxlen=_HELD_LINES)
        sys.stderr.write("".join(held))

    def last_error(self) -> str:
        with self._lock:
            lines = [line.strip() for line in self.held if line.strip()]
        return redact_url(lines[-1]) if lines else ""


def start_embedded_server(
    transport: str, amqp_url: str, extra_args: Sequence[str], timeout_s: float = START_TIMEOUT_S
) -> EmbeddedServer:
    if transport not in SERVED_TRANSPORTS:
        raise ConfigError(
            f"the reference server has no {transport!r} front, so there is no embedded target for it: "
            "give --host URL of the service to test"
        )
    cmd = server_command(transport, amqp_url, extra_args)
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if transport != "amqp":
        env.pop("LOADGEN_AMQP_URL", None)  # else a REST/gRPC server would also consume the shared AMQP queue
    began = time.monotonic()
    proc = subprocess.Popen(
        _die_with_parent(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    server = EmbeddedServer(proc, {})
    output = _Output(proc, server)
    output.start()
    output.ready.wait(timeout_s)
    if transport not in server.urls:
        code = proc.poll()
        if code is None and output.ready.is_set():  # stdout closed: give it a moment to exit
            try:
                code = proc.wait(1.0)
            except subprocess.TimeoutExpired:
                code = None
        took = time.monotonic() - began
        server.stop()
        time.sleep(0.05)  # let the last stderr lines in
        raise ConfigError(_not_ready(transport, code, took, timeout_s, output.last_error(), cmd))
    if "amqp" in server.urls and "--amqp-url" in cmd:
        # the server prints its broker URL without the password: put back the one it was given
        given = cmd[len(cmd) - 1 - cmd[::-1].index("--amqp-url") + 1]
        server.urls["amqp"] = with_password_of(server.urls["amqp"], given)
    atexit.register(server.stop)
    return server


def start_server_with_fronts(fronts: set[str], amqp_url: str, server_args: Sequence[str]) -> EmbeddedServer:
    """One reference server with REST and a front for each transport of ``fronts`` (the runs of a sweep or of a
    transport comparison share it). An AMQP front consumes a queue of its own, so that concurrent runs on one
    broker never take each other's requests."""
    args: list[str] = []
    if "grpc" in fronts:
        args += ["--grpc-port", "0"]
    if "websocket" in fronts:
        args += ["--ws-port", "0"]
    if "amqp" in fronts:
        args += ["--amqp-url", amqp_url, "--amqp-queue", f"loadgen.chat.requests.{secrets.token_hex(4)}"]
    server = start_embedded_server("rest", amqp_url, [*args, *server_args])
    missing = sorted(f for f in fronts if f not in server.urls)
    if missing:
        server.stop()
        raise ConfigError(f"the reference server started without a front for {', '.join(missing)}: check its arguments")
    return server


def _not_ready(transport: str, code: int | None, took_s: float, timeout_s: float, error: str, cmd: list[str]) -> str:
    what = f"the embedded reference server for {transport!r}"
    if code is not None:
        happened = f"{what} exited (code {code}) {took_s:.1f} s after it started, before it was ready"
    else:
        happened = f"{what} did not become ready within {timeout_s:.0f} s"
    said = f": {error}" if error else " (it printed no error)"
    command = " ".join(redact_url(a) if "://" in a else a for a in cmd[1:])
    return f"{happened}{said}. Command: {command}. Give --host to target a running service instead."
