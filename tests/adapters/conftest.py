"""Fixtures of the adapter tests: the profile services on loopback, and transports made from adapter files."""

from __future__ import annotations

import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadgen.adapters import Adapter, load_adapter, with_adapter
from loadgen.transports import Transport, make_transport
from loadgen.transports.base import TransportConfig
from tests.adapters.grpc_example import ExampleGrpcServer
from tests.adapters.rest_servers import ProfileServer
from tests.transports.conftest import ScriptServer


@pytest.fixture(scope="module")
def profile_server() -> Iterator[ProfileServer]:
    server = ProfileServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def example_grpc() -> Iterator[ExampleGrpcServer]:
    server = ExampleGrpcServer()
    yield server
    server.stop()


def adapter_transport(adapter: str | Adapter, target: str, **config: Any) -> Transport:
    """The transport of an adapter (a file, a profile's name, or loaded) for ``target``."""
    loaded = load_adapter(adapter) if isinstance(adapter, str) else adapter
    return make_transport(loaded.transport, with_adapter(TransportConfig(target=target, **config), loaded))


def write_adapter(folder: Path, text: str, name: str = "adapter.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="session")
def http_server() -> Iterator[ScriptServer]:
    """A scriptable raw HTTP server (tests/transports/conftest.py) for replies no real service would send."""
    server = ScriptServer()
    yield server
    server.stop()
