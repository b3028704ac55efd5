"""The chat-completions request body: built by the REST transport, parsed by the REST front.

Body (JSON, UTF-8): ``{model, messages: [{role, content}], max_tokens | max_completion_tokens, stream,
stream_options: {include_usage}, session_id, min_tokens, ignore_eos}``. ``min_tokens`` and ``ignore_eos`` (vLLM's
extensions: a reply of at least that many tokens, whatever the model's end of sequence) are written only when a
request sets them (token-length shapes). ``session_id`` is our extension for server history mode (the
front also takes it from the ``X-Session-Id`` header); ``content`` may be a string or OpenAI text parts
(``[{"type": "text", "text": "..."}]``). :func:`encode_request` writes what :func:`parse_chat_body` reads back
to the same :class:`~loadgen.types.ChatRequest` (a streamed request asks for usage). The parser raises
:class:`~loadgen.errors.WireError` naming the field; what is valid beyond the shape (roles, limits) is the
chat service's to say.
"""

from __future__ import annotations

import json
from typing import Any, Final

import orjson

from loadgen.errors import WireError
from loadgen.types import ChatMessage, ChatRequest

#: The chat path of an OpenAI-compatible server, and the other spelling the front also answers on.
CHAT_PATH: Final = "/v1/chat/completions"
CHAT_PATHS: Final = frozenset({CHAT_PATH, "/chat/completions"})
#: The header that may carry the session id in place of the body's ``session_id``.
SESSION_HEADER: Final = "x-session-id"
JSON_CONTENT_TYPE: Final = "application/json"
#: The model of a request whose body names none.
DEFAULT_MODEL: Final = "loadgen"


def encode_request(request: ChatRequest, *, model: str | None = None) -> bytes:
    """The body for ``request`` (``model`` overrides ``request.model``); a stream asks for usage at its end."""
    body: dict[str, Any] = {
        "model": model or request.model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "max_tokens": request.max_tokens,
        "stream": request.stream,
    }
    if request.stream:
        body["stream_options"] = {"include_usage": True}
    if request.session_id is not None:
        body["session_id"] = request.session_id
    if request.min_tokens is not None:
        body["min_tokens"] = request.min_tokens
    if request.ignore_eos:
        body["ignore_eos"] = True
    return orjson.dumps(body)


def parse_chat_body(body: bytes, session_header: str | None, default_max_tokens: int) -> tuple[ChatRequest, bool]:
    """The :class:`ChatRequest` in a body, and whether a stream should end with usage (:class:`WireError`)."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise WireError("the request body must be a JSON object")
    raw_messages = obj.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise WireError("'messages' must be a non-empty list of {role, content} objects")
    messages = []
    for i, m in enumerate(raw_messages):
        if not isinstance(m, dict):
            raise WireError(f"messages[{i}] must be an object with 'role' and 'content'")
        role = m.get("role")
        if not isinstance(role, str):
            raise WireError(f"messages[{i}].role must be a string")
        messages.append(ChatMessage(role, _content(m.get("content"), f"messages[{i}].content")))
    max_tokens = obj.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = obj.get("max_tokens")
    if max_tokens is None:
        max_tokens = default_max_tokens
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        raise WireError(f"max_tokens must be an integer, got {json.dumps(max_tokens)}")
    stream = obj.get("stream", False)
    if not isinstance(stream, bool):
        raise WireError("'stream' must be true or false")
    min_tokens = obj.get("min_tokens")
    if min_tokens is not None and (not isinstance(min_tokens, int) or isinstance(min_tokens, bool)):
        raise WireError(f"min_tokens must be an integer, got {json.dumps(min_tokens)}")
    ignore_eos = obj.get("ignore_eos", False)
    if not isinstance(ignore_eos, bool):
        raise WireError("'ignore_eos' must be true or false")
    return (
        ChatRequest(
            messages=tuple(messages),
            max_tokens=max_tokens,
            stream=stream,
            model=_model(obj.get("model")),
            session_id=_session_id(obj.get("session_id"), session_header),
            min_tokens=min_tokens,
            ignore_eos=ignore_eos,
        ),
        _include_usage(obj),
    )


def _content(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # OpenAI content parts: [{"type": "text", "text": "..."}]
        parts = []
        for j, part in enumerate(value):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise WireError(f"{where}[{j}] must be a text part {{'type': 'text', 'text': '...'}}")
            parts.append(part["text"])
        return "".join(parts)
    raise WireError(f"{where} must be a string or a list of text parts")


def _include_usage(obj: dict[str, Any]) -> bool:
    if obj.get("n", 1) != 1:
        raise WireError("only n=1 is supported")
    options = obj.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise WireError("'stream_options' must be an object")
    return bool(options.get("include_usage", False))


def _model(model: Any) -> str:
    if model is None:
        return DEFAULT_MODEL
    if not isinstance(model, str):
        raise WireError("'model' must be a string")
    return model


def _session_id(session_id: Any, session_header: str | None) -> str | None:
    if session_id is None:
        session_id = session_header
    if session_id is not None and (not isinstance(session_id, str) or not session_id):
        raise WireError("'session_id' must be a non-empty string")
    return session_id


__all__ = [
    "CHAT_PATH",
    "CHAT_PATHS",
    "DEFAULT_MODEL",
    "JSON_CONTENT_TYPE",
    "SESSION_HEADER",
    "encode_request",
    "parse_chat_body",
]
