"""The ``request:`` of a gRPC adapter, checked against the method's types (the rest of the file:
:mod:`loadgen.adapters.loader`).

With ``proto:`` the file is compiled when the adapter is read (:mod:`loadgen.adapters.protos`) and the method, the
request template (rendered with sample values and parsed as the request message, protobuf's JSON mapping) and the
reply paths (``text`` a string field, counts integer fields) are checked here, each problem at its line. With
``reflection: true`` the same checks run when the transport has asked the server (:func:`method_problems`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Final, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from yaml.nodes import MappingNode, Node, SequenceNode

from loadgen.adapters.paths import Path, PathError, proto_field_of
from loadgen.adapters.protos import GrpcMethod, ProtoError, compile_proto, find_method
from loadgen.adapters.reply_checks import ReplyChecks
from loadgen.adapters.request import turn_values
from loadgen.adapters.spec import GrpcRequest, HistoryShape, Protocol, ReplySpec
from loadgen.adapters.template import ENV_PREFIX, SECRET_NAMES, TURN_NAMES, Template
from loadgen.types import ChatMessage, ChatRequest

GRPC_KEYS: Final = ("method", "proto", "include", "reflection", "metadata", "body")
METHOD_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*/[A-Za-z_][A-Za-z0-9_]*$")
_INTEGERS: Final = frozenset({
    FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED32, FieldDescriptor.TYPE_SFIXED64,
})  # fmt: skip
#: The turn a request template is tried with.
SAMPLE_REQUEST: Final = ChatRequest(
    messages=(
        ChatMessage("system", "You are a helpful assistant."),
        ChatMessage("user", "Hello, my name is Ada."),
        ChatMessage("assistant", "Hello Ada."),
        ChatMessage("user", "What is my name?"),
    ),
    session_id="conversation-1",
)


def method_problems(method: GrpcMethod, body: Template, reply: ReplySpec, shape: HistoryShape) -> list[tuple[str, str]]:
    """What does not fit the method's types, as (field of the adapter file, message) pairs."""
    problems: list[tuple[str, str]] = []
    secrets = {name: "sample" for name in body.names if name in SECRET_NAMES or name.startswith(ENV_PREFIX)}
    values = turn_values(SAMPLE_REQUEST, shape, body.names, model=None, secrets=secrets)
    try:
        json_format.ParseDict(body.render(values), method.input())
    except (json_format.ParseError, TypeError, ValueError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        problems.append(("request.body", f"does not fit {method.input.DESCRIPTOR.full_name}: {detail}"))
    output = cast(Descriptor, method.output.DESCRIPTOR)
    checks: list[tuple[str, Path | None, frozenset[int], str]] = [
        ("reply.text", reply.text, frozenset({FieldDescriptor.TYPE_STRING}), "a string field"),
        ("reply.tokens", reply.tokens, _INTEGERS, "an integer field"),
        ("reply.usage.prompt_tokens", reply.prompt_tokens, _INTEGERS, "an integer field"),
        ("reply.usage.completion_tokens", reply.completion_tokens, _INTEGERS, "an integer field"),
    ]
    for where, path, types, what in checks:
        if path is None:
            continue
        try:
            field = proto_field_of(path, output)
        except PathError as exc:
            problems.append((where, str(exc)))
            continue
        if field.type not in types:
            problems.append((where, f"`{path}` is not {what} of {output.full_name}"))
    return problems


@dataclass
class GrpcChecks(ReplyChecks):
    """The gRPC request checks, mixed into the adapter file's reader."""

    base_dir: FilePath = FilePath(".")

    def grpc_request(self, request: Node, reply: Node, shape: HistoryShape) -> GrpcRequest | None:
        entries = self.mapping(request, "request", GRPC_KEYS, "a mapping with method:, proto: (or reflection:), body:")
        method_node = self.required(request, entries, "method", "package.Service/Method", "request")
        method = self.text(method_node, "request.method", what="package.Service/Method") if method_node else None
        if method_node is not None and method is not None and not METHOD_RE.match(method):
            self.problem(method_node, "request.method", f"{method!r}: expected package.Service/Method")
        proto, includes, reflection = self._source(request, entries)
        metadata = self.headers(entries["metadata"][1], "request.metadata") if "metadata" in entries else ()
        body_node = self.required(request, entries, "body", "the request message in protobuf's JSON form", "request")
        body = self.template(body_node, "request.body", TURN_NAMES) if body_node is not None else None
        spec = self.reply(reply, "reply", Protocol.GRPC)
        if method is None or metadata is None or body is None or spec is None or self.problems:
            return None
        found = GrpcRequest(method, body, metadata, spec, proto=proto, includes=includes, reflection=reflection)
        if proto is not None:
            self._check_types(found, shape, {"request.method": method_node, "request.proto": entries["proto"][1],
                                             "request.body": body_node, "reply": reply})  # fmt: skip
        return None if self.problems else found

    def _source(self, request: Node, entries: dict[str, tuple[Node, Node]]) -> tuple[FilePath | None, tuple[
            FilePath, ...], bool]:  # fmt: skip
        proto: FilePath | None = None
        if "proto" in entries:
            name = self.text(entries["proto"][1], "request.proto", what="a .proto file, relative to this one")
            proto = self.base_dir / name if name else None
            if proto is not None and not proto.is_file():
                self.problem(entries["proto"][1], "request.proto", f"no such file {str(proto)!r}")
        reflection = False
        if "reflection" in entries:
            value = self.scalar(entries["reflection"][1])
            if not isinstance(value, bool):
                self.problem(entries["reflection"][1], "request.reflection", "expected true or false")
            reflection = value is True
        if ("proto" in entries) == reflection:
            where = self._keys.get(id(request), request)
            self.problem(where, "request", "give either `proto: FILE` or `reflection: true` (one of them)")
        includes: list[FilePath] = []
        if "include" in entries:
            node = entries["include"][1]
            items = node.value if isinstance(node, SequenceNode) else [node]
            for item in items:
                folder = self.text(item, "request.include", what="a folder of .proto imports")
                if folder is not None:
                    includes.append(self.base_dir / folder)
        return proto, tuple(includes), reflection

    def _check_types(self, request: GrpcRequest, shape: HistoryShape, nodes: dict[str, Node | None]) -> None:
        assert request.proto is not None
        try:
            method = find_method(compile_proto(request.proto, request.includes), request.method)
        except ProtoError as exc:
            compiled = "no service" in str(exc) or "has no method" in str(exc) or "streams requests" in str(exc)
            where = "request.method" if compiled else "request.proto"
            self.problem(nodes[where], where, str(exc))
            return
        for where, message in method_problems(method, request.body, request.reply, shape):
            self.problem(self._node_at(nodes, where), where, message)

    def _node_at(self, nodes: dict[str, Node | None], where: str) -> Node | None:
        if where in nodes:
            return nodes[where]
        node = nodes["reply"]
        for key in where.split(".")[1:]:
            if not isinstance(node, MappingNode):
                break
            node = next((value for k, value in node.value if getattr(k, "value", None) == key), node)
        return node


__all__ = ["GRPC_KEYS", "SAMPLE_REQUEST", "GrpcChecks", "method_problems"]
