"""OpenAI error bodies: written by the REST front, read by the REST transport.

A front answers a failure with ``{"error": {"message", "type", "code"}}``: the HTTP status of its row in
:mod:`loadgen.wire.status` and, before the stream, that status on the response; in the middle of a stream the
same object as the data of an ``event: error``. A client reads the message and code of that shape and of the
shapes other servers send (``{"detail": ...}`` of Starlette/FastAPI, ``{"message": ...}``, plain text) with
:func:`server_message`, and :func:`error_from_body` makes it the failure kind the status table gives the code.
"""

from __future__ import annotations

import json
from typing import Any, Final

from loadgen.errors import ServerError
from loadgen.wire.status import STATUS, Failure, http_kind
from loadgen.wire.text import short

#: Server messages put into error reasons are cut to about this many characters.
MESSAGE_LIMIT: Final = 200


def error_object(message: str, type_: str, code: int) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code}}


def encode_error(failure: Failure, message: str) -> bytes:
    """The error body a front answers ``failure`` with (its HTTP status is ``STATUS[failure].http``)."""
    row = STATUS[failure]
    return encode_error_object(message, row.http_type, row.http)


def encode_error_object(message: str, type_: str, code: int) -> bytes:
    """An error body for a status outside the table (405, 413: HTTP's own)."""
    return json.dumps(error_object(message, type_, code), separators=(",", ":"), ensure_ascii=False).encode()


def server_message(body: str, limit: int = MESSAGE_LIMIT) -> tuple[str, str | int | None]:
    """The human message and the code in an error body: OpenAI ``{"error": {"message", "code"}}``,
    ``{"detail": ...}`` (Starlette/FastAPI), ``{"message": ...}``, or plain text. Whitespace is folded and
    the message cut to about ``limit`` characters."""
    code: str | int | None = None
    message: str | None = None
    try:
        obj: Any = json.loads(body)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        err = obj.get("error", obj)
        if isinstance(err, dict):
            raw_code = err.get("code", err.get("type"))
            if isinstance(raw_code, str | int) and not isinstance(raw_code, bool):
                code = raw_code
            for key in ("message", "detail", "error"):
                value = err.get(key)
                if value is not None:
                    message = value if isinstance(value, str) else json.dumps(value)
                    break
        elif err is not None:
            message = err if isinstance(err, str) else json.dumps(err)
    if message is None:
        message = body
    return short(message, limit) or "(no message)", code


def error_from_body(body: str, *, prefix: str, status: int | None = None) -> ServerError:
    """The failure for an error body: :func:`~loadgen.wire.status.http_kind` of its code (``status``, when
    given, wins over any code in the body), the reason ``"{prefix}: {message}"``."""
    message, body_code = server_message(body)
    code: str | int | None = status if status is not None else body_code
    return http_kind(code)(f"{prefix}: {message}", code=code)


__all__ = [
    "MESSAGE_LIMIT",
    "encode_error",
    "encode_error_object",
    "error_from_body",
    "error_object",
    "server_message",
]
