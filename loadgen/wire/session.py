"""The session-lost signal: how the reference server says that it did not hold the session a request named.

In server history mode a request names a session (``session_id``) and carries only the new message. When the
server does not hold that session (a first turn, or one evicted, expired, dropped by ``forget-sessions``, or lost
in a restart) it still answers, starting a new session, and says so, the same way on every protocol:

- REST: the response header :data:`SESSION_STATE_HEADER` ``: new`` (on a streamed and a whole reply alike);
- gRPC: the same key in the call's initial metadata;
- AMQP: the first reply chunk carries :data:`SESSION_STATE_FIELD` ``: "new"`` (:mod:`loadgen.wire.amqp`).

A transport sets :attr:`loadgen.types.Reply.session_new` from it. A turn after the first of a conversation whose
reply says ``new`` lost its history on the server: "session lost", which is not the model forgetting a fact.
"""

from __future__ import annotations

from typing import Final

#: The REST response header and gRPC initial-metadata key (lower case, as HTTP/2 and grpc require).
SESSION_STATE_HEADER: Final = "x-loadgen-session"
#: The AMQP reply chunk's field.
SESSION_STATE_FIELD: Final = "session"
#: The value of either when the server started a new session for the request.
SESSION_NEW: Final = "new"

__all__ = ["SESSION_NEW", "SESSION_STATE_FIELD", "SESSION_STATE_HEADER"]
