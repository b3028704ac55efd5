"""``--adapter`` in a run: the transport it selects, what it must agree with, and a bad adapter stopping a real Locust
run before any user starts (exit 2, one line, no traceback)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from loadgen.adapters import AdapterConfig, adapter_option, load_adapter, resolve_transport, with_adapter
from loadgen.errors import ConfigError
from loadgen.transports.base import TransportConfig
from loadgen.types import HistoryMode
from tests.adapters.conftest import write_adapter
from tests.conftest import REPO_ROOT

LOCUSTFILE = REPO_ROOT / "scenarios" / "multiturn.py"


def transport_of(*args: str, host: str | None = "http://127.0.0.1:9", worker: bool = False) -> str:
    """The run's transport for these options (as LoadgenOptions.from_parsed resolves it; the plugin's own options are
    read in a Locust process: tests/locust_plugin/gevent_cases.py, and the runs below)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--adapter")
    parser.add_argument("--transport", default="rest")
    parser.add_argument("--history", default="client")
    parsed = parser.parse_args(list(args))
    parsed.host, parsed.worker = host, worker
    adapter = adapter_option(parsed.adapter, "--adapter")
    return resolve_transport(adapter, parsed.transport, HistoryMode(parsed.history), parsed)


@pytest.mark.parametrize(
    ("args", "transport"),
    [
        ((), "rest"),
        (("--adapter", "ollama"), "adapter-rest"),
        (("--adapter", "ollama", "--transport", "rest"), "adapter-rest"),
        (("--adapter", "example-amqp", "--transport", "amqp"), "adapter-amqp"),
        (("--adapter", "example-grpc", "--transport", "grpc"), "adapter-grpc"),
        (("--adapter", "rasa-rest", "--history", "server"), "adapter-rest"),
    ],
)
def test_the_adapter_picks_the_transport(args: tuple[str, ...], transport: str) -> None:
    assert transport_of(*args) == transport


@pytest.mark.parametrize(
    ("args", "host", "message"),
    [
        (("--adapter", "ollama", "--transport", "grpc"), "x", "--adapter ollama speaks rest: leave --transport out"),
        (("--adapter", "rasa-rest",), "x", "adapter 'rasa-rest' needs --history server"),
        (("--adapter", "ollama",), None, "--adapter ollama needs --host: the URL of the service it describes "
                                         "(http(s)://host:port)"),
        (("--transport", "adapter-rest",), "x", "--transport adapter-rest needs --adapter FILE"),
        (("--adapter", "nothing-like-it",), "x", "no such file, and no shipped profile of that name"),
    ],
)  # fmt: skip
def test_what_a_run_with_an_adapter_must_agree_with(args: tuple[str, ...], host: str | None, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        transport_of(*args, host=host)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_worker_needs_no_host_of_its_own() -> None:
    assert transport_of("--adapter", "ollama", host=None, worker=True) == "adapter-rest"


def test_the_adapter_rides_in_the_transport_config() -> None:
    config = TransportConfig(target="http://127.0.0.1:9", timeout_s=7.0, api_key="sk-hidden-1", model="m")
    assert with_adapter(config, None) is config
    carried = with_adapter(config, load_adapter("ollama"))
    assert isinstance(carried, AdapterConfig)
    assert carried.adapter is not None and carried.adapter.name == "ollama"
    assert (carried.target, carried.timeout_s, carried.api_key, carried.model) == (config.target, 7.0,
                                                                                   "sk-hidden-1", "m")  # fmt: skip
    assert "sk-hidden-1" not in repr(carried)


def _locust(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "1", "-r", "1", "-t", "5s",
         "--dialogues", str(REPO_ROOT / "scenarios" / "dialogues"), "--reports-dir", str(tmp_path / "reports"), *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("adapter", "extra", "line"),
    [
        ("name: x\nprotocol: rest\nrequest: {path: /chat}\nreply: {text: '['}\nbad: 1\n", [],
         "chat-loadgen: --adapter: {path}:4: field `reply.text`: `[`: bad step at `[`; expected [N], [*] or "
         "[\"key\"] (and 1 more: run `loadgen adapters check {path}`)"),
        ("ollama", [], "chat-loadgen: --adapter ollama needs --host: the URL of the service it describes "
                       "(http(s)://host:port)"),
    ],
)  # fmt: skip
def test_a_bad_adapter_stops_the_run_before_any_user_starts(
    tmp_path: Path, adapter: str, extra: list[str], line: str
) -> None:
    ref = adapter if "\n" not in adapter else str(write_adapter(tmp_path, adapter))
    done = _locust(tmp_path, "--adapter", ref, *extra)
    assert done.returncode == 2, done.stderr[-3000:]
    ours = [text for text in done.stderr.splitlines() if "chat-loadgen" in text]
    assert ours == [line.format(path=ref)]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "reports").exists()


def test_each_protocol_s_adapter_transport_is_registered_apart_from_transport_s_choices() -> None:
    from loadgen.adapters import PROTOCOL_TRANSPORTS
    from loadgen.transports import ADAPTER_TRANSPORTS, TRANSPORTS, transport_class

    assert {str(p): name for p, name in PROTOCOL_TRANSPORTS.items()} == {
        "rest": "adapter-rest",
        "grpc": "adapter-grpc",
        "amqp": "adapter-amqp",
    }
    assert sorted(ADAPTER_TRANSPORTS) == ["adapter-amqp", "adapter-grpc", "adapter-rest"]
    assert not set(ADAPTER_TRANSPORTS) & set(TRANSPORTS)  # --transport offers the built-in ones only
    for name in ADAPTER_TRANSPORTS:
        assert transport_class(name).name == name
