"""A client written only from ``proto/``: compiled with grpc_tools.protoc into a temporary folder at test time and
run in a fresh interpreter that cannot import this project at all (no site hooks, so not even the editable
install), it talks to the reference server's gRPC front. Proves the .proto alone is the contract."""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from loadgen.server.app import run_in_thread
from loadgen.server.config import ServerConfig, SimEngineConfig

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("grpc_tools") is None,
    reason='grpcio-tools is not installed (pip install -e ".[dev]" installs it)',
)

CLIENT = """
import json
import sys

sys.path[:0] = [GEN_DIR]
sys.path.extend(SITE_DIRS)

import grpc
from loadgen.chat.v1 import chat_pb2, chat_pb2_grpc  # the code protoc just wrote, nothing else

assert chat_pb2.__file__.startswith(GEN_DIR), chat_pb2.__file__
with grpc.insecure_channel(TARGET) as channel:
    stub = chat_pb2_grpc.ChatServiceStub(channel)
    request = chat_pb2.ChatRequest(
        model="any",
        messages=[chat_pb2.ChatMessage(role="user", content="My booking code is QX4821.")],
        max_tokens=8,
        session_id="proto-only",
    )
    chunks = list(stub.Chat(request, timeout=10))
    probe = stub.Complete(
        chat_pb2.ChatRequest(
            messages=[chat_pb2.ChatMessage(role="user", content="What was my booking code again?")],
            max_tokens=30,
            session_id="proto-only",
        ),
        timeout=10,
    )
    try:
        stub.Complete(chat_pb2.ChatRequest(), timeout=10)
        status = "OK"
    except grpc.RpcError as exc:
        status = exc.code().name

import loadgen  # the namespace package that protoc's output forms: this project is not importable here

project = [path for path in loadgen.__path__ if not path.startswith(GEN_DIR)]
print(json.dumps({
    "texts": [c.text for c in chunks],
    "last": {"finish_reason": chunks[-1].finish_reason, "completion_tokens": chunks[-1].usage.completion_tokens},
    "probe": probe.text,
    "probe_usage": [probe.usage.prompt_tokens, probe.usage.completion_tokens],
    "empty_request_status": status,
    "project_modules": project,
}))
"""


def compile_proto(out: Path) -> None:
    from grpc_tools import protoc

    well_known = str(importlib.resources.files("grpc_tools") / "_proto")
    protos = sorted(str(p) for p in (REPO_ROOT / "proto").rglob("*.proto"))
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{REPO_ROOT / 'proto'}",
            f"-I{well_known}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            *protos,
        ]
    )
    assert code == 0, "protoc failed on proto/"


def test_a_client_built_only_from_the_proto_talks_to_the_server(tmp_path: Path) -> None:
    gen = tmp_path / "gen"
    gen.mkdir()
    compile_proto(gen)
    assert (gen / "loadgen" / "chat" / "v1" / "chat_pb2_grpc.py").exists()
    site_dirs = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    config = ServerConfig(rest_port=None, grpc_port=0, sim=SimEngineConfig(fixed=True, fixed_ttft_ms=1, fixed_itl_ms=1))
    with run_in_thread(config) as server:
        script = textwrap.dedent(CLIENT).replace("GEN_DIR", repr(str(gen)))
        script = script.replace("SITE_DIRS", repr(site_dirs)).replace("TARGET", repr(server.urls["grpc"][7:]))
        # -S: no site hooks (the editable install of this project lives in one); -I: no PYTHONPATH, no cwd
        out = subprocess.run(
            [sys.executable, "-S", "-I", "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
        )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["project_modules"] == []
    texts = result["texts"]
    assert all(texts[:-1]) and texts[-1] == ""  # content chunks, then the closing one
    assert result["last"] == {"finish_reason": "length", "completion_tokens": 8}
    assert "QX4821" in result["probe"]  # server-side history through the session id
    assert result["probe_usage"][0] > 0 and result["probe_usage"][1] == 30
    assert result["empty_request_status"] == "INVALID_ARGUMENT"
