"""AMQP adapter transport (``adapter-amqp``): request/reply in any JSON an adapter file describes
(:mod:`loadgen.adapters`).

The AMQP transport (:class:`~loadgen.transports.amqp.AmqpTransport`) with the adapter's messages in place of ours:
its connection (one per process and broker, made on the first turn, reconnecting by itself), its exclusive reply
queue and correlation ids (the service answers on the request's ``reply_to`` with its ``correlation_id``: the RPC
pattern every AMQP request/reply service follows), ``mandatory`` publishing (nothing bound: a
:class:`~loadgen.errors.Unroutable` at once), the turn's ``expiration`` and timeout, and the timing (each reply
message stamped the moment it reaches the consumer, before its JSON is decoded) are the same. What changes:

- the request goes to the adapter's ``exchange`` (default: the default exchange) with its ``routing_key`` (a
  ``?queue=`` in the target wins), the body and headers rendered from its templates;
- each reply message is read where the adapter points (:class:`~loadgen.adapters.decode.ReplyCollector`): text,
  usage, an error field (its code mapped as the status table says), an optional ``seq`` counter (a gap or repeat
  is a :class:`~loadgen.errors.ProtocolError`); with ``chunked: false`` the first message is the whole reply,
  else the message whose ``end`` field is set is the last.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from functools import partial
from typing import Any, ClassVar

import orjson

from loadgen.adapters.decode import ReplyCollector, loads
from loadgen.adapters.paths import MISSING
from loadgen.adapters.request import TurnWriter
from loadgen.adapters.run import adapter_of
from loadgen.adapters.spec import AmqpRequest, Protocol, ReplySpec
from loadgen.errors import ProtocolError, TransportError
from loadgen.transports.amqp import AmqpTransport
from loadgen.transports.amqp_client import Turn
from loadgen.transports.base import TransportConfig
from loadgen.types import ChatRequest, Reply


class AdapterTurn(Turn):
    """The replies of one request, read as the adapter says (loop thread only)."""

    __slots__ = ("collector", "spec")

    def __init__(self, spec: ReplySpec, stream: bool, done: asyncio.Future[None]) -> None:
        super().__init__(stream, done)
        self.spec = spec
        self.collector = ReplyCollector(spec)

    def feed(self, at: float, body: bytes) -> None:
        if self.done.done():
            return  # a message after the end (or after a failure): ignored
        if self.t_first_byte is None:
            self.t_first_byte = at
        try:
            value = loads(body, "reply message")
            self._check_seq(value)
            ended = self.collector.take(value, at, prefix="error reply")
        except TransportError as exc:
            self.fail(exc)
            return
        if ended or not self.spec.chunked:
            self.done.set_result(None)

    def _check_seq(self, value: Any) -> None:
        if self.spec.seq is None:
            return
        seq = self.spec.seq.find(value)
        if seq is MISSING or type(seq) is not int:
            raise ProtocolError(f"reply message without an integer `{self.spec.seq}`")
        if seq != self.next_seq:
            raise ProtocolError(f"reply stream broken: message {seq} came where {self.next_seq} was due")
        self.next_seq += 1

    def reply(self, t_sent: float, t_done: float) -> Reply:
        return self.collector.reply(t_sent=t_sent, t_first_byte=self.t_first_byte, t_done=t_done)


class AdapterAmqpTransport(AmqpTransport):
    """AMQP request/reply in the messages an adapter file describes."""

    name: ClassVar[str] = "adapter-amqp"
    schemes: ClassVar[tuple[str, ...]] = ("amqp", "amqps")

    def __init__(self, config: TransportConfig) -> None:
        adapter = adapter_of(config, Protocol.AMQP)
        assert adapter.amqp is not None
        super().__init__(config)
        self._spec: AmqpRequest = adapter.amqp
        self._writer = TurnWriter(adapter, config.api_key, config.model or None)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(config.target).query)
        self._routing_key = self._target.queue if "queue" in query else self._spec.routing_key
        self._new_turn = partial(AdapterTurn, self._spec.reply)

    def secrets(self) -> tuple[str | None, ...]:
        return (*super().secrets(), *self._writer.secrets.values())

    def _request(self, request: ChatRequest) -> tuple[bytes, dict[str, Any]]:
        values = self._writer.values(request)
        return orjson.dumps(self._spec.body.render(values)), {
            "stream": request.stream,
            "queue": self._routing_key,
            "headers": self._writer.header_values(values),
            "exchange": self._spec.exchange,
            "new_turn": self._new_turn,
        }


__all__ = ["AdapterAmqpTransport", "AdapterTurn"]
