"""REST adapter transport (``adapter-rest``): any HTTP chat API an adapter file describes (:mod:`loadgen.adapters`).

The REST transport (:class:`~loadgen.transports.rest.RestTransport`) with the adapter's request and reply in place of
OpenAI's: its client (one per user, the process's shared SSL context), its timing, its whole-turn deadline on every
piece of the body, its error table (:mod:`loadgen.transports.httpx_errors`) and its reading of error statuses (the
status table: 429 and 503 are :class:`~loadgen.errors.Overloaded`, any other error status a
:class:`~loadgen.errors.ServerError`) are the same. What changes:

- the request: method, URL (the target + the adapter's path, placeholders URL-quoted), headers and body rendered
  from the adapter's templates for each turn; no ``Authorization`` header unless the adapter writes one (the key
  goes where the adapter's ``{api_key}`` says, and never into a reason);
- the reply: read as the adapter's ``reply.format`` says whatever the content type (:mod:`loadgen.adapters.decode`),
  each piece stamped the moment it came out of the connection, before any decoding; ``t_done`` at the end marker,
  or the end of the body where the adapter marks none (a body that ends before its marker is a
  :class:`~loadgen.errors.ProtocolError`, "stream ended early").
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import ClassVar

import httpx
import orjson

from loadgen.adapters.decode import ReplyCollector, end_name, loads, stream_reader
from loadgen.adapters.request import TurnWriter
from loadgen.adapters.run import adapter_of
from loadgen.adapters.spec import Format, Protocol, ReplySpec, RestRequest
from loadgen.errors import ProtocolError
from loadgen.transports.base import TransportConfig
from loadgen.transports.httpx_errors import READ_FAILURES
from loadgen.transports.rest import RestTransport
from loadgen.types import ChatRequest, Reply
from loadgen.wire import sse
from loadgen.wire.auth import AUTH_HEADER
from loadgen.wire.openai import JSON_CONTENT_TYPE

#: What a request of each reply format accepts.
ACCEPT = {
    Format.JSON: JSON_CONTENT_TYPE,
    Format.SSE: sse.CONTENT_TYPE,
    Format.NDJSON: "application/x-ndjson, application/json",
    Format.TEXT: "text/plain, */*",
}


class AdapterRestTransport(RestTransport):
    """An HTTP chat API as an adapter file describes it."""

    name: ClassVar[str] = "adapter-rest"
    schemes: ClassVar[tuple[str, ...]] = ("http", "https")

    def __init__(self, config: TransportConfig, *, transport: httpx.BaseTransport | None = None) -> None:
        adapter = adapter_of(config, Protocol.REST)
        assert adapter.rest is not None
        self._spec: RestRequest = adapter.rest
        self._writer = TurnWriter(adapter, config.api_key, config.model or None)
        super().__init__(config, transport=transport)
        self._client.headers.pop(AUTH_HEADER, None)  # the adapter's headers say where a key goes
        self._base = config.target.rstrip("/")
        self._reply: ReplySpec = self._spec.reply

    def secrets(self) -> tuple[str | None, ...]:
        return (self.config.api_key, *self._writer.secrets.values())

    def _build_request(self, request: ChatRequest, turn_timeout: float) -> httpx.Request:
        spec = self._spec
        self._reply = spec.reply_whole if spec.reply_whole is not None and not request.stream else spec.reply
        values = self._writer.values(request)
        headers = self._writer.header_values(values)
        template = spec.body_whole if spec.body_whole is not None and not request.stream else spec.body
        content: bytes | None = None
        if template is not None:
            body = template.render(values)
            if isinstance(body, str):
                content = body.encode()
                headers.setdefault("content-type", "text/plain; charset=utf-8")
            else:
                content = orjson.dumps(body)
                headers.setdefault("content-type", JSON_CONTENT_TYPE)
        headers.setdefault("accept", ACCEPT[self._reply.format])
        return self._client.build_request(
            spec.method,
            self._base + spec.path.render_text(values),
            content=content,
            headers=headers,
            timeout=httpx.Timeout(turn_timeout, connect=min(self.config.connect_timeout_s, turn_timeout)),
        )

    def _unstreamed(self, response: httpx.Response, content_type: str, t_sent: float, t_first_byte: float) -> Reply:
        """Not an OpenAI stream by its content type: the adapter's ``reply.format`` says how to read the body,
        whatever the content type (NDJSON, plain chunked text and JSON streams all end up here)."""
        return self._read_whole(response, t_sent, t_first_byte)

    def _read_whole(self, response: httpx.Response, t_sent: float, t_first_byte: float) -> Reply:
        if self._reply.format is not Format.JSON:
            return self._read_pieces(response.iter_bytes(), t_sent, t_first_byte)
        return self._whole_body(response.read(), t_sent, t_first_byte)

    def _read_stream(self, pieces: Iterable[bytes], t_sent: float, t_first_byte: float) -> Reply:
        if self._reply.format is Format.JSON:
            return self._whole_body(b"".join(pieces), t_sent, t_first_byte)
        return self._read_pieces(pieces, t_sent, t_first_byte)

    def _whole_body(self, body: bytes, t_sent: float, t_first_byte: float) -> Reply:
        t_done = time.perf_counter()
        value = loads(body, "JSON reply")
        return ReplyCollector(self._reply).whole(value, t_sent=t_sent, t_first_byte=t_first_byte, t_done=t_done)

    def _read_pieces(self, pieces: Iterable[bytes], t_sent: float, t_first_byte: float) -> Reply:
        reader = stream_reader(self._reply)
        t_done: float | None = None
        perf_counter = time.perf_counter
        try:
            for piece in pieces:
                now = perf_counter()
                if t_done is not None:
                    continue  # after the end: read to the end so that the connection can be reused
                if reader.feed(piece, now):
                    t_done = now
        except READ_FAILURES:
            if t_done is None:
                raise
            # the reply was complete at its end marker; only the tail of the body failed
        if t_done is None:
            t_done = perf_counter()
            reader.finish(t_done)
            if self._reply.end is not None and not reader.collector.ended:
                raise ProtocolError(f"stream ended early: the body ended before {end_name(self._reply)}")
        return reader.collector.reply(t_sent=t_sent, t_first_byte=t_first_byte, t_done=t_done)


__all__ = ["ACCEPT", "AdapterRestTransport"]
