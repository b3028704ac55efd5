"""One bearer format and one key policy (loadgen.wire.auth), and every transport and the service held to them.

What the three real fronts accept and refuse is tested in tests/e2e/test_status_contract.py.
"""

from __future__ import annotations

import pytest

from loadgen.errors import ConfigError
from loadgen.server.config import ServerConfig
from loadgen.server.engines.sim import SimEngine
from loadgen.server.service import ChatService
from loadgen.server.sessions import SessionStore
from loadgen.transports import make_transport
from loadgen.transports.base import TransportConfig
from loadgen.wire.auth import AUTH_HEADER, bearer, check_key, key_problem, parse_bearer

TARGETS = {
    "rest": "http://127.0.0.1:1",
    "grpc": "grpc://127.0.0.1:1",
    "amqp": "amqp://guest:guest@127.0.0.1:1/",
}
GOOD_KEYS = ["sk-abc123", "k", "a.b_c~d+e/f=", "!#$%&'*-^`|~", "x" * 4096]
BAD_KEYS = ["", "two words", "tab\tkey", "new\nline", "sk-ünïcode", "sk-\x00nul", "x" * 4097, " lead", "trail "]


@pytest.mark.parametrize("key", GOOD_KEYS)
def test_good_keys(key: str) -> None:
    assert key_problem(key) is None
    assert check_key(key) == key
    assert bearer(key) == f"Bearer {key}"
    assert parse_bearer(bearer(key)) == key  # what a client writes, a front reads back


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_refused_without_being_quoted(key: str) -> None:
    assert key_problem(key) is not None
    with pytest.raises(ConfigError) as info:
        bearer(key)
    if key.strip():
        assert key.strip() not in str(info.value)


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("Bearer sk-1", "sk-1"),
        ("bearer sk-1", "sk-1"),
        ("BEARER sk-1", "sk-1"),
        ("  Bearer   sk-1  ", "sk-1"),
        (b"Bearer sk-1", "sk-1"),
        ("sk-1", None),  # a bare key is no key
        ("Basic sk-1", None),
        ("Token sk-1", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Bearer two words", None),
        ("Bearer sk-ü", None),
        ("", None),
        (None, None),
        (5, None),
    ],
)
def test_parse_bearer(value: object, key: str | None) -> None:
    assert parse_bearer(value) == key


def test_the_header_name_is_lower_case() -> None:
    assert AUTH_HEADER == "authorization"  # gRPC metadata keys must be lower case


@pytest.mark.parametrize("transport", list(TARGETS))
@pytest.mark.parametrize("key", BAD_KEYS[1:])  # an empty key is no key: nothing is sent
def test_every_transport_refuses_the_same_keys(transport: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_transport(transport, TransportConfig(target=TARGETS[transport], api_key=key))
    assert "printable ASCII" in str(info.value)
    assert key.strip() not in str(info.value)


@pytest.mark.parametrize("transport", list(TARGETS))
@pytest.mark.parametrize("key", GOOD_KEYS)
def test_every_transport_takes_the_same_keys(transport: str, key: str) -> None:
    make_transport(transport, TransportConfig(target=TARGETS[transport], api_key=key)).close()


def test_a_server_refuses_to_require_a_key_no_client_could_send() -> None:
    config = ServerConfig(api_key="two words")
    with pytest.raises(ConfigError, match="API key to require"):
        ChatService(SimEngine(config.sim), SessionStore(4, 60.0), config)
    ChatService(SimEngine(config.sim), SessionStore(4, 60.0), ServerConfig(api_key="sk-fine"))
