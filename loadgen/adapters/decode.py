"""Reading a reply the way an adapter says: pieces of text with their arrival times, token counts, usage, the end,
and the errors a reply reports. No I/O: transports feed what they read and stamp it.

:class:`ReplyCollector` takes decoded JSON values (an NDJSON line, the data of an SSE event, an AMQP message, a
whole JSON body) and keeps what :class:`~loadgen.adapters.spec.ReplySpec` points at. :func:`stream_reader` gives
the reader of a REST body format (``ndjson``, ``sse``, ``text``): ``feed(piece, at)`` with the bytes as they came
and the ``time.perf_counter()`` the transport took when they did, before any parsing. An NDJSON line is stamped
with the time of the piece that completed it, an SSE event with the time of the piece that completed its first
line (as the built-in REST transport stamps OpenAI's events): when its text could first be read.

Metrics mean what they mean for every transport: the first piece with non-empty text is the first token (TTFT),
each later piece one inter-token gap spread over the tokens it carried (its ``tokens`` count, else usage's count
spread evenly, else one each: :mod:`loadgen.transports.replies`).

Failures (:mod:`loadgen.errors`):

- a line or event data that is not JSON, a text field that holds something other than text, a stream that ends
  before its end marker, replies in which no chunk ever had the text field: :class:`ProtocolError` naming it;
- an error the reply reports (``error.field`` present and not null, or an ``error.event``): the kind its code has
  in ``error.kinds``, else in the status table (:mod:`loadgen.wire.status`: a number is an HTTP status, a text one
  of the table's codes such as ``overloaded`` or ``invalid_request_error``), else :class:`ServerError`.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from typing import Any, Final, Protocol

import orjson

from loadgen.adapters.paths import MISSING
from loadgen.adapters.spec import ErrorSpec, Format, ReplySpec
from loadgen.errors import ProtocolError, ServerError
from loadgen.transports.replies import even_token_counts, streamed_reply, whole_reply
from loadgen.types import Reply, Usage
from loadgen.wire.sse import LineSplitter, SSEEvent, SSEParser
from loadgen.wire.status import STATUS, http_kind
from loadgen.wire.text import short

#: Error codes given as text, as the status table names them (the AMQP codes and the OpenAI error types).
TEXT_KINDS: Final[dict[str, type[ServerError]]] = {
    **{row.http_type: row.kind for row in STATUS.values()},
    **{row.amqp: row.kind for row in STATUS.values()},
}


def error_kind(spec: ErrorSpec, code: Any) -> type[ServerError]:
    """The failure kind of an error code a reply gave (see the module doc)."""
    if code is MISSING or code is None or isinstance(code, bool):
        return ServerError
    key = str(code)
    if key in spec.kinds:
        return STATUS[spec.kinds[key]].kind
    if isinstance(code, int) or key.strip().isdigit():
        return http_kind(key)
    return TEXT_KINDS.get(key, ServerError)


def reported_error(spec: ErrorSpec, value: Any, message: Any, *, prefix: str) -> ServerError:
    """The failure for an error a reply reported: ``value`` is the decoded object (for the code), ``message``
    what stands for its message."""
    code = spec.code.find(value) if spec.code is not None else MISSING
    text = message if isinstance(message, str) else orjson.dumps(message).decode()
    return error_kind(spec, code)(f"{prefix}: {short(text) or '(no message)'}", code=None if code is MISSING else code)


def loads(data: bytes | str, what: str) -> Any:
    """A JSON value, or :class:`ProtocolError` naming ``what`` was malformed."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        shown = data if isinstance(data, str) else data.decode("utf-8", errors="replace")
        raise ProtocolError(f"malformed {what}: {short(shown, 80)!r} is not JSON") from None


def _count(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None


class ReplyCollector:
    """One reply, from the values it came in."""

    __slots__ = ("_candidates", "_completion", "_prompt", "_spec", "_text_seen", "ended", "parts", "times", "tokens")

    def __init__(self, spec: ReplySpec) -> None:
        self._spec = spec
        self.parts: list[str] = []
        self.times: list[float] = []
        self.tokens: list[float] = []
        self._prompt: int | None = None
        self._completion: int | None = None
        self._candidates = 0  # values that could have carried text
        self._text_seen = False
        self.ended = False

    def take(self, value: Any, at: float, *, carries_text: bool = True, prefix: str = "stream error") -> bool:
        """One decoded value that arrived at ``at``; True once the end marker has come."""
        spec = self._spec
        error = spec.error
        if error is not None and error.field is not None:
            message = error.field.find(value)
            if message is not MISSING and message is not None:
                raise reported_error(error, value, message, prefix=prefix)
        if spec.prompt_tokens is not None or spec.completion_tokens is not None:
            self._usage(value)
        if carries_text:
            self._candidates += 1
            text = self._text(value)
            if text:
                self.add(text, at)
                if spec.tokens is not None:
                    self.tokens.append(float(_count(spec.tokens.find(value)) or 0))
        end = spec.end
        if end is not None and end.field is not None:
            mark = end.field.find(value)
            if mark is not MISSING and mark is not None and mark is not False and mark != "":
                self.ended = True
        return self.ended

    def add(self, text: str, at: float) -> None:
        """A piece of text that came at ``at`` (plain text replies)."""
        self.parts.append(text)
        self.times.append(at)

    def _text(self, value: Any) -> str:
        path = self._spec.text
        assert path is not None
        found = path.find(value)
        if found is MISSING or found is None:
            return ""
        if type(found) is str:
            self._text_seen = True
            return found
        if type(found) is list and path.many:
            texts = [item for item in found if type(item) is str]
            # nothing found is a reply with no text (a bot that said nothing) only if the list it walks is there
            self._text_seen = self._text_seen or bool(texts) or (not found and type(path.head().find(value)) is list)
            return self._spec.join.join(texts)
        raise ProtocolError(f"reply field `{path}` holds {type(found).__name__}, not text")

    def _usage(self, value: Any) -> None:
        spec = self._spec
        if spec.prompt_tokens is not None:
            prompt = _count(spec.prompt_tokens.find(value))
            self._prompt = self._prompt if prompt is None else prompt
        if spec.completion_tokens is not None:
            completion = _count(spec.completion_tokens.find(value))
            self._completion = self._completion if completion is None else completion

    def usage(self) -> Usage | None:
        """The reply's usage, when both its counts are known (a completion count alone is spread over the chunks
        instead: a prompt count of 0 would be a false figure)."""
        if self._completion is None or self._prompt is None:
            return None
        return Usage(prompt_tokens=self._prompt, completion_tokens=self._completion)

    def _counts(self) -> list[float] | None:
        """Each chunk's token count (None: none known, one each)."""
        if self._spec.tokens is not None:
            return self.tokens
        if self._completion is not None and self._prompt is None:
            return even_token_counts(len(self.times), Usage(0, self._completion))
        return None

    def _check_text_seen(self) -> None:
        if self._candidates and not self._text_seen:
            raise ProtocolError(f"no part of the reply had the text field `{self._spec.text}`")

    def reply(self, *, t_sent: float, t_first_byte: float | None, t_done: float) -> Reply:
        """The streamed reply so far (its end has come, or the stream ended where none is marked)."""
        self._check_text_seen()
        return streamed_reply(self.parts, self.times, self._counts(), self.usage(), t_sent=t_sent,
                              t_first_byte=t_first_byte, t_done=t_done)  # fmt: skip

    def whole(self, value: Any, *, t_sent: float, t_first_byte: float | None, t_done: float) -> Reply:
        """The reply of one JSON document that came whole at ``t_done``."""
        self.take(value, t_done, carries_text=False, prefix="error in reply")
        self._candidates += 1
        text = self._text(value)
        self._check_text_seen()
        reply = whole_reply(text, self.usage(), t_sent=t_sent, t_first_byte=t_first_byte, t_done=t_done)
        if reply.usage is None and self._completion and reply.chunk_tokens:
            reply.chunk_tokens[0] = float(self._completion)
        return reply


class StreamReader(Protocol):
    """Reads one REST body format: ``feed`` the pieces as they came (True once the end marker has come)."""

    collector: ReplyCollector

    def feed(self, piece: bytes, at: float) -> bool: ...

    def finish(self, at: float) -> None: ...


class NdjsonReader:
    """One JSON value per line."""

    __slots__ = ("_lines", "collector")

    def __init__(self, collector: ReplyCollector) -> None:
        self.collector = collector
        self._lines = LineSplitter()

    def feed(self, piece: bytes, at: float) -> bool:
        for line in self._lines.feed(piece):
            if line.strip() and self.collector.take(loads(line, "NDJSON line"), at):
                return True
        return False

    def finish(self, at: float) -> None:
        self.feed(b"\n", at)  # a last line without its line end


class SseReader:
    """Server-Sent Events; each event's data a JSON value (see the adapter's ``events``, ``end`` and ``error``)."""

    __slots__ = ("_event_at", "_lines", "_parser", "_spec", "collector")

    def __init__(self, collector: ReplyCollector, spec: ReplySpec) -> None:
        self.collector = collector
        self._spec = spec
        self._lines = LineSplitter()
        self._parser = SSEParser()
        self._event_at: float | None = None

    def feed(self, piece: bytes, at: float) -> bool:
        for line in self._lines.feed(piece):
            if line:
                if self._event_at is None and not line.startswith(b":"):
                    self._event_at = at
                self._parser.feed_line(line.decode("utf-8", errors="replace"))
                continue
            event = self._parser.feed_line("")
            event_at = self._event_at if self._event_at is not None else at
            self._event_at = None
            if event is not None and self._event(event, event_at):
                return True
        return False

    def _event(self, event: SSEEvent, at: float) -> bool:
        spec = self._spec
        end, error = spec.end, spec.error
        if end is not None and (event.event == end.event or (end.data is not None and event.data.strip() == end.data)):
            self.collector.ended = True
            return True
        if error is not None and error.event is not None and event.event == error.event:
            raise self._error(error, event.data)
        if spec.events is None or event.event in spec.events:
            return self.collector.take(loads(event.data, f"data of event {event.event!r}"), at)
        try:
            value = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return False  # an event that carries no text need not be JSON
        return self.collector.take(value, at, carries_text=False)

    @staticmethod
    def _error(error: ErrorSpec, data: str) -> ServerError:
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            value = data
        found = error.field.find(value) if error.field is not None else MISSING
        return reported_error(error, value, data if found is MISSING or found is None else found, prefix="stream error")

    def finish(self, at: float) -> None:
        return None  # an unfinished event at the end is dropped, as the event-stream rules say


class TextReader:
    """Plain text, as it comes (UTF-8, a character split across pieces kept whole)."""

    __slots__ = ("_decoder", "collector")

    def __init__(self, collector: ReplyCollector) -> None:
        self.collector = collector
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, piece: bytes, at: float) -> bool:
        text = self._decoder.decode(piece)
        if text:
            self.collector.add(text, at)
        return False

    def finish(self, at: float) -> None:
        text = self._decoder.decode(b"", final=True)
        if text:
            self.collector.add(text, at)


_READERS: Final[dict[Format, Callable[[ReplyCollector, ReplySpec], StreamReader]]] = {
    Format.NDJSON: lambda collector, _: NdjsonReader(collector),
    Format.SSE: SseReader,
    Format.TEXT: lambda collector, _: TextReader(collector),
}


def stream_reader(spec: ReplySpec) -> StreamReader:
    """The reader of a streamed body format (``json`` is read whole: :meth:`ReplyCollector.whole`)."""
    return _READERS[spec.format](ReplyCollector(spec), spec)


def end_name(spec: ReplySpec) -> str:
    """How the end marker is named in a reason."""
    end = spec.end
    if end is None:
        return "the end of the body"
    if end.field is not None:
        return f"the field `{end.field}`"
    return f"the event {end.event!r}" if end.event is not None else f"the data {end.data!r}"


__all__ = [
    "TEXT_KINDS",
    "NdjsonReader",
    "ReplyCollector",
    "SseReader",
    "StreamReader",
    "TextReader",
    "end_name",
    "error_kind",
    "loads",
    "reported_error",
    "stream_reader",
]
