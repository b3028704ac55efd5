"""The message types of a gRPC adapter: from a user's ``.proto`` (compiled at start-up) or the server's reflection.

:func:`compile_proto` runs grpcio-tools' protoc in a subprocess (``python -m grpc_tools.protoc --include_imports
--descriptor_set_out=...``: its errors come back as text, ``chat.proto:12:3: "Foo" is not defined.``, and nothing
is imported into this process) and loads the descriptor set into a pool of its own, once per file and process.
grpcio-tools is the ``adapters`` extra: without it a ``.proto`` adapter stops with one line saying what to install.

:func:`reflect_method` asks a server's reflection service (``grpc.reflection.v1alpha``, which grpcio-reflection
serves) for the file that defines the service and for every file it imports, each call bounded by a timeout.

:func:`find_method` gives a :class:`GrpcMethod`: the request and reply classes and whether the reply streams (a
method whose client streams is refused: a turn is one request). Every problem is a :class:`ProtoError` whose text
is safe to show.
"""

from __future__ import annotations

import functools
import importlib.util
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

#: How long protoc may take.
PROTOC_TIMEOUT_S: Final = 60.0
INSTALL_HINT: Final = "pip install 'chat-loadgen[adapters]' (grpcio-tools)"


class ProtoError(ValueError):
    """A .proto that does not compile, a method it lacks, or a reflection answer without it."""


@dataclass(frozen=True, slots=True)
class GrpcMethod:
    path: str  # "/package.Service/Method"
    input: type[Message]
    output: type[Message]
    server_streaming: bool


@dataclass(frozen=True, slots=True)
class ProtoSet:
    """A pool of message types and the services its files define."""

    pool: descriptor_pool.DescriptorPool
    services: tuple[str, ...]


def compile_proto(proto: Path, includes: Sequence[Path] = ()) -> ProtoSet:
    """The types ``proto`` defines (its own folder and ``includes`` are the import paths)."""
    resolved = proto.resolve()
    try:
        stamp = resolved.stat().st_mtime_ns
    except OSError as exc:
        raise ProtoError(f"cannot read {proto}: {exc.strerror or exc}") from None
    return _compile(resolved, tuple(p.resolve() for p in includes), stamp)


@functools.lru_cache(maxsize=16)
def _compile(proto: Path, includes: tuple[Path, ...], _stamp: int) -> ProtoSet:
    if importlib.util.find_spec("grpc_tools") is None:
        raise ProtoError(f"compiling {proto.name} needs grpcio-tools: {INSTALL_HINT}")
    with tempfile.TemporaryDirectory(prefix="loadgen-proto-") as tmp:
        out = Path(tmp) / "set.pb"
        command = [
            sys.executable, "-m", "grpc_tools.protoc", f"-I{proto.parent}", *(f"-I{p}" for p in includes),
            "--include_imports", f"--descriptor_set_out={out}", str(proto),
        ]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=PROTOC_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise ProtoError(f"protoc took longer than {PROTOC_TIMEOUT_S:g}s on {proto.name}") from None
        if done.returncode != 0:
            lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
            detail = "; ".join(line.replace(str(proto.parent) + "/", "") for line in lines[:3])
            raise ProtoError(f"protoc cannot compile {proto.name}: {detail or f'exit code {done.returncode}'}")
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    return _pool_of(files)


def _pool_of(files: Iterable[descriptor_pb2.FileDescriptorProto]) -> ProtoSet:
    """A pool of ``files`` (added dependencies first, whatever order they came in)."""
    by_name = {f.name: f for f in files}
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(name: str) -> None:
        if name in added:
            return
        added.add(name)
        file = by_name.get(name)
        if file is None:
            raise ProtoError(f"the definition of {name} is missing")
        for dependency in file.dependency:
            add(dependency)
        pool.AddSerializedFile(file.SerializeToString())

    for name in by_name:
        add(name)
    services = tuple(f"{f.package}.{s.name}" if f.package else s.name for f in by_name.values() for s in f.service)
    return ProtoSet(pool, services)


def find_method(protos: ProtoSet, method: str) -> GrpcMethod:
    """``package.Service/Method`` in ``protos``."""
    service_name, _, name = method.partition("/")
    try:
        service = protos.pool.FindServiceByName(service_name)
    except KeyError:
        known = ", ".join(protos.services) or "none"
        raise ProtoError(f"no service {service_name!r} (services: {known})") from None
    found = service.methods_by_name.get(name)
    if found is None:
        raise ProtoError(f"{service_name} has no method {name!r} (its methods: {', '.join(service.methods_by_name)})")
    if found.client_streaming:
        raise ProtoError(f"{method} streams requests from the client; an adapter calls unary or server-streaming ones")
    return GrpcMethod(
        path=f"/{service_name}/{name}",
        input=message_factory.GetMessageClass(found.input_type),
        output=message_factory.GetMessageClass(found.output_type),
        server_streaming=bool(found.server_streaming),
    )


#: Sends one reflection request and gives the serialized files of its answer.
Ask = Callable[..., list[bytes]]


def reflect_method(ask: Ask, method: str) -> GrpcMethod:
    """The method as a server's reflection describes it; ``ask(**request_fields)`` makes one reflection call
    (:func:`reflection_asker` over a channel)."""
    service = method.partition("/")[0]
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    pending = list(ask(file_containing_symbol=service))
    while pending:
        file = descriptor_pb2.FileDescriptorProto.FromString(pending.pop())
        files.setdefault(file.name, file)
        for dependency in file.dependency:
            if dependency not in files:
                pending.extend(ask(file_by_filename=dependency))
    return find_method(_pool_of(files.values()), method)


#: The reflection service's one method, asked as a server-streaming call: one question, the client's half of the
#: stream closed with it. On the wire that is the bidirectional call with one request, but grpcio sends the question
#: with the headers in one batch. Asked as a bidirectional call, a server without reflection answers UNIMPLEMENTED
#: to the headers alone, and when that answer ends the call while grpcio is still sending the question, grpcio
#: reports an INTERNAL of its own ("Failed execute_batch") in place of the server's status (seen in CI).
REFLECTION_METHOD = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


def reflection_method(channel: Any) -> Any:
    """The reflection question's multi-callable on ``channel`` (sync or ``grpc.aio``); see :data:`REFLECTION_METHOD`."""
    from grpc_reflection.v1alpha import reflection_pb2

    return channel.unary_stream(
        REFLECTION_METHOD,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )


def reflection_request(fields: dict[str, Any]) -> Any:
    """The ``ServerReflectionRequest`` of one question."""
    from grpc_reflection.v1alpha import reflection_pb2

    return reflection_pb2.ServerReflectionRequest(**fields)


def reflection_files(response: Any, fields: dict[str, Any]) -> list[bytes]:
    """The serialized files of one answer; the server's error answer is a :class:`ProtoError`."""
    if response.HasField("error_response"):
        what = next(iter(fields.values()))
        raise ProtoError(f"the server's reflection does not know {what!r}: "
                         f"{response.error_response.error_message or 'not found'}")  # fmt: skip
    return list(response.file_descriptor_response.file_descriptor_proto)


def reflection_asker(channel: Any, timeout_s: float) -> Ask:
    """``ask`` for :func:`reflect_method` over a sync grpc channel (each call bounded by ``timeout_s``). A server's
    error answer is a :class:`ProtoError`; the call's own failure is the :class:`grpc.RpcError` it raised."""
    question = reflection_method(channel)

    def ask(**fields: Any) -> list[bytes]:
        for response in question(reflection_request(fields), timeout=timeout_s):
            return reflection_files(response, fields)
        raise ProtoError("the server's reflection service gave no answer")

    return ask


__all__ = [
    "INSTALL_HINT",
    "PROTOC_TIMEOUT_S",
    "REFLECTION_METHOD",
    "Ask",
    "GrpcMethod",
    "ProtoError",
    "ProtoSet",
    "compile_proto",
    "find_method",
    "reflect_method",
    "reflection_asker",
    "reflection_files",
    "reflection_method",
    "reflection_request",
]
