"""The WebSocket plug-in's transport (chat_loadgen_websocket): every row of the status table as on the other
transports (the reference server's front over a test engine that fails on cue), and what a scripted server does
to a connection: cut mid-reply, a broken message, a connection closed while idle, a wrong path."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from chat_loadgen_websocket import WebSocketTransport
from websockets.sync.server import Server, ServerConnection, serve

from loadgen.errors import ConfigError, ConnectError, Overloaded, ProtocolError, ServerError, TransportError
from loadgen.server.app import RunningServer, run_in_thread
from loadgen.server.config import ServerConfig
from loadgen.transports import make_transport
from loadgen.transports.base import TransportConfig
from loadgen.types import ChatMessage, ChatRequest
from tests.e2e.test_status_contract import EVENTS, KEY
from tests.plugins.plugin_path import WEBSOCKET
from tests.wire.scripted_engine import ScriptedEngine

#: row of the status table -> (the client's kind, the code the WebSocket transport reports)
EXPECTED: dict[str, tuple[type[TransportError], str]] = {
    "BAD_REQUEST": (ServerError, "bad_request"),
    "UNAUTHORIZED": (ServerError, "unauthorized"),
    "OVERLOADED": (Overloaded, "overloaded"),
    "ENGINE_STOPPED": (ServerError, "engine_stopped"),
    "INTERNAL": (ServerError, "internal"),
}


def _ask(text: str = "Hello there.", max_tokens: int = 8, stream: bool = True) -> ChatRequest:
    return ChatRequest((ChatMessage("user", text),), max_tokens=max_tokens, stream=stream)


@pytest.fixture(scope="module")
def front() -> Iterator[RunningServer]:
    with run_in_thread(ServerConfig(rest_port=None, ws_port=0, api_key=KEY), engine=ScriptedEngine()) as running:
        yield running


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("event", list(EVENTS))
def test_the_same_server_event_is_the_same_failure_kind(front: RunningServer, event: str, stream: bool) -> None:
    row, text, key, max_tokens = EVENTS[event]
    kind, code = EXPECTED[row]
    client = make_transport(WEBSOCKET, TransportConfig(target=front.urls["websocket"], api_key=key, timeout_s=15))
    try:
        with pytest.raises(TransportError) as info:
            client.send(_ask(text, max_tokens, stream))
        if key == KEY:
            assert client.send(_ask()).text  # an error reply ends its turn; the connection goes on
    finally:
        client.close()
    err = info.value
    assert type(err) is kind, f"{event}: {type(err).__name__}: {err.reason}"
    assert isinstance(err, ServerError) and err.code == code, err.reason
    assert KEY not in err.reason and key not in err.reason


def test_the_name_class_and_target_checks() -> None:
    assert (WebSocketTransport.name, WebSocketTransport.schemes, WebSocketTransport.api_version) == (
        "websocket", ("ws", "wss"), 1,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="does not suit transport"):
        make_transport(WEBSOCKET, TransportConfig(target="http://127.0.0.1:1"))
    with pytest.raises(ConfigError, match=r"target 'ws://user:\*\*\*@h:port' is not a WebSocket URL: bad port"):
        WebSocketTransport(TransportConfig(target="ws://user:pw@h:port"))


def test_a_wrong_path_is_the_handshake_status(front: RunningServer) -> None:
    client = WebSocketTransport(TransportConfig(target=front.urls["websocket"] + "/nowhere", api_key=KEY))
    try:
        with pytest.raises(ServerError) as info:
            client.send(_ask())
    finally:
        client.close()
    assert info.value.code == 404
    assert info.value.reason.startswith("HTTP 404 at the WebSocket handshake with 127.0.0.1:")


# -- a scripted server: what it does to the connection -------------------------------------------------------------

Script = Callable[[ServerConnection], None]


@pytest.fixture
def scripted() -> Iterator[Callable[[Script], str]]:
    servers: list[Server] = []

    def start(script: Script) -> str:
        server = serve(script, "127.0.0.1", 0, compression=None)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"ws://127.0.0.1:{server.socket.getsockname()[1]}"

    yield start
    for server in servers:
        server.shutdown()


def _tokens(conn: ServerConnection, n: int) -> None:
    for i in range(n):
        conn.send(json.dumps({"type": "token", "text": f"w{i} ", "tokens": 1}))


def _done(conn: ServerConnection) -> None:
    conn.send(
        json.dumps({"type": "done", "finish_reason": "stop", "usage": {"prompt_tokens": 1, "completion_tokens": 2}})
    )


def _turns(*scripts: Script) -> Script:
    """Each connection: the scripts in turn, one per request received."""

    def handler(conn: ServerConnection) -> None:
        for script in scripts:
            conn.recv(timeout=10)
            script(conn)

    return handler


def _send(url: str, *requests: ChatRequest) -> list[object]:
    client = WebSocketTransport(TransportConfig(target=url, timeout_s=5))
    outcomes: list[object] = []
    try:
        for request in requests:
            try:
                outcomes.append(client.send(request).text)
            except TransportError as exc:
                outcomes.append(exc)
    finally:
        client.close()
    return outcomes


def test_cut_mid_reply_is_a_protocol_error(scripted: Callable[[Script], str]) -> None:
    def cut(conn: ServerConnection) -> None:
        _tokens(conn, 2)
        conn.close_socket()

    (outcome,) = _send(scripted(_turns(cut)), _ask())
    assert isinstance(outcome, ProtocolError)
    assert outcome.reason == "stream ended early: connection closed (no close frame)"


def test_closed_before_the_reply_is_a_connect_error(scripted: Callable[[Script], str]) -> None:
    (outcome,) = _send(scripted(_turns(lambda conn: conn.close())), _ask())
    assert isinstance(outcome, ConnectError)
    assert (
        outcome.reason.startswith("connection to 127.0.0.1:")
        and "closed before the reply (code 1000)" in outcome.reason
    )


def test_a_broken_message_is_a_protocol_error_and_the_next_turn_reconnects(scripted: Callable[[Script], str]) -> None:
    connections: list[int] = []

    def handler(conn: ServerConnection) -> None:
        connections.append(1)
        conn.recv(timeout=10)
        if len(connections) == 1:
            conn.send('{"type": "chunk"}')
        else:
            _tokens(conn, 2)
            _done(conn)
        conn.recv(timeout=10)  # until the client goes

    first, second = _send(scripted(handler), _ask(), _ask())
    assert isinstance(first, ProtocolError) and first.reason.startswith("malformed reply message: reply message 'type'")
    assert second == "w0 w1 "
    assert len(connections) == 2


def test_a_connection_closed_while_idle_is_reopened(scripted: Callable[[Script], str]) -> None:
    def once(conn: ServerConnection) -> None:  # one turn per connection, then the server closes it
        conn.recv(timeout=10)
        _tokens(conn, 2)
        _done(conn)
        conn.close()

    url = scripted(once)
    client = WebSocketTransport(TransportConfig(target=url, timeout_s=5))
    try:
        assert client.send(_ask()).text == "w0 w1 "
        time.sleep(0.2)  # the close reaches the client
        assert client.send(_ask()).text == "w0 w1 "
    finally:
        client.close()
