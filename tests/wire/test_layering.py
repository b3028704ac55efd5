"""Where things live: the server never imports the client package, the wire package imports neither, and each
string both sides must agree on is written once, in loadgen/wire (a copy elsewhere is how the two sides drifted)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "loadgen"
GENERATED = PACKAGE / "grpc_gen"


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if GENERATED not in p.parents)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function (``from x import y`` gives x and x.y)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.add(arg.value)
    return found


def _offending(folder: Path, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in _modules(folder)
        for name in sorted(_imports(path))
        if name.startswith(forbidden)
    ]


def test_the_server_never_imports_the_client_package() -> None:
    assert _offending(PACKAGE / "server", ("loadgen.transports",)) == []


def test_the_wire_package_imports_neither_side() -> None:
    assert _offending(PACKAGE / "wire", ("loadgen.transports", "loadgen.server", "loadgen.locust_plugin")) == []


def test_transports_never_import_the_server() -> None:
    assert _offending(PACKAGE / "transports", ("loadgen.server",)) == []


def test_the_scan_sees_a_lazy_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from loadgen.transports import redact_url\n    return redact_url\n")
    assert "loadgen.transports" in _imports(module)


def _strings(path: Path) -> list[tuple[int, str]]:
    """Every string constant of ``path`` but docstrings, with its line (f-string pieces included)."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


@pytest.mark.parametrize(
    ("text", "home"),
    [
        ("/v1/chat/completions", "wire/openai/request.py"),
        ("chat.completion.chunk", "wire/openai/reply.py"),
        ("loadgen.chat.v1", "wire/grpc.py"),  # only ever from the descriptor: nowhere, in fact
        ("Bearer", "wire/auth.py"),
        ("text/event-stream", "wire/sse.py"),
        ("engine_stopped", "wire/status.py"),
        ("RESOURCE_EXHAUSTED", "wire/status.py"),
    ],
)
def test_each_shared_string_is_written_once(text: str, home: str) -> None:
    where = [
        f"{path.relative_to(PACKAGE)}:{line}"
        for path in _modules(PACKAGE)
        for line, value in _strings(path)
        if text in value and str(path.relative_to(PACKAGE)) != home
    ]
    assert where == [], f"{text!r} belongs in loadgen/{home} only"


@pytest.mark.parametrize(
    "name", ["_short", "short", "_snippet", "redact_url", "_fill_token_counts", "fill_token_counts"]
)
def test_each_shared_helper_is_defined_once(name: str) -> None:
    where = [
        str(path.relative_to(PACKAGE))
        for path in _modules(PACKAGE)
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name == name
    ]
    assert len(where) <= 1, (
        f"{name} is defined in {where}: keep one (loadgen/wire/text.py, loadgen/transports/replies.py)"
    )
