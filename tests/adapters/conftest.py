"""Fixtures of the adapter tests: the profile services on loopback, and transports made from adapter files."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadgen.adapters import Adapter, load_adapter, with_adapter
from loadgen.transports import Transport, make_transport
from loadgen.transports.base import TransportConfig
from loadgen.types import ChatMessage, ChatRequest, Reply
from tests.adapters.grpc_example import ExampleGrpcServer
from tests.adapters.rest_servers import ProfileServer
from tests.transports.conftest import ScriptServer
from tests.transports.conftest import free_port as free_port  # a fixture: a loopback port nothing listens on


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


def write_variant(folder: Path, text: str, *changes: tuple[str, str]) -> str:
    """An adapter file: ``text`` with each (old, new) of ``changes`` made (each old must be there)."""
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new)
    return str(write_adapter(folder, text))


#: The fact a first turn plants, and the question a later turn asks about it.
FACT = "My booking code is QX4821."
QUESTION = "What was my booking code again?"


def ask(text: str = FACT, **fields: Any) -> ChatRequest:
    """A turn of one user message asking for 16 tokens."""
    return ChatRequest(messages=(ChatMessage("user", text),), max_tokens=16, **fields)


def assert_sixteen_streamed(reply: Reply) -> None:
    """The reply of :func:`ask` from the example services: 16 words, one a chunk, counts from the service (its
    prompt count: the five words of :data:`FACT`)."""
    assert len(reply.chunk_times) == 16
    ttft = reply.ttft_s()
    assert ttft is not None and 0 < ttft < reply.e2e_s()
    assert reply.usage is not None and (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (5, 16)


@pytest.fixture(scope="session")
def http_server() -> Iterator[ScriptServer]:
    """A scriptable raw HTTP server (tests/transports/conftest.py) for replies no real service would send."""
    server = ScriptServer()
    yield server
    server.stop()
