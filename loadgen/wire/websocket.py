"""The WebSocket wire format of chat-loadgen: streamed chat turns over one long-lived connection (no I/O).

Shared by the reference server's WebSocket front (:mod:`loadgen.server.ws_front`) and the client transport shipped
as a plug-in package (``plugins/chat-loadgen-websocket``).

- Connection: ``ws(s)://host:port`` + :data:`DEFAULT_PATH` (a target that names its own path keeps it:
  :func:`chat_url`). The API key goes in the opening handshake as ``authorization: Bearer <key>``
  (:mod:`loadgen.wire.auth`: the rule of every transport); a server that requires a key answers each turn of a
  connection without the right one with an ``unauthorized`` error. Messages are text frames, one JSON object each,
  no compression.
- Request: one text message per turn, the body of an OpenAI chat completion (:func:`encode_request`, read back by
  :func:`decode_request`): ``{model, messages, max_tokens, stream, session_id}``; ``session_id`` is server history
  mode. One turn at a time per connection: the next request goes after the previous reply ended.
- Reply, streamed: one message per token chunk, then one ``done`` message with the finish reason and usage::

      {"type": "token", "text": "Hel", "tokens": 1}
      {"type": "done", "finish_reason": "stop", "usage": {"prompt_tokens": 12, "completion_tokens": 7}}

  Not streamed: a single ``done`` message that also carries the whole ``text``.
- Failure: an ``error`` message in place of the next token (before the reply or in the middle of it), ending the
  turn; ``code`` is the :class:`~loadgen.wire.status.Failure` of the status table (``bad_request``,
  ``unauthorized``, ``overloaded``, ``engine_stopped``, ``internal``), ``status`` its HTTP status::

      {"type": "error", "code": "overloaded", "status": 429, "message": "engine queue full"}

  A client files it under the failure kind of that row (:func:`error_of`): the same kind as on REST, gRPC and
  AMQP; a code the table does not know is a :class:`~loadgen.errors.ServerError`.

Chunk timing on the client is taken when a message came out of the connection, before it is decoded.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any, Final

import orjson

from loadgen.errors import ServerError, WireError
from loadgen.types import ChatRequest, Usage
from loadgen.wire.openai import encode_request, parse_chat_body
from loadgen.wire.status import STATUS, Failure
from loadgen.wire.text import short

#: Where the chat endpoint lives when a target names no path of its own.
DEFAULT_PATH: Final = "/v1/chat/ws"
SCHEMES: Final = ("ws", "wss")
TOKEN: Final = "token"
DONE: Final = "done"
ERROR: Final = "error"
TYPES: Final = frozenset({TOKEN, DONE, ERROR})
#: The largest message either side accepts (a whole reply, or a request in client history mode).
MAX_MESSAGE_BYTES: Final = 32 * 1024 * 1024

_CODES: Final = {failure.value: failure for failure in Failure}


# ---------------------------------------------------------------------------------------------------------------
# requests


def decode_request(data: str | bytes, *, default_max_tokens: int = 64) -> ChatRequest:
    """The :class:`ChatRequest` of one request message (:class:`WireError` names the first problem)."""
    body = data.encode() if isinstance(data, str) else data
    request, _include_usage = parse_chat_body(body, None, default_max_tokens)
    return request


# ---------------------------------------------------------------------------------------------------------------
# replies: the server writes, the client reads


def encode_token(text: str, tokens: int = 1) -> str:
    """One token chunk (the hot path: no dict per token)."""
    return f'{{"type":"token","text":{json.dumps(text, ensure_ascii=False)},"tokens":{tokens}}}'


def encode_done(finish_reason: str, usage: Usage | None, text: str | None = None) -> str:
    """The end of a reply (``text``: the whole reply, when it was not streamed)."""
    body: dict[str, Any] = {"type": DONE, "finish_reason": finish_reason}
    if text is not None:
        body["text"] = text
    if usage is not None:
        body["usage"] = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
    return orjson.dumps(body).decode()


def encode_error(failure: Failure, message: str) -> str:
    """The message a front answers ``failure`` with."""
    row = STATUS[failure]
    return orjson.dumps({"type": ERROR, "code": failure.value, "status": row.http, "message": message}).decode()


@dataclass(frozen=True, slots=True)
class Message:
    """One reply message, decoded."""

    type: str
    text: str = ""
    tokens: int = 0
    finish_reason: str | None = None
    usage: Usage | None = None
    code: str = ""
    message: str = ""


def decode_message(data: str | bytes) -> Message:
    """A reply message; :class:`WireError` says what breaks the format."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"reply message is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise WireError(f"reply message must be a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    if kind not in TYPES:
        raise WireError(f"reply message 'type' must be one of {', '.join(sorted(TYPES))}, got {kind!r}")
    text = obj.get("text", "")
    tokens = obj.get("tokens", 0)
    if not isinstance(text, str):
        raise WireError("reply 'text' must be a string")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise WireError("reply 'tokens' must be a non-negative integer")
    if kind == ERROR:
        code, message = obj.get("code"), obj.get("message", "")
        if not isinstance(code, str) or not code or not isinstance(message, str):
            raise WireError("an error message needs a string 'code' and 'message'")
        return Message(ERROR, code=code, message=message)
    finish_reason = obj.get("finish_reason")
    if finish_reason is not None and not isinstance(finish_reason, str):
        raise WireError("reply 'finish_reason' must be a string")
    return Message(kind, text=text, tokens=tokens, finish_reason=finish_reason, usage=_usage(obj.get("usage")))


def _usage(raw: Any) -> Usage | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise WireError("reply 'usage' must be an object")
    prompt, completion = raw.get("prompt_tokens", 0), raw.get("completion_tokens", 0)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (prompt, completion)):
        raise WireError("reply 'usage' counts must be non-negative integers")
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


def error_of(message: Message) -> ServerError:
    """The failure an ``error`` message stands for: the kind of its row of the status table, e.g.
    ``Overloaded("overloaded: engine queue full")``; an unknown code is
    ``ServerError("server error (teapot): ...")``."""
    failure = _CODES.get(message.code)
    if failure is None:
        return ServerError(f"server error ({short(message.code, 40)}): {short(message.message) or 'no message'}")
    row = STATUS[failure]
    return row.kind(f"{row.label}: {short(message.message) or row.meaning}", code=message.code)


# ---------------------------------------------------------------------------------------------------------------
# URLs


def chat_url(target: str, path: str | None = None) -> str:
    """The URL a client connects to: ``target`` with ``path`` (default: the target's own path, or
    :data:`DEFAULT_PATH` when it has none); :class:`WireError` for a target that is not ``ws(s)://host[:port]``."""
    parts = urllib.parse.urlsplit(target)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise WireError(f"bad port: {exc}") from None
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        raise WireError("expected ws://host[:port][/path] or wss://...")
    chosen = path or (parts.path if parts.path not in ("", "/") else DEFAULT_PATH)
    if not chosen.startswith("/"):
        chosen = "/" + chosen
    return urllib.parse.urlunsplit(parts._replace(path=chosen))


def where(target: str) -> str:
    """``host:port`` of a target (the scheme's default port when it names none): safe to show in a reason."""
    parts = urllib.parse.urlsplit(target)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme.lower() == "wss" else 80)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


__all__ = [
    "DEFAULT_PATH",
    "DONE",
    "ERROR",
    "MAX_MESSAGE_BYTES",
    "SCHEMES",
    "TOKEN",
    "Message",
    "chat_url",
    "decode_message",
    "decode_request",
    "encode_done",
    "encode_error",
    "encode_request",
    "encode_token",
    "error_of",
    "where",
]
