"""The committed generated code is exactly what ``python -m loadgen.grpc_gen.regenerate`` makes from proto/, it
imports as a package, and the protobuf/grpcio versions it was made with agree with the pinned runtime."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from loadgen.grpc_gen import regenerate

REPO_ROOT = Path(__file__).resolve().parents[2]
HAVE_GRPC_TOOLS = importlib.util.find_spec("grpc_tools") is not None
needs_grpc_tools = pytest.mark.skipif(
    not HAVE_GRPC_TOOLS, reason='grpcio-tools is not installed (pip install -e ".[dev]" installs it)'
)


@needs_grpc_tools
def test_regenerating_changes_nothing() -> None:
    diffs = regenerate.regenerate(check=True)
    assert diffs == [], "loadgen/grpc_gen is stale; run: python -m loadgen.grpc_gen.regenerate\n" + "\n".join(diffs)


@needs_grpc_tools
def test_the_check_command_exits_0_when_current() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "loadgen.grpc_gen.regenerate", "--check"],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


@needs_grpc_tools
def test_check_finds_a_changed_proto_and_regenerate_fixes_it(tmp_path: Path) -> None:
    """On copies: an edited .proto makes --check fail (naming the files) until regeneration rewrites them; a
    generated file with no .proto behind it is reported stale and removed."""
    source = tmp_path / "proto" / "loadgen"
    shutil.copytree(REPO_ROOT / "proto" / "loadgen", source)
    gen = tmp_path / "gen"
    shutil.copytree(REPO_ROOT / "loadgen" / "grpc_gen", gen, ignore=shutil.ignore_patterns("__pycache__"))
    assert regenerate.regenerate(check=True, gen_dir=gen, source_root=source) == []

    proto = source / "chat" / "v1" / "chat.proto"
    proto.write_text(proto.read_text().replace("string session_id = 4;", "string session_id = 4;\n  bool echo = 5;"))
    (gen / "chat" / "v1" / "old_pb2.py").write_text("# left behind\n")
    diffs = regenerate.regenerate(check=True, gen_dir=gen, source_root=source)
    assert any(d.startswith("differs: loadgen/grpc_gen/chat/v1/chat_pb2.py") for d in diffs), diffs
    assert any(d.startswith("differs: loadgen/grpc_gen/chat/v1/chat_pb2.pyi") for d in diffs), diffs
    assert "stale (no .proto makes it): loadgen/grpc_gen/chat/v1/old_pb2.py" in diffs

    regenerate.regenerate(check=False, gen_dir=gen, source_root=source)
    assert regenerate.regenerate(check=True, gen_dir=gen, source_root=source) == []
    assert not (gen / "chat" / "v1" / "old_pb2.py").exists()
    assert "echo" in (gen / "chat" / "v1" / "chat_pb2.pyi").read_text()
    assert (gen / "regenerate.py").exists() and (gen / "__init__.py").exists()  # hand-written files stay


def test_proto_dir_holds_only_proto_sources() -> None:
    files = [p for p in (REPO_ROOT / "proto").rglob("*") if p.is_file()]
    assert files and all(p.suffix == ".proto" for p in files), files
    assert not list((REPO_ROOT / "proto").rglob("__init__.py"))


def test_generated_code_imports_as_a_package() -> None:
    from loadgen.grpc_gen.chat.v1 import chat_pb2, chat_pb2_grpc

    assert chat_pb2.DESCRIPTOR.package == "loadgen.chat.v1"
    assert chat_pb2.DESCRIPTOR.name == "loadgen/grpc_gen/chat/v1/chat.proto"
    service = chat_pb2.DESCRIPTOR.services_by_name["ChatService"]
    assert service.full_name == "loadgen.chat.v1.ChatService"
    assert {m.name: m.server_streaming for m in service.methods} == {"Chat": True, "Complete": False}
    assert hasattr(chat_pb2_grpc, "ChatServiceStub") and hasattr(chat_pb2_grpc, "add_ChatServiceServicer_to_server")
    chunk = chat_pb2.ChatChunk.FromString(
        chat_pb2.ChatChunk(text="hi", tokens=1, usage=chat_pb2.Usage(completion_tokens=1)).SerializeToString()
    )
    assert chunk.text == "hi" and chunk.HasField("usage")


def _version(spec: str) -> tuple[int, ...]:
    return tuple(int(x) for x in spec.split("."))


def _dependency(name: str) -> str:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    specs = [*project["dependencies"], *[d for group in project["optional-dependencies"].values() for d in group]]
    for spec in specs:
        if re.match(rf"{re.escape(name)}\s*[<>=!~;\[]", spec):
            return str(spec)
    raise AssertionError(f"{name} is not a dependency in pyproject.toml")


def test_pinned_versions_agree_with_the_generated_code() -> None:
    """The gencode says which protobuf runtime it needs (at least its own version, same major) and which grpcio;
    pyproject must not allow a runtime the committed code refuses to import with."""
    gen = REPO_ROOT / "loadgen" / "grpc_gen" / "chat" / "v1"
    pb2 = (gen / "chat_pb2.py").read_text()
    match = re.search(r"# Protobuf Python Version: (\d+)\.(\d+)\.(\d+)", pb2)
    assert match, "no protobuf version header in chat_pb2.py"
    gencode = tuple(int(x) for x in match.groups())
    protobuf = _dependency("protobuf")
    lower = re.search(r">=\s*([\d.]+)", protobuf)
    upper = re.search(r"<\s*([\d.]+)", protobuf)
    assert lower and _version(lower.group(1)) >= gencode, (
        f"pyproject's {protobuf!r} admits protobuf runtimes older than the gencode "
        f"{'.'.join(map(str, gencode))}; pin protobuf>={'.'.join(map(str, gencode))},<{gencode[0] + 1}"
    )
    assert upper and _version(upper.group(1)) <= (gencode[0] + 1,), (
        f"{protobuf!r}: the gencode needs major {gencode[0]}"
    )

    grpc_generated = re.search(r"GRPC_GENERATED_VERSION = '([\d.]+)'", (gen / "chat_pb2_grpc.py").read_text())
    assert grpc_generated
    for name in ("grpcio", "grpcio-tools", "grpcio-health-checking", "grpcio-reflection"):
        assert _dependency(name).replace(" ", "") == f"{name}=={grpc_generated.group(1)}", _dependency(name)
