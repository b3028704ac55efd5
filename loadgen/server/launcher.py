"""``loadgen serve`` in a subprocess on a free 127.0.0.1 port, ready when it says so.

The embedded default target of a Locust run (started by the master, or the only process, when no ``--host`` is
given; stopped at exit), and the server of benchmarks and end-to-end tests. Importing this module imports
neither Locust nor gevent.
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
from collections.abc import Sequence

from loadgen.errors import ConfigError
from loadgen.server.fronts import READY_PREFIX

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0  # a torch engine builds its model first
STOP_TIMEOUT_S = 10.0
#: The transports the reference server has a front for (a front's name is its transport's name).
SERVED_TRANSPORTS = ("rest", "grpc", "amqp", "websocket")


class EmbeddedServer:
    def __init__(self, proc: subprocess.Popen[str], urls: dict[str, str]) -> None:
        self.proc = proc
        self.urls = urls

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
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
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None, text=True, env=env, start_new_session=True)
    urls: dict[str, str] = {}
    done = threading.Event()

    def read_ready() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(READY_PREFIX):
                urls.update(json.loads(line[len(READY_PREFIX) :]))
                done.set()
                break
        done.set()
        for _ in proc.stdout:  # keep draining so the server never blocks on a full pipe
            pass

    threading.Thread(target=read_ready, name="embedded-server-stdout", daemon=True).start()
    done.wait(timeout_s)
    server = EmbeddedServer(proc, urls)
    if transport not in urls:
        server.stop()
        code = proc.poll()
        raise ConfigError(
            f"the embedded reference server did not become ready for {transport!r} within {timeout_s:.0f} s "
            f"(exit code {code}); its errors are above. Command: {' '.join(cmd[1:])}. "
            "Give --host to target a running service instead."
        )
    atexit.register(server.stop)
    return server
