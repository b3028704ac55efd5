"""Regenerate the committed gRPC/protobuf code in ``loadgen/grpc_gen/`` from the ``.proto`` files in ``proto/``.

    python -m loadgen.grpc_gen.regenerate            # rewrite the generated files
    python -m loadgen.grpc_gen.regenerate --check    # exit 1 (and say which) if the committed files differ

Needs ``grpcio-tools`` (the ``dev`` extra), whose version must equal the pinned ``grpcio``: the generated code
records both the protobuf and the grpcio version it was made with and checks the runtime against them.

Layout: every ``.proto`` lives under ``proto/loadgen/`` (its directories mirror its package, e.g.
``proto/loadgen/chat/v1/chat.proto`` for ``loadgen.chat.v1``). protoc is run with the virtual include path
``-Iloadgen/grpc_gen=proto/loadgen``, so that file becomes ``loadgen/grpc_gen/chat/v1/chat.proto`` to protoc
and the generated modules land in, and import each other as, ``loadgen.grpc_gen.chat.v1`` without any
rewriting. For each ``X.proto`` we write ``X_pb2.py``, ``X_pb2.pyi`` (types) and ``X_pb2_grpc.py``, plus an
empty ``__init__.py`` in every package directory on the way.

The one change made to protoc's output: each ``.pyi`` and ``_pb2_grpc.py`` gets a line ``# mypy: ignore-errors``
(protoc's stubs use a bare ``Mapping`` and the gRPC module has no annotations, errors under ``mypy --strict``
when project code imports them; the stubs' types are still used).
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

#: The repository root (this file is loadgen/grpc_gen/regenerate.py).
REPO_ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = REPO_ROOT / "proto"
#: The ``.proto`` files' root: proto/loadgen/<pkg path>/X.proto
PROTO_SOURCE_ROOT = PROTO_DIR / "loadgen"
GEN_DIR = REPO_ROOT / "loadgen" / "grpc_gen"
#: What protoc sees in place of PROTO_SOURCE_ROOT (and so the Python package the code lands in).
VIRTUAL_PREFIX = "loadgen/grpc_gen"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
MYPY_LINE = b"# mypy: ignore-errors\n"
#: Hand-written files inside GEN_DIR that regeneration leaves alone.
HAND_WRITTEN = frozenset({"regenerate.py"})


class RegenerateError(Exception):
    """grpcio-tools missing, no .proto found, or protoc failed."""


def proto_files(source_root: Path = PROTO_SOURCE_ROOT) -> list[Path]:
    files = sorted(source_root.rglob("*.proto"))
    if not files:
        raise RegenerateError(f"no .proto files under {source_root}")
    return files


def generate(out_dir: Path, source_root: Path = PROTO_SOURCE_ROOT) -> dict[str, bytes]:
    """Run protoc into ``out_dir``; return {path relative to loadgen/grpc_gen: content} of every file that
    belongs in loadgen/grpc_gen (generated modules and the package ``__init__.py`` files)."""
    try:
        from grpc_tools import protoc
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RegenerateError(
            'grpcio-tools is not installed: pip install -e ".[dev]" (it must match the pinned grpcio)'
        ) from exc
    import importlib.resources

    well_known = str(importlib.resources.files("grpc_tools") / "_proto")
    protos = proto_files(source_root)
    args = [
        "grpc_tools.protoc",
        f"-I{VIRTUAL_PREFIX}={source_root}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(p) for p in protos),
    ]
    code = protoc.main(args)
    if code != 0:
        raise RegenerateError(f"protoc failed (exit {code}) on {', '.join(str(p) for p in protos)}")
    gen_root = out_dir / VIRTUAL_PREFIX
    files: dict[str, bytes] = {}
    for path in sorted(gen_root.rglob("*")):
        if path.is_file() and path.name.endswith(GENERATED_SUFFIXES):
            rel = path.relative_to(gen_root)
            content = path.read_bytes()
            if path.name.endswith(("_pb2.pyi", "_pb2_grpc.py")):
                content = _add_mypy_line(content)
            files[rel.as_posix()] = content
            # every directory between loadgen/grpc_gen and the module is a package
            for parent in rel.parents:
                if parent != Path("."):
                    files.setdefault((parent / "__init__.py").as_posix(), b"")
    return files


def _add_mypy_line(content: bytes) -> bytes:
    """``# mypy: ignore-errors`` after the leading comment lines (protoc's "DO NOT EDIT" header stays first)."""
    lines = content.splitlines(keepends=True)
    i = 0
    while i < len(lines) and lines[i].startswith(b"#"):
        i += 1
    return b"".join([*lines[:i], MYPY_LINE, *lines[i:]])


def committed_files(gen_dir: Path = GEN_DIR) -> dict[str, bytes]:
    """The generated files (and sub-package ``__init__.py`` files) now in loadgen/grpc_gen."""
    files: dict[str, bytes] = {}
    for path in sorted(gen_dir.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        rel = path.relative_to(gen_dir)
        if rel.as_posix() in HAND_WRITTEN or rel.as_posix() == "__init__.py":
            continue
        if path.name.endswith(GENERATED_SUFFIXES) or path.name == "__init__.py":
            files[rel.as_posix()] = path.read_bytes()
    return files


def differences(expected: dict[str, bytes], actual: dict[str, bytes]) -> list[str]:
    """One line per file that regeneration would add, change or remove (with a short diff for changes)."""
    out: list[str] = []
    for name in sorted(expected.keys() | actual.keys()):
        if name not in actual:
            out.append(f"missing: loadgen/grpc_gen/{name}")
        elif name not in expected:
            out.append(f"stale (no .proto makes it): loadgen/grpc_gen/{name}")
        elif expected[name] != actual[name]:
            diff = difflib.unified_diff(
                actual[name].decode("utf-8", "replace").splitlines(),
                expected[name].decode("utf-8", "replace").splitlines(),
                f"committed/{name}",
                f"regenerated/{name}",
                lineterm="",
                n=1,
            )
            lines = list(diff)
            shown = "\n    ".join(lines[:20]) + ("\n    ..." if len(lines) > 20 else "")
            out.append(f"differs: loadgen/grpc_gen/{name}\n    {shown}")
    return out


def regenerate(*, check: bool, gen_dir: Path = GEN_DIR, source_root: Path = PROTO_SOURCE_ROOT) -> list[str]:
    """Regenerate (``check=False``: write the files, remove stale ones) or compare (``check=True``).
    Returns the differences found before writing (empty: already current)."""
    with tempfile.TemporaryDirectory(prefix="loadgen-grpc-gen-") as tmp:
        expected = generate(Path(tmp), source_root)
    actual = committed_files(gen_dir)
    diffs = differences(expected, actual)
    if check or not diffs:
        return diffs
    for name in actual.keys() - expected.keys():
        (gen_dir / name).unlink()
    for name, content in expected.items():
        target = gen_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if actual.get(name) != content:
            target.write_bytes(content)
    # drop directories the removals left without any module
    for directory in sorted((p for p in gen_dir.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if directory.name == "__pycache__":
            continue
        remaining = [p for p in directory.iterdir() if p.name != "__pycache__"]
        if not remaining:
            shutil.rmtree(directory)
    return diffs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadgen.grpc_gen.regenerate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if the committed code is not current"
    )
    args = parser.parse_args(argv)
    try:
        diffs = regenerate(check=args.check)
    except RegenerateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if diffs:
            print("loadgen/grpc_gen is out of date with proto/:", file=sys.stderr)
            for line in diffs:
                print(f"  {line}", file=sys.stderr)
            print("run: python -m loadgen.grpc_gen.regenerate", file=sys.stderr)
            return 1
        print("loadgen/grpc_gen is current with proto/")
        return 0
    if diffs:
        for line in diffs:
            print(f"regenerated ({line.splitlines()[0]})")
    else:
        print("loadgen/grpc_gen already current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
