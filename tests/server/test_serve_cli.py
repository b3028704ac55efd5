"""``loadgen serve`` as a user runs it: a subprocess that prints the ready line and exits 0 on SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pytest

from loadgen.server.fronts import READY_PREFIX
from loadgen.server.main import build_config, configure
from loadgen.transports import make_transport
from loadgen.transports.base import TransportConfig
from loadgen.types import ChatMessage, ChatRequest
from tests.conftest import REPO_ROOT, require_broker


def start(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "serve", "--bind", "127.0.0.1", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    found: dict[str, str] = {}
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(READY_PREFIX):
                found.update(json.loads(line[len(READY_PREFIX) :]))
                break
        done.set()

    threading.Thread(target=read, daemon=True).start()
    if not done.wait(60):
        proc.kill()
        pytest.fail("no ready line within 60 s")
    return proc, found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_ready_line_serves_and_exits_0_on_signal(sig: signal.Signals) -> None:
    proc, urls = start("--rest-port", "0", "--fixed", "--fixed-ttft-ms", "5", "--fixed-itl-ms", "1")
    try:
        assert set(urls) == {"rest"}
        assert urls["rest"].startswith("http://127.0.0.1:")
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
        r = httpx.post(urls["rest"] + "/v1/chat/completions", json=body, timeout=10)
        assert r.status_code == 200
        assert r.json()["usage"]["completion_tokens"] == 5
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=20)
        assert proc.returncode == 0, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_serve_reads_the_api_key_from_the_named_variable_and_never_prints_it() -> None:
    key = "sk-test-9f8e7d6c5b4a"
    proc, urls = start("--rest-port", "0", "--api-key-env", "MY_KEY", "--log-level", "debug", env={"MY_KEY": key})
    try:
        url = urls["rest"] + "/v1/chat/completions"
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        assert httpx.post(url, json=body).status_code == 401
        assert httpx.post(url, json=body, headers={"Authorization": f"Bearer {key}"}).status_code == 200
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert key not in stdout + stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_serve_fails_clearly() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "loadgen", "serve", "--api-key-env", "SURELY_NOT_SET_ANYWHERE"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 2
    assert "SURELY_NOT_SET_ANYWHERE" in proc.stderr
    with socket_taken() as port:
        proc = subprocess.run(
            [sys.executable, "-m", "loadgen", "serve", "--rest-port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO_ROOT,
        )
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr


class socket_taken:
    def __enter__(self) -> int:
        import socket

        self.sock = socket.create_server(("127.0.0.1", 0))
        port: int = self.sock.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_every_option_maps_onto_the_config() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(
        shlex.split(
            "--bind 0.0.0.0 --rest-port 9000 --grpc-port 0 --amqp-url amqp://x --amqp-queue q --amqp-prefetch 7 "
            "--engine torch --max-batch 8 --queue-limit 5 --prefill-us-per-token 1 --step-base-us 2 "
            "--step-per-seq-us 3 --fixed --fixed-ttft-ms 4 --fixed-itl-ms 5 --session-capacity 6 --session-ttl 7 "
            "--context-window 800 --default-max-tokens 9 --device cuda --torch-model 1b --batching static "
            "--window 10 --kv-tokens 11 --static-batch-timeout-ms 12 --weight-seed 13 --session-memory 64MiB "
            "--faults '10s forget-sessions'"
        )
    )
    c = build_config(args)
    assert (c.host, c.rest_port, c.grpc_port, c.amqp_url, c.amqp_queue, c.amqp_prefetch) == (
        "0.0.0.0", 9000, 0, "amqp://x", "q", 7,
    )  # fmt: skip
    assert (c.engine, c.session_capacity, c.session_ttl_s, c.context_window, c.default_max_tokens) == (
        "torch", 6, 7.0, 800, 9,
    )  # fmt: skip
    assert c.sim is not None and c.torch is not None
    assert (c.sim.max_batch, c.sim.queue_limit, c.sim.prefill_us_per_token, c.sim.step_base_us) == (8, 5, 1, 2)
    assert (c.sim.step_per_seq_us, c.sim.fixed, c.sim.fixed_ttft_ms, c.sim.fixed_itl_ms) == (3, True, 4, 5)
    assert (c.torch.device, c.torch.model, c.torch.batching, c.torch.window, c.torch.kv_tokens) == (
        "cuda", "1b", "static", 10, 11,
    )  # fmt: skip
    assert (c.torch.max_batch, c.torch.queue_limit, c.torch.static_batch_timeout_ms, c.torch.seed) == (8, 5, 12, 13)
    assert (c.session_max_bytes, c.faults) == (64 * 1024 * 1024, "10s forget-sessions")
    assert build_config(parser.parse_args(["--no-rest"])).rest_port is None
    defaults = build_config(parser.parse_args([]))
    assert defaults.rest_port == 8000 and defaults.grpc_port is None and defaults.host == "127.0.0.1"
    assert (defaults.session_max_bytes, defaults.faults) == (256 * 1024 * 1024, None)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("--host 0.0.0.0", "--bind"),
        ("--model 1b", "--torch-model"),
        ("--seed=3", "--weight-seed"),
        ("--seed", "--weight-seed"),
    ],
)
def test_old_spellings_of_renamed_flags_are_refused_with_one_line(old: str, new: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "loadgen", "serve", "--rest-port", "0", *shlex.split(old)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"loadgen serve: {old.split()[0].split('=')[0]} was renamed: use {new} (")


def test_the_amqp_url_comes_from_the_environment_when_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    configure(parser)
    monkeypatch.setenv("LOADGEN_AMQP_URL", "amqp://from-env")
    assert build_config(parser.parse_args([])).amqp_url == "amqp://from-env"
    assert build_config(parser.parse_args(["--amqp-url", "amqp://given"])).amqp_url == "amqp://given"
    monkeypatch.delenv("LOADGEN_AMQP_URL")
    assert build_config(parser.parse_args([])).amqp_url is None


def test_an_unreachable_broker_is_one_line_and_exit_2_within_seconds() -> None:
    """It was ~90 lines with a traceback and exit code 1."""
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadgen",
            "serve",
            "--no-rest",
            "--amqp-url",
            "amqp://guest:Sup3rS3cret@127.0.0.1:5999/",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert time.monotonic() - started < 15
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "loadgen serve: AMQP front cannot start: connection refused to the broker at 127.0.0.1:5999: is RabbitMQ "
        "running? (start one with `rabbitmq-server -detached`)"
    ]


def test_a_bad_fault_schedule_is_one_line_and_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "loadgen", "serve", "--rest-port", "0", "--faults", "30s down"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "loadgen serve: --faults entry 1 ('30s down'): down lasts a while: write START+DURATION, e.g. 30s+10s"
    ]


def test_the_ready_line_shows_no_password_and_the_url_still_works() -> None:
    require_broker()
    queue = f"loadgen.test.cli.{os.getpid()}"
    proc, urls = start("--rest-port", "0", "--amqp-url", "amqp://guest:guest@127.0.0.1:5672/", "--amqp-queue", queue)
    try:
        assert urls["amqp"] == f"amqp://guest@127.0.0.1:5672/?queue={queue}"
        transport = make_transport("amqp", TransportConfig(target=urls["amqp"], timeout_s=10))
        try:
            reply = transport.send(ChatRequest((ChatMessage("user", "hi"),), max_tokens=3))
        finally:
            transport.close()
        assert reply.usage is not None and reply.usage.completion_tokens == 3
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert "guest:guest" not in stdout + stderr
        assert "Traceback" not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_fault_lines_follow_the_ready_line_and_sigterm_mid_fault_prints_no_traceback() -> None:
    proc, urls = start(
        "--rest-port", "0", "--grpc-port", "0", "--faults", "0.2s forget-sessions; 0.3s+30s stall; 0.4s+0.2s slow 2x"
    )  # fmt: skip
    try:
        # a request held by the stall when SIGTERM comes
        held = threading.Thread(target=lambda: _swallow(lambda: httpx.post(
            urls["rest"] + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}, timeout=30
        )))  # fmt: skip
        time.sleep(1.0)
        held.start()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=20)
        held.join(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    edges = [json.loads(line[len("loadgen-fault ") :]) for line in stdout.splitlines() if line.startswith("loadgen-")]
    assert [(e["fault"], e["kind"], e["edge"]) for e in edges] == [
        ("0.2s forget-sessions", "forget-sessions", "start"),
        ("0.3s+30s stall", "stall", "start"),
        ("0.4s+0.2s slow 2x", "slow", "start"),
        ("0.4s+0.2s slow 2x", "slow", "end"),
    ]
    assert all(set(e) == {"fault", "kind", "edge", "at"} and isinstance(e["at"], float) for e in edges)
    assert [e["at"] for e in edges] == sorted(e["at"] for e in edges)


def _swallow(call: Any) -> None:
    with contextlib.suppress(httpx.HTTPError):
        call()
