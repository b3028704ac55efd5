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


__all__ = ["REASON_LIMIT", "redact_url", "short"]
