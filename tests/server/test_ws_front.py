"""The reference server's WebSocket front, through raw ``websockets`` clients (not the plug-in transport): turns
on one connection, the chat path only, the API key in the handshake, a client gone mid-reply, a busy port,
``loadgen serve --ws-port``."""

from __future__ import annotations

import argparse
import json
import signal
import socket
import time
from collections.abc import Iterator

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from loadgen.errors import ConfigError
from loadgen.server.app import RunningServer, run_in_thread
from loadgen.server.config import ServerConfig, SimEngineConfig
from loadgen.server.main import build_config, configure
from tests.server.test_serve_cli import start

KEY = "sk-ws-front"


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    config = ServerConfig(
        rest_port=None, ws_port=0, api_key=KEY, sim=SimEngineConfig(fixed=True, fixed_ttft_ms=20, fixed_itl_ms=5)
    )
    with run_in_thread(config) as running:
        yield running


def _connect(server: RunningServer, path: str = "/v1/chat/ws", key: str | None = KEY) -> ClientConnection:
    headers = {"authorization": f"Bearer {key}"} if key else None
    return connect(server.urls["websocket"] + path, legacy=True, additional_headers=headers, open_timeout=10)


def _turn(conn: ClientConnection, text: str, **body: object) -> list[dict[str, object]]:
    conn.send(json.dumps({"messages": [{"role": "user", "content": text}], "max_tokens": 5, "stream": True, **body}))
    messages = []
    while True:
        message = json.loads(conn.recv(timeout=10))
        messages.append(message)
        if message["type"] != "token":
            return messages


def test_turns_follow_each_other_on_one_connection(server: RunningServer) -> None:
    with _connect(server) as conn:
        for _ in range(3):
            messages = _turn(conn, "Hello there.")
            assert [m["type"] for m in messages] == ["token"] * 5 + ["done"]
            assert all(m["tokens"] == 1 and m["text"] for m in messages[:5])
            assert messages[-1]["finish_reason"] in ("length", "stop")
            assert messages[-1]["usage"]["completion_tokens"] == 5
        whole = _turn(conn, "Hello there.", stream=False)
        assert len(whole) == 1 and whole[0]["type"] == "done" and whole[0]["text"]


def test_the_key_goes_in_the_handshake(server: RunningServer) -> None:
    for key in (None, "sk-wrong"):
        with _connect(server, key=key) as conn:
            error = _turn(conn, "Hello there.")[-1]
            assert (error["type"], error["code"], error["status"]) == ("error", "unauthorized", 401)
            assert KEY not in json.dumps(error)


def test_a_bad_request_is_an_error_message_and_the_connection_stays(server: RunningServer) -> None:
    with _connect(server) as conn:
        conn.send("{not json")
        error = json.loads(conn.recv(timeout=10))
        assert (error["type"], error["code"], error["status"]) == ("error", "bad_request", 400)
        assert _turn(conn, "Hello there.")[-1]["type"] == "done"


def test_only_the_chat_path_is_served(server: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as info:
        _connect(server, path="/elsewhere")
    assert info.value.response.status_code == 404
    assert b"use /v1/chat/ws" in info.value.response.body


def test_a_client_gone_mid_reply_frees_the_stream(server: RunningServer) -> None:
    before = server.stats()["service"]
    conn = _connect(server)
    conn.send(json.dumps({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 400, "stream": True}))
    assert json.loads(conn.recv(timeout=10))["type"] == "token"
    conn.close_socket()  # gone, no closing handshake
    deadline = time.monotonic() + 5
    while server.stats()["service"]["active"] and time.monotonic() < deadline:
        time.sleep(0.02)
    after = server.stats()["service"]
    assert after["active"] == 0
    assert after["completed"] == before["completed"]  # stopped, not streamed to its end (400 tokens: 2 s)


def test_a_busy_port_is_a_config_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"WebSocket front cannot listen on 127.0.0.1:{port}"):
            run_in_thread(ServerConfig(rest_port=None, ws_port=port))


def test_ws_port_option() -> None:
    parser = argparse.ArgumentParser()
    configure(parser)
    assert build_config(parser.parse_args(["--ws-port", "8765"])).ws_port == 8765
    assert build_config(parser.parse_args([])).ws_port is None


def test_serve_with_ws_port_announces_the_websocket_front() -> None:
    proc, urls = start("--no-rest", "--ws-port", "0")
    try:
        assert list(urls) == ["websocket"] and urls["websocket"].startswith("ws://127.0.0.1:")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
