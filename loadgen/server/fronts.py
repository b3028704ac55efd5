"""The contract between the reference server and its fronts (REST, gRPC, AMQP).

A front translates its wire format into a :class:`loadgen.types.ChatRequest`, calls
``await service.chat(request)`` (a :class:`loadgen.server.service.ChatService`), and streams the returned
:class:`loadgen.server.service.ChatStream` back: one wire message per :class:`TokenChunk`, usage at the end.

Error mapping every front follows:
- :class:`loadgen.server.engines.base.EngineOverloaded` -> HTTP 429 / gRPC RESOURCE_EXHAUSTED / AMQP error reply
- :class:`loadgen.server.service.BadChatRequest` -> HTTP 400 / gRPC INVALID_ARGUMENT / AMQP error reply
- a wrong or missing API key (when ``config.api_key`` is set) -> HTTP 401 / gRPC UNAUTHENTICATED / AMQP error reply
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from loadgen.server.config import ServerConfig
    from loadgen.server.service import ChatService

#: ``loadgen serve`` prints this prefix followed by a JSON object {front name: client URL} on one stdout line
#: once every front accepts connections. The embedded launcher waits for it.
READY_PREFIX = "loadgen-ready "


class Front(abc.ABC):
    name: ClassVar[str]

    def __init__(self, service: ChatService, config: ServerConfig) -> None:
        self.service = service
        self.config = config

    @abc.abstractmethod
    async def start(self) -> str:
        """Start accepting requests; return the URL a client uses (e.g. ``http://127.0.0.1:41234``,
        ``grpc://127.0.0.1:41235``, ``amqp://guest:guest@127.0.0.1:5672/?queue=NAME``)."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop accepting, let in-flight replies end (briefly), release ports, queues and consumers."""
