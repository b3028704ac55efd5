"""Fixtures for the transport tests: a scriptable HTTP/1.1 server on 127.0.0.1 (plain and TLS).

A route is a script of steps played on the raw socket for every request that reaches it:

- ``bytes``: send them now (the server sets TCP_NODELAY, so each send leaves at once);
- ``float``/``int``: sleep that many seconds;
- ``"close"``: close the connection now (a stream cut mid-way);
- ``"hang"``: say nothing more until the client goes away (or the server stops).

After the last step the connection stays open for the next request (keep-alive). A script may be an
endless iterator (e.g. ``itertools.cycle``) built afresh per request by a zero-argument callable.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import make_certificate

Step = bytes | float | int | str
Script = Iterable[Step] | Callable[[], Iterable[Step]]


@dataclass(frozen=True)
class Recorded:
    """One request as the server read it off the wire."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    conn_id: int
    at: float  # perf_counter when its body had been read

    def json(self) -> Any:
        return json.loads(self.body)


class ScriptServer:
    """A threaded raw-socket HTTP/1.1 server; ``route(script)`` returns a target URL with its own prefix."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port: int = self._listener.getsockname()[1]
        self.scheme = "https" if ssl_context is not None else "http"
        self.requests: list[Recorded] = []
        self._routes: dict[str, Script] = {}
        self._names = itertools.count(1)
        self._conn_ids = itertools.count(1)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._accepter = threading.Thread(target=self._accept_loop, name="script-server", daemon=True)
        self._accepter.start()

    @property
    def origin(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def route(self, script: Script) -> str:
        name = f"r{next(self._names)}"
        self._routes[name] = script
        return f"{self.origin}/{name}"

    def requests_to(self, target: str) -> list[Recorded]:
        prefix = target.removeprefix(self.origin).rstrip("/").split("/v1")[0] + "/"
        with self._lock:
            return [r for r in self.requests if r.path.startswith(prefix)]

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self._accepter.join(timeout=5)

    # -- internals ---------------------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(conn, next(self._conn_ids)), daemon=True).start()

    def _serve(self, raw: socket.socket, conn_id: int) -> None:
        conn = raw
        with self._lock:
            self._conns.add(raw)
        try:
            if self._ssl is not None:
                conn = self._ssl.wrap_socket(raw, server_side=True)
            rfile = conn.makefile("rb")
            while not self._stop.is_set():
                recorded = self._read_request(rfile, conn_id)
                if recorded is None:
                    return
                if not self._play(conn, recorded):
                    return
        except (OSError, ValueError):
            return  # the client went away, or the TLS handshake failed
        finally:
            with self._lock:
                self._conns.discard(raw)
            with contextlib.suppress(OSError):
                conn.close()

    def _read_request(self, rfile: Any, conn_id: int) -> Recorded | None:
        request_line = rfile.readline()
        if not request_line.strip():
            return None
        headers: dict[str, str] = {}
        while True:
            line = rfile.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = rfile.read(int(headers.get("content-length", "0")))
        method, path, _ = request_line.decode("latin-1").split(" ", 2)
        recorded = Recorded(method, path, headers, body, conn_id, time.perf_counter())
        with self._lock:
            self.requests.append(recorded)
        return recorded

    def _play(self, conn: socket.socket, recorded: Recorded) -> bool:
        """Play the route's script; False when the connection must end."""
        name = recorded.path.lstrip("/").split("/", 1)[0]
        script = self._routes.get(name)
        if script is None:
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nno route\n")
            return True
        steps: Iterator[Step] = iter(script() if callable(script) else script)
        for step in steps:
            if self._stop.is_set():
                return False
            if isinstance(step, bytes):
                conn.sendall(step)
            elif isinstance(step, int | float):
                self._stop.wait(step)
            elif step == "close":
                return False
            elif step == "hang":
                self._hang(conn)
                return False
            else:
                raise ValueError(f"unknown step {step!r}")
        return True

    def _hang(self, conn: socket.socket) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([conn], [], [], 0.05)
            if readable and not conn.recv(1, socket.MSG_PEEK):
                return  # the client closed its end


@pytest.fixture(scope="session")
def http_server() -> Iterator[ScriptServer]:
    server = ScriptServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptServer]:
    """The same server behind TLS, with a throw-away self-signed certificate for 127.0.0.1."""
    cert, key = make_certificate(tmp_path_factory.mktemp("tls"))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    server = ScriptServer(ctx)
    yield server
    server.stop()


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
