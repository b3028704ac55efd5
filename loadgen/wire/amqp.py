"""The AMQP wire format of chat-loadgen, shared by the client transport and the reference server's front (no I/O).

Request/reply over RabbitMQ (the pattern of ``aio_pika/patterns/rpc.py``):

- The client publishes ONE request message to the default exchange with the request queue's name as routing
  key (``mandatory`` so that a queue nobody declared fails at once), with the AMQP properties
  ``correlation_id`` (unique per turn), ``reply_to`` (the client's exclusive reply queue), ``expiration`` (the
  turn's timeout, in ms: an unserved request dies in the queue), ``content_type`` ``application/json``,
  ``type`` :data:`REQUEST_TYPE`, and headers :data:`SENT_AT_HEADER` (the client's wall clock when it published,
  epoch ms, so a server can tell a request that expired while prefetched) and, with an API key,
  :data:`AUTH_HEADER` = ``"Bearer <key>"`` (:mod:`loadgen.wire.auth`: the rule of every transport). Body::

      {"v": 1, "model": "loadgen-sim", "messages": [{"role": "user", "content": "Hi"}],
       "max_tokens": 64, "stream": true, "session_id": null}

  ``messages`` is the whole conversation (client history) or only the new message with a ``session_id``
  (server history); ``max_tokens`` 0 means the server's default; ``model`` may be left out.

- The server answers on ``reply_to`` through the default exchange, each message with the request's
  ``correlation_id`` and ``type`` :data:`CHUNK_TYPE`. Streaming: one message per token chunk, ``seq`` counting
  from 0 with no gaps, the last one with ``final: true``, ``finish_reason`` and ``usage`` (its ``text`` may be
  empty). Not streaming: a single ``final`` message with the whole text. Body::

      {"seq": 0, "text": "Hel", "tokens": 1, "final": false}
      {"seq": 7, "text": "", "tokens": 0, "final": true, "finish_reason": "stop",
       "usage": {"prompt_tokens": 12, "completion_tokens": 7}}

  A streamed message may carry SEVERAL token chunks, those the server had ready at the same moment (the reference
  server's ``--amqp-coalesce ready``, its default: while it was publishing one message the engine produced the
  next ones): then ``text`` and ``tokens`` are lists of the same length, one entry per chunk, in order::

      {"seq": 3, "text": ["lo", " wor", "ld"], "tokens": [1, 1, 1], "final": false}

  A reader takes it as that many chunks that arrived together (each stamped with the message's arrival, as REST
  stamps the SSE events of one read), so token counts stay exact and chunk boundaries are kept. A message with a
  string ``text`` (and an integer ``tokens``) is one chunk, as before: readers decode both forms. A chunk that
  waited (a paced stream's next token) is never held back for another: it goes out alone, at once.

- When the server did not hold the session the request named (:mod:`loadgen.wire.session`), its FIRST reply
  message carries ``"session": "new"`` (an error reply too, when it is the first).

- A failure is a ``final`` message carrying ``error`` (``code`` one of :data:`ERROR_CODES`, the AMQP column of
  :mod:`loadgen.wire.status`, and a human ``message``), sent in place of the next chunk, e.g.
  ``{"seq": 0, "final": true, "error": {"code": "overloaded", "message": "engine queue full"}}``.

Chunk timing on the client is taken when a message reaches its consumer, before this module decodes it. Also
here, for both sides: the broker URL helpers (the ``?queue=`` parameter, ``reconnect_interval``, ``host:port``).
The broker connection itself (a failed connection in words, quiet library logs, one line per change of state) is
:mod:`loadgen.wire.amqp_link`.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any, Final

import orjson

from loadgen.errors import WireError
from loadgen.types import ChatMessage, ChatRequest, Usage
from loadgen.wire.amqp_link import RECONNECT_INTERVAL_S
from loadgen.wire.auth import AUTH_HEADER
from loadgen.wire.session import SESSION_NEW, SESSION_STATE_FIELD
from loadgen.wire.status import AMQP_CODES, STATUS, Failure

#: The version this module writes (``"v"`` of a request); a reader accepts a request without one as version 1.
WIRE_VERSION: Final = 1
DEFAULT_QUEUE: Final = "loadgen.chat.requests"
CONTENT_TYPE: Final = "application/json"
REQUEST_TYPE: Final = "loadgen.chat.request"
CHUNK_TYPE: Final = "loadgen.chat.chunk"
#: Request header: the client's ``time.time()`` in integer ms when it published (with ``expiration``, the
#: server can skip a request whose client has given up).
SENT_AT_HEADER: Final = "x-loadgen-sent-at-ms"

#: Error codes a server may reply with (the AMQP column of :data:`loadgen.wire.status.STATUS`).
BAD_REQUEST: Final = STATUS[Failure.BAD_REQUEST].amqp
UNAUTHORIZED: Final = STATUS[Failure.UNAUTHORIZED].amqp
OVERLOADED: Final = STATUS[Failure.OVERLOADED].amqp
ENGINE_STOPPED: Final = STATUS[Failure.ENGINE_STOPPED].amqp
INTERNAL: Final = STATUS[Failure.INTERNAL].amqp
ERROR_CODES: Final = AMQP_CODES

#: AMQP short strings (queue names) are at most 255 bytes.
MAX_QUEUE_NAME_BYTES: Final = 255
#: The broker's port when a URL names none.
DEFAULT_PORTS: Final = {"amqp": 5672, "amqps": 5671}


# ---------------------------------------------------------------------------------------------------------------
# requests


def encode_request(request: ChatRequest, *, model: str | None = None) -> bytes:
    """The request body for ``request`` (``model`` overrides ``request.model``)."""
    body = {
        "v": WIRE_VERSION,
        "model": model or request.model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "max_tokens": max(0, request.max_tokens),
        "stream": request.stream,
        "session_id": request.session_id,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def decode_request(body: bytes, *, default_max_tokens: int = 64) -> ChatRequest:
    """The :class:`ChatRequest` of a request body; :class:`WireError` names the first problem."""
    data = _json_object(body, "request")
    version = data.get("v", WIRE_VERSION)
    if version != WIRE_VERSION:
        raise WireError(f"unsupported request version {version!r} (this server speaks {WIRE_VERSION})")
    raw_messages = data.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise WireError("'messages' must be a non-empty list of {role, content} objects")
    messages: list[ChatMessage] = []
    for i, item in enumerate(raw_messages):
        if not isinstance(item, dict):
            raise WireError(f"messages[{i}] must be an object with 'role' and 'content'")
        role, content = item.get("role"), item.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
            raise WireError(f"messages[{i}] needs string 'role' and 'content'")
        messages.append(ChatMessage(role=role, content=content))
    max_tokens = data.get("max_tokens", 0)
    if max_tokens is None:
        max_tokens = 0
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
        raise WireError(f"'max_tokens' must be a non-negative integer, got {max_tokens!r}")
    stream = data.get("stream", True)
    if not isinstance(stream, bool):
        raise WireError(f"'stream' must be true or false, got {stream!r}")
    session_id = data.get("session_id")
    if session_id is not None and not isinstance(session_id, str):
        raise WireError("'session_id' must be a string or null")
    kwargs: dict[str, Any] = {}
    model = data.get("model")
    if model is not None:
        if not isinstance(model, str):
            raise WireError("'model' must be a string")
        if model:
            kwargs["model"] = model
    return ChatRequest(
        messages=tuple(messages),
        max_tokens=max_tokens or default_max_tokens,
        stream=stream,
        session_id=session_id or None,
        **kwargs,
    )


# ---------------------------------------------------------------------------------------------------------------
# replies


@dataclass(frozen=True, slots=True)
class ErrorBody:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Chunk:
    """One reply message."""

    seq: int
    text: str = ""  # all of it: the parts' texts joined, when the message carries several chunks
    tokens: int = 0  # all of them: the parts' counts summed, when the message carries several chunks
    final: bool = False
    finish_reason: str | None = None
    usage: Usage | None = None
    error: ErrorBody | None = None
    session: str | None = None  # SESSION_NEW on the first reply of a new session
    #: The chunks of a message that carries several, ``(text, tokens)`` each, in order; empty for one chunk.
    parts: tuple[tuple[str, int], ...] = ()

    @property
    def session_new(self) -> bool:
        return self.session == SESSION_NEW


def several(seq: int, parts: list[tuple[str, int]]) -> Chunk:
    """The streamed message carrying the token chunks ``parts`` (``(text, tokens)`` each): one chunk of the old
    form when there is one, else a message of several (module docs)."""
    if len(parts) == 1:
        text, tokens = parts[0]
        return Chunk(seq=seq, text=text, tokens=tokens)
    return Chunk(
        seq=seq,
        text="".join(text for text, _ in parts),
        tokens=sum(tokens for _, tokens in parts),
        parts=tuple(parts),
    )


def encode_chunk(chunk: Chunk) -> bytes:
    body: dict[str, Any] = {"seq": chunk.seq}
    if chunk.parts:
        body["text"] = [text for text, _ in chunk.parts]
        body["tokens"] = [tokens for _, tokens in chunk.parts]
    else:
        if chunk.text or not chunk.final:
            body["text"] = chunk.text
        if chunk.tokens:
            body["tokens"] = chunk.tokens
    body["final"] = chunk.final
    if chunk.finish_reason is not None:
        body["finish_reason"] = chunk.finish_reason
    if chunk.usage is not None:
        body["usage"] = {
            "prompt_tokens": chunk.usage.prompt_tokens,
            "completion_tokens": chunk.usage.completion_tokens,
        }
    if chunk.error is not None:
        body["error"] = {"code": chunk.error.code, "message": chunk.error.message}
    if chunk.session is not None:
        body[SESSION_STATE_FIELD] = chunk.session
    return orjson.dumps(body)  # compact UTF-8, as json.dumps(ensure_ascii=False, separators=(",", ":")) writes


def error_chunk(seq: int, code: str, message: str) -> Chunk:
    return Chunk(seq=seq, final=True, error=ErrorBody(code=code, message=message))


def failure_chunk(seq: int, failure: Failure, message: str) -> Chunk:
    """The error reply a front answers ``failure`` with."""
    return error_chunk(seq, STATUS[failure].amqp, message)


def decode_chunk(body: bytes) -> Chunk:
    """The :class:`Chunk` of a reply body; :class:`WireError` names the first problem."""
    data = _json_object(body, "reply")
    seq = data.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise WireError(f"reply 'seq' must be a non-negative integer, got {seq!r}")
    text = data.get("text", "")
    tokens = data.get("tokens", 0)
    parts: tuple[tuple[str, int], ...] = ()
    if type(text) is list:
        parts = _parts(text, tokens)
        text, tokens = "".join(t for t, _ in parts), sum(n for _, n in parts)
    elif not isinstance(text, str):
        raise WireError("reply 'text' must be a string (or a list of strings)")
    elif isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise WireError(f"reply 'tokens' must be a non-negative integer, got {tokens!r}")
    final = data.get("final", False)
    if not isinstance(final, bool):
        raise WireError("reply 'final' must be true or false")
    finish_reason = data.get("finish_reason")
    if finish_reason is not None and not isinstance(finish_reason, str):
        raise WireError("reply 'finish_reason' must be a string")
    usage: Usage | None = None
    raw_usage = data.get("usage")
    if raw_usage is not None:
        if not isinstance(raw_usage, dict):
            raise WireError("reply 'usage' must be an object")
        prompt, completion = raw_usage.get("prompt_tokens", 0), raw_usage.get("completion_tokens", 0)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (prompt, completion)):
            raise WireError("reply 'usage' counts must be non-negative integers")
        usage = Usage(prompt_tokens=prompt, completion_tokens=completion)
    error: ErrorBody | None = None
    raw_error = data.get("error")
    if raw_error is not None:
        if not isinstance(raw_error, dict):
            raise WireError("reply 'error' must be an object with 'code' and 'message'")
        code, message = raw_error.get("code"), raw_error.get("message", "")
        if not isinstance(code, str) or not isinstance(message, str):
            raise WireError("reply 'error' needs a string 'code' and 'message'")
        error = ErrorBody(code=code, message=message)
        final = True
    session = data.get(SESSION_STATE_FIELD)
    if session is not None and not isinstance(session, str):
        raise WireError(f"reply {SESSION_STATE_FIELD!r} must be a string")
    return Chunk(seq, text, tokens, final, finish_reason, usage, error, session, parts)


def _parts(texts: list[Any], tokens: Any) -> tuple[tuple[str, int], ...]:
    """The chunks of a message that carries several: ``text`` a list of strings, ``tokens`` a list of as many
    non-negative integers."""
    if not texts or not all(type(t) is str for t in texts):
        raise WireError("reply 'text' must be a string or a non-empty list of strings")
    if type(tokens) is not list or len(tokens) != len(texts):
        raise WireError(f"reply 'tokens' must be a list of {len(texts)} counts, one per entry of 'text'")
    if not all(type(n) is int and n >= 0 for n in tokens):
        raise WireError("reply 'tokens' counts must be non-negative integers")
    return tuple(zip(texts, tokens, strict=True))


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        data = orjson.loads(body)  # parsed once per reply message: ~5x faster than json
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:  # orjson.JSONDecodeError is a json.JSONDecodeError
        raise WireError(f"{what} body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WireError(f"{what} body must be a JSON object, got {type(data).__name__}")
    return data


# ---------------------------------------------------------------------------------------------------------------
# URLs


def split_target(url: str) -> tuple[str, str]:
    """``(broker URL without the queue parameter, request queue name)`` of
    ``amqp(s)://user:pass@host:port/vhost?queue=NAME&...`` (other query parameters stay, for aio-pika)."""
    parts = urllib.parse.urlsplit(url)
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    queues = [v for k, v in pairs if k == "queue"]
    if len(queues) > 1:
        raise WireError("give the 'queue' parameter once")
    queue = queues[0] if queues else DEFAULT_QUEUE
    check_queue_name(queue)
    rest = urllib.parse.urlencode([(k, v) for k, v in pairs if k != "queue"])
    return urllib.parse.urlunsplit(parts._replace(query=rest)), queue


def with_queue(url: str, queue: str) -> str:
    """``url`` with its ``queue`` parameter set to ``queue`` (any other parameter kept)."""
    check_queue_name(queue)
    return set_query(url, "queue", queue)


def broker_where(url: str) -> str:
    """``host:port`` of a broker URL (the scheme's default port when it names none): safe to show."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), DEFAULT_PORTS["amqp"])
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def broker_user(url: str) -> str:
    """The login of a broker URL (aio-pika's ``guest`` when it names none)."""
    return urllib.parse.unquote(urllib.parse.urlsplit(url).username or "guest")


def set_query(url: str, key: str, value: str) -> str:
    """``url`` with the query parameter ``key`` set to ``value`` (every other parameter kept)."""
    parts = urllib.parse.urlsplit(url)
    pairs = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k != key]
    pairs.append((key, value))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(pairs)))


def with_reconnect_interval(url: str) -> str:
    """``url`` reconnecting every :data:`RECONNECT_INTERVAL_S` seconds, unless it sets its own interval."""
    if "reconnect_interval" in urllib.parse.parse_qs(urllib.parse.urlsplit(url).query):
        return url
    return set_query(url, "reconnect_interval", f"{RECONNECT_INTERVAL_S:g}")


def check_queue_name(name: str) -> None:
    if not name:
        raise WireError("the queue name is empty")
    if len(name.encode()) > MAX_QUEUE_NAME_BYTES:
        raise WireError(f"the queue name is longer than {MAX_QUEUE_NAME_BYTES} bytes")


__all__ = [
    "AUTH_HEADER",
    "BAD_REQUEST",
    "CHUNK_TYPE",
    "CONTENT_TYPE",
    "DEFAULT_PORTS",
    "DEFAULT_QUEUE",
    "ENGINE_STOPPED",
    "ERROR_CODES",
    "INTERNAL",
    "OVERLOADED",
    "RECONNECT_INTERVAL_S",
    "REQUEST_TYPE",
    "SENT_AT_HEADER",
    "UNAUTHORIZED",
    "WIRE_VERSION",
    "Chunk",
    "ErrorBody",
    "WireError",
    "broker_user",
    "broker_where",
    "check_queue_name",
    "decode_chunk",
    "decode_request",
    "encode_chunk",
    "encode_request",
    "error_chunk",
    "failure_chunk",
    "set_query",
    "several",
    "split_target",
    "with_queue",
    "with_reconnect_interval",
]
