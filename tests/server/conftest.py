"""Fixtures for the reference server's tests: real servers on loopback (``run_in_thread``) and SSE parsing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from loadgen.server.app import RunningServer, run_in_thread
from loadgen.server.config import ServerConfig, SimEngineConfig


def fast_sim(**overrides: Any) -> SimEngineConfig:
    """A sim engine with small step costs, so tests run quickly."""
    values: dict[str, Any] = {"step_base_us": 200.0, "step_per_seq_us": 10.0, "prefill_us_per_token": 0.0}
    values.update(overrides)
    return SimEngineConfig(**values)


@pytest.fixture
def start_server() -> Iterator[Callable[..., RunningServer]]:
    """``start_server(**ServerConfig fields)``: a REST server on a free loopback port, stopped after the test."""
    servers: list[RunningServer] = []

    def start(**fields: Any) -> RunningServer:
        fields.setdefault("rest_port", 0)
        fields.setdefault("sim", fast_sim())
        server = run_in_thread(ServerConfig(**fields))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
        assert not server.running, "the server thread did not stop"


@dataclass
class Event:
    event: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def read_sse(response: httpx.Response) -> list[Event]:
    """Every event of a streamed response (our own minimal parser: ``event:``/``data:`` lines, blank line ends)."""
    return parse_sse(response.iter_lines())


def parse_sse(lines: Iterable[str]) -> list[Event]:
    events: list[Event] = []
    name, data = "message", []
    for line in lines:
        if not line:
            if data:
                events.append(Event(name, "\n".join(data)))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        events.append(Event(name, "\n".join(data)))
    return events


def chat_body(*contents: str, **extra: Any) -> dict[str, Any]:
    """A chat-completions body: the contents alternate user / assistant, starting with user."""
    roles = ["user", "assistant"]
    messages = [{"role": roles[i % 2], "content": c} for i, c in enumerate(contents)]
    return {"model": "test", "messages": messages, **extra}
