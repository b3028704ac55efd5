"""serve() and run_in_thread(): start, failure to start, stop."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from loadgen.errors import ConfigError
from loadgen.server import app
from loadgen.server.app import enabled_fronts, load_front, run_in_thread
from loadgen.server.config import ServerConfig
from loadgen.server.rest_front import RestFront


def test_run_in_thread_serves_and_stops_quickly() -> None:
    server = run_in_thread(ServerConfig(rest_port=0))
    assert set(server.urls) == {"rest"}
    assert server.service is not None
    assert httpx.get(server.urls["rest"] + "/health").status_code == 200
    t0 = time.monotonic()
    server.stop()
    assert not server.running
    assert time.monotonic() - t0 < 5
    server.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.urls["rest"] + "/health")


def test_a_failed_start_raises_in_the_caller() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            run_in_thread(ServerConfig(rest_port=port))
    with pytest.raises(ConfigError, match="no front enabled"):
        run_in_thread(ServerConfig(rest_port=None))
    with pytest.raises(ConfigError, match="unknown engine"):
        run_in_thread(ServerConfig(rest_port=0, engine="quantum"))


def test_fronts_are_loaded_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_front("rest") is RestFront
    assert enabled_fronts(ServerConfig(rest_port=0, grpc_port=0, amqp_url="amqp://x")) == ["rest", "grpc", "amqp"]
    assert enabled_fronts(ServerConfig(rest_port=None, grpc_port=0)) == ["grpc"]
    monkeypatch.setitem(app.FRONTS, "carrier-pigeon", "loadgen.server.pigeon_front:PigeonFront")
    with pytest.raises(ConfigError, match="not part of this build"):
        load_front("carrier-pigeon")
    with pytest.raises(ConfigError, match="unknown front"):
        load_front("smoke-signals")
