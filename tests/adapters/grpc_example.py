"""The service of ``scenarios/adapters/example_chat.proto`` on loopback: a gRPC chat API that is not ours.

``example.assistant.v1.Assistant`` over grpcio's sync server, its types compiled from the .proto at start-up (the
adapter's own :func:`loadgen.adapters.protos.compile_proto`), with server reflection on request. ``Ask`` answers
whole, ``AskStream`` a word at a time then a last message with the counts, both with the reference server's
responder (a question about an earlier message quotes it). A ``conversation_id`` makes it keep the history itself;
without one the ``context`` sent is the history. Metadata ``x-test-fault: overloaded`` ends a call with
RESOURCE_EXHAUSTED, ``slow`` waits 5 s first.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from google.protobuf import message_factory
from grpc_reflection.v1alpha import reflection

from loadgen.adapters.protos import compile_proto
from loadgen.server.responder import Responder
from loadgen.types import ChatMessage
from tests.adapters.rest_servers import words
from tests.conftest import REPO_ROOT

PROTO = REPO_ROOT / "scenarios" / "adapters" / "example_chat.proto"
SERVICE = "example.assistant.v1.Assistant"


class ExampleGrpcServer:
    def __init__(self, *, reflection_on: bool = True, token_delay_s: float = 0.001) -> None:
        protos = compile_proto(PROTO)
        self.types: dict[str, Any] = {
            name: message_factory.GetMessageClass(protos.pool.FindMessageTypeByName(f"example.assistant.v1.{name}"))
            for name in ("AskRequest", "AskReply", "AskDelta", "Counts")
        }
        self.token_delay_s = token_delay_s
        self.sessions: dict[str, list[ChatMessage]] = {}
        self.metadata: list[dict[str, str]] = []
        self.requests: list[Any] = []
        self._responder = Responder()
        request, reply, delta = self.types["AskRequest"], self.types["AskReply"], self.types["AskDelta"]
        handlers = {
            "Ask": grpc.unary_unary_rpc_method_handler(
                self._ask, request_deserializer=request.FromString, response_serializer=reply.SerializeToString
            ),
            "AskStream": grpc.unary_stream_rpc_method_handler(
                self._ask_stream, request_deserializer=request.FromString, response_serializer=delta.SerializeToString
            ),
        }
        # without SO_REUSEPORT: with it, a server bound to port 0 can be given the port of one already running
        # (grpc/grpc#10755), and the reflection tests would ask the wrong server
        self._server = grpc.server(ThreadPoolExecutor(max_workers=16), options=[("grpc.so_reuseport", 0)])
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        if reflection_on:
            reflection.enable_server_reflection((SERVICE, reflection.SERVICE_NAME), self._server, pool=protos.pool)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    @property
    def url(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.stop(grace=None).wait(5)

    def _turn(self, request: Any, context: grpc.ServicerContext) -> tuple[list[str], int]:
        metadata = {key: value for key, value in context.invocation_metadata() if isinstance(value, str)}
        self.metadata.append(metadata)
        self.requests.append(request)
        fault = metadata.get("x-test-fault")
        if fault == "overloaded":
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full")
        if fault == "slow":
            time.sleep(5)
        new = ChatMessage("user", request.prompt)
        if request.conversation_id:
            history = self.sessions.setdefault(request.conversation_id, [])
            history.append(new)
        else:
            history = [*(ChatMessage(u.speaker, u.text) for u in request.context), new]
        pieces = words(self._responder.reply(history, request.max_output_tokens or 64))
        pieces = pieces[: request.max_output_tokens or 64]
        if request.conversation_id:
            history.append(ChatMessage("assistant", "".join(pieces)))
        return pieces, sum(len(words(m.content)) for m in history)

    def _counts(self, prompt: int, output: int) -> Any:
        return self.types["Counts"](input_tokens=prompt, output_tokens=output)

    def _ask(self, request: Any, context: grpc.ServicerContext) -> Any:
        pieces, prompt = self._turn(request, context)
        return self.types["AskReply"](answer="".join(pieces), counts=self._counts(prompt, len(pieces)))

    def _ask_stream(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        pieces, prompt = self._turn(request, context)
        delta = self.types["AskDelta"]
        for piece in pieces:
            time.sleep(self.token_delay_s)
            yield delta(piece=piece)
        yield delta(last=True, counts=self._counts(prompt, len(pieces)))
