"""The contract between the reference server and its fronts (REST, gRPC, AMQP).

A front is a thin adapter over the wire contract of its protocol (:mod:`loadgen.wire`) and the chat service: it
decodes a request into a :class:`loadgen.types.ChatRequest` with the wire module, reads the API key with
:func:`loadgen.wire.auth.parse_bearer`, calls ``await service.chat(request)`` (a
:class:`loadgen.server.service.ChatService`), and streams the returned :class:`loadgen.server.service.ChatStream`
back with the wire module's encoders: one wire message per :class:`TokenChunk`, usage at the end.

Errors: :func:`loadgen.server.service.failure_of` names what went wrong as a :class:`~loadgen.wire.status.Failure`,
and the front answers with that row of the status table (:mod:`loadgen.wire.status`), before the reply or in the
middle of it:

- a wrong or missing API key (when ``config.api_key`` is set) -> UNAUTHORIZED: HTTP 401 / UNAUTHENTICATED /
  ``unauthorized``;
- :class:`loadgen.server.service.BadChatRequest`, or a request that breaks the wire format
  (:class:`loadgen.errors.WireError`) -> BAD_REQUEST: HTTP 400 / INVALID_ARGUMENT / ``bad_request``;
- :class:`loadgen.server.engines.base.EngineOverloaded` -> OVERLOADED: HTTP 429 / RESOURCE_EXHAUSTED / ``overloaded``;
- :class:`loadgen.server.engines.base.EngineRequestError` once the reply has started (the service turns one at
  admission into a bad request): the engine stopped or failed mid-reply -> ENGINE_STOPPED: HTTP 500 / ABORTED /
  ``engine_stopped``;
- anything else -> INTERNAL (logged with its traceback): HTTP 500 / INTERNAL / ``internal``.

The message of the answer is :func:`loadgen.server.service.failure_message`: the exception's text, or the row's
meaning when it has none; :func:`loadgen.server.service.is_bug` says which failures a front logs with their
traceback (INTERNAL ones, but not those an ``error P%`` fault injected on purpose).
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
        """Stop accepting, let in-flight replies end (briefly), release ports, queues and consumers. Also when the
        front is down (``down`` fault): then it only releases what it still holds."""

    @abc.abstractmethod
    async def go_down(self) -> None:
        """The ``down`` fault: refuse new requests and cut the ones in flight, at once (no grace): close the
        listener and every open connection, or cancel the consumer. The front keeps what it needs to come back."""

    @abc.abstractmethod
    async def come_up(self) -> None:
        """The end of a ``down`` fault: accept requests again where it did before (the same port, the same
        queue)."""
