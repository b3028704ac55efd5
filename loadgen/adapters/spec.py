"""What an adapter file says, validated and frozen (the loader, :mod:`loadgen.adapters.loader`, builds these).

An :class:`Adapter` names its :class:`Protocol` and holds the request of that protocol (:class:`RestRequest`,
:class:`GrpcRequest` or :class:`AmqpRequest`), how the conversation is written into it (:class:`HistoryShape`) and
how replies are read (:class:`ReplySpec`). The transport of each protocol is registered under
:attr:`Adapter.transport` (``adapter-rest``, ``adapter-grpc``, ``adapter-amqp``).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path as FilePath
from types import MappingProxyType
from typing import Final

from loadgen.adapters.paths import Path
from loadgen.adapters.template import Template
from loadgen.types import HistoryMode
from loadgen.wire.status import Failure


class Protocol(enum.StrEnum):
    REST = "rest"
    GRPC = "grpc"
    AMQP = "amqp"


#: The transport each protocol's adapters run on (registered in :data:`loadgen.transports.ADAPTER_TRANSPORTS`).
PROTOCOL_TRANSPORTS: Final[Mapping[Protocol, str]] = MappingProxyType(
    {Protocol.REST: "adapter-rest", Protocol.GRPC: "adapter-grpc", Protocol.AMQP: "adapter-amqp"}
)


class Format(enum.StrEnum):
    """How a REST reply body is cut into pieces of text."""

    JSON = "json"  # one JSON document: the whole reply
    SSE = "sse"  # Server-Sent Events, each event's data a JSON object
    NDJSON = "ndjson"  # one JSON object per line
    TEXT = "text"  # plain text, streamed as it comes


@dataclass(frozen=True, slots=True)
class EndSpec:
    """What marks the last piece of a streamed reply (exactly one is set)."""

    field: Path | None = None  # a field that is present, not null, not false and not "" on the last object
    event: str | None = None  # SSE: an event of this name
    data: str | None = None  # SSE: an event whose data is exactly this (OpenAI's "[DONE]")


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """How a reply says it failed (besides an HTTP status or a gRPC code)."""

    field: Path | None = None  # a field whose presence (not null) means an error; its value is the message
    code: Path | None = None  # where the error's code is (mapped by ``kinds``, else by the status table)
    event: str | None = None  # SSE: an event of this name is an error (its data the error object)
    kinds: Mapping[str, Failure] = dataclasses.field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class ReplySpec:
    """Where the text, the end, errors and token counts are in a reply."""

    format: Format = Format.JSON
    text: Path | None = None  # None only for Format.TEXT
    join: str = ""  # texts a [*] path finds are joined with this
    events: frozenset[str] | None = None  # SSE: only these events carry text (None: every event)
    end: EndSpec | None = None  # None: the end of the body (REST), of the call (gRPC)
    error: ErrorSpec | None = None
    prompt_tokens: Path | None = None
    completion_tokens: Path | None = None
    tokens: Path | None = None  # how many tokens one chunk carries
    chunked: bool = True  # AMQP: several reply messages (False: the first one is the whole reply)
    seq: Path | None = None  # AMQP: a counter from 0 on each reply message (gaps are protocol errors)


@dataclass(frozen=True, slots=True)
class HistoryShape:
    """How the messages of ``{history}`` are written: each as ``item`` (``{role}``, ``{content}``), roles renamed
    by ``roles`` (a role mapped to None is left out), and the history mode the API needs (None: either)."""

    item: Template
    roles: Mapping[str, str | None]
    mode: HistoryMode | None = None


@dataclass(frozen=True, slots=True)
class RestRequest:
    method: str
    path: Template  # placeholders URL-quoted
    path_text: str  # as written
    headers: tuple[tuple[str, Template], ...]
    body: Template | None
    reply: ReplySpec
    reply_whole: ReplySpec | None = None  # used when the run asks for whole replies (--no-stream)
    body_whole: Template | None = None  # the body of a --no-stream request, where it differs


@dataclass(frozen=True, slots=True)
class GrpcRequest:
    method: str  # "package.Service/Method"
    body: Template  # JSON form of the request message (protobuf's JSON mapping)
    metadata: tuple[tuple[str, Template], ...]
    reply: ReplySpec
    proto: FilePath | None = None  # a .proto file, compiled at start-up
    includes: tuple[FilePath, ...] = ()
    reflection: bool = False  # the server's reflection service describes the method instead

    @property
    def service(self) -> str:
        return self.method.partition("/")[0]

    @property
    def method_name(self) -> str:
        return self.method.partition("/")[2]

    @property
    def path(self) -> str:
        """The method path a channel calls: ``/package.Service/Method``."""
        return f"/{self.method}"


@dataclass(frozen=True, slots=True)
class AmqpRequest:
    routing_key: str  # with the default exchange: the request queue
    body: Template
    headers: tuple[tuple[str, Template], ...]
    reply: ReplySpec
    exchange: str = ""  # "": the default exchange


@dataclass(frozen=True, slots=True)
class Adapter:
    """One adapter file."""

    name: str
    source: str  # the file it came from
    protocol: Protocol
    history: HistoryShape
    rest: RestRequest | None = None
    grpc: GrpcRequest | None = None
    amqp: AmqpRequest | None = None
    description: str = ""

    @property
    def transport(self) -> str:
        return PROTOCOL_TRANSPORTS[self.protocol]

    def headers(self) -> tuple[tuple[str, Template], ...]:
        """The header (REST, AMQP) or metadata (gRPC) templates."""
        if self.rest is not None:
            return self.rest.headers
        if self.grpc is not None:
            return self.grpc.metadata
        assert self.amqp is not None
        return self.amqp.headers

    def names(self, *, headers: bool = True) -> frozenset[str]:
        """Every placeholder the adapter's templates use (``headers=False``: but its headers' or metadata's)."""
        parts: list[frozenset[str]] = [t.names for _, t in self.headers()] if headers else []
        if self.rest is not None:
            parts += [self.rest.path.names, *(t.names for t in (self.rest.body, self.rest.body_whole) if t)]
        if self.grpc is not None:
            parts.append(self.grpc.body.names)
        if self.amqp is not None:
            parts.append(self.amqp.body.names)
        return frozenset().union(*parts)

    def describe(self) -> str:
        """One line: ``ollama (rest, POST /api/chat, ndjson)``."""
        if self.rest is not None:
            what = f"{self.rest.method} {self.rest.path_text}, {self.rest.reply.format}"
        elif self.grpc is not None:
            source = "server reflection" if self.grpc.reflection or self.grpc.proto is None else self.grpc.proto.name
            what = f"{self.grpc.method} from {source}"
        else:
            assert self.amqp is not None
            exchange = f"exchange {self.amqp.exchange!r}, " if self.amqp.exchange else ""
            chunks = "chunked" if self.amqp.reply.chunked else "single"
            what = f"{exchange}routing key {self.amqp.routing_key!r}, {chunks} replies"
        return f"{self.name} ({self.protocol}, {what})"


__all__ = [
    "PROTOCOL_TRANSPORTS",
    "Adapter",
    "AmqpRequest",
    "EndSpec",
    "ErrorSpec",
    "Format",
    "GrpcRequest",
    "HistoryShape",
    "Protocol",
    "ReplySpec",
    "RestRequest",
]
