"""Text safe to show in a failure reason or a log line: one short line, no password.

:func:`short` folds whitespace and cuts a text to ``limit`` characters (the last one ``…``), so that a
library's or a server's message can be quoted in a reason, which are grouped by their text.
:func:`redact_url` hides the password of ``scheme://user:pass@host`` (clients and servers log their targets).
"""

from __future__ import annotations

#: The default length of a quoted message in a failure reason.
REASON_LIMIT = 160


def short(text: str, limit: int = REASON_LIMIT) -> str:
    """``text`` on one line (whitespace folded), cut to at most ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def redact_url(url: str) -> str:
    """Hide a password in ``scheme://user:pass@host`` so the URL can be logged or reported."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"


def without_password(url: str) -> str:
    """``scheme://user:pass@host`` -> ``scheme://user@host``: a URL a client can still use where the password is
    the library's default (AMQP's ``guest``), and that can be printed. :func:`with_password_of` puts it back."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, _, host = rest.rpartition("@")
    return f"{scheme}://{creds.split(':', 1)[0]}@{host}"


def with_password_of(url: str, source: str) -> str:
    """``url`` with the password of ``source`` when ``url`` has none and both name the same user and host: the
    URL a server printed without its password, made whole again by whoever gave the server ``source``."""
    if "://" not in url or "://" not in source or "@" not in url or "@" not in source:
        return url
    scheme, rest = url.split("://", 1)
    creds, _, host = rest.rpartition("@")
    source_creds, _, source_host = source.split("://", 1)[1].rpartition("@")
    user, colon, password = source_creds.partition(":")
    same_host = host.split("/", 1)[0] == source_host.split("/", 1)[0]
    if ":" in creds or not colon or creds != user or not same_host:
        return url
    return f"{scheme}://{user}:{password}@{host}"


__all__ = ["REASON_LIMIT", "redact_url", "short", "with_password_of", "without_password"]
