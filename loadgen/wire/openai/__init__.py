"""OpenAI-compatible chat completions on the wire, both sides: one module per message family.

- :mod:`.request`: the request body, built by the REST transport (:func:`encode_request`) and parsed by the REST
  front (:func:`parse_chat_body`); the chat path :data:`CHAT_PATH`.
- :mod:`.reply`: chunks and whole completions, encoded by the front (:class:`ChunkEncoder`, pre-encoded byte
  pieces per stream; :func:`encode_completion`) and decoded by the transport (:func:`parse_chat_chunk`,
  :func:`parse_chat_completion`, :func:`decode_event`, and the learned :class:`ContentChunkShape`).
- :mod:`.error`: error bodies, encoded by the front from the status table (:func:`encode_error`) and read by the
  transport (:func:`server_message`, :func:`error_from_body`).
"""

from loadgen.wire.openai.error import (
    MESSAGE_LIMIT,
    encode_error,
    encode_error_object,
    error_from_body,
    error_object,
    server_message,
)
from loadgen.wire.openai.reply import (
    CHUNK_OBJECT,
    COMPLETION_OBJECT,
    DONE,
    ChatChunk,
    ChunkEncoder,
    ContentChunkShape,
    decode_event,
    encode_completion,
    parse_chat_chunk,
    parse_chat_completion,
)
from loadgen.wire.openai.request import (
    CHAT_PATH,
    CHAT_PATHS,
    DEFAULT_MODEL,
    JSON_CONTENT_TYPE,
    SESSION_HEADER,
    encode_request,
    parse_chat_body,
)

__all__ = [
    "CHAT_PATH",
    "CHAT_PATHS",
    "CHUNK_OBJECT",
    "COMPLETION_OBJECT",
    "DEFAULT_MODEL",
    "DONE",
    "JSON_CONTENT_TYPE",
    "MESSAGE_LIMIT",
    "SESSION_HEADER",
    "ChatChunk",
    "ChunkEncoder",
    "ContentChunkShape",
    "decode_event",
    "encode_completion",
    "encode_error",
    "encode_error_object",
    "encode_request",
    "error_from_body",
    "error_object",
    "parse_chat_body",
    "parse_chat_chunk",
    "parse_chat_completion",
    "server_message",
]
