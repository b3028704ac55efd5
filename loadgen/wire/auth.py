"""The API key on the wire: ONE format and ONE key policy for all three transports and all three fronts.

Format: the key travels as ``Bearer <key>``: REST in the ``Authorization`` header, gRPC in the
``authorization`` metadata entry, AMQP in the ``authorization`` message header (:data:`AUTH_HEADER`, the
lower-case name every one of them carries). A front reads it with :func:`parse_bearer`: the scheme matches in
any case and spaces around the key are ignored; anything else (a bare key, another scheme such as ``Basic``, a
key that breaks the policy) is *no key*, which a server that requires one answers as unauthorized (HTTP 401,
UNAUTHENTICATED, AMQP ``unauthorized``: see :mod:`loadgen.wire.status`).

Key policy (:func:`key_problem`): 1 to :data:`MAX_KEY_LENGTH` characters of printable ASCII without
whitespace (``!`` to ``~``), what an HTTP header, gRPC metadata and an AMQP header all carry unchanged. A client
refuses any other key before it sends anything (:func:`check_key` raises :class:`~loadgen.errors.ConfigError`),
and so does a server given one to require; neither message ever quotes the key.
"""

from __future__ import annotations

from typing import Final

from loadgen.errors import ConfigError

#: The header (REST), metadata key (gRPC) and message header (AMQP) that carry the key; lower case, as gRPC
#: requires and HTTP and AMQP accept.
AUTH_HEADER: Final = "authorization"
SCHEME: Final = "Bearer"
#: Longer keys are refused (no real key comes near; a header of megabytes is an accident).
MAX_KEY_LENGTH: Final = 4096
#: What a server says to a client that sent no key it could read.
HINT: Final = f"send the key as '{AUTH_HEADER}: {SCHEME} <key>'"


def key_problem(key: str) -> str | None:
    """Why ``key`` breaks the key policy (never quoting it), or ``None`` when it is a good key."""
    if not key:
        return "it is empty"
    if len(key) > MAX_KEY_LENGTH:
        return f"it is longer than {MAX_KEY_LENGTH} characters"
    if not all("!" <= c <= "~" for c in key):
        return "it holds characters other than printable ASCII, or spaces"
    return None


def check_key(key: str, *, what: str = "the API key") -> str:
    """``key`` when it follows the key policy, else :class:`ConfigError` saying why (without the key)."""
    problem = key_problem(key)
    if problem is not None:
        raise ConfigError(
            f"{what} cannot be sent: {problem} (a key is printable ASCII without spaces, the same rule on every "
            "transport: HTTP headers, gRPC metadata and AMQP headers)"
        )
    return key


def bearer(key: str) -> str:
    """The value that carries ``key``: ``Bearer <key>`` (:class:`ConfigError` for a key that breaks the policy)."""
    return f"{SCHEME} {check_key(key)}"


def parse_bearer(value: object) -> str | None:
    """The key in a ``Bearer <key>`` value (``str``, or ``bytes`` as headers may come), else ``None``."""
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("latin-1")
    if not isinstance(value, str):
        return None
    parts = value.split(None, 1)
    if len(parts) != 2 or parts[0].lower() != SCHEME.lower():
        return None
    key = parts[1].strip()
    return key if key_problem(key) is None else None


__all__ = ["AUTH_HEADER", "HINT", "MAX_KEY_LENGTH", "SCHEME", "bearer", "check_key", "key_problem", "parse_bearer"]
