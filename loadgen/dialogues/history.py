"""What each turn of a conversation sends, by history mode, and what the turn's outcome adds to it.

``client`` mode (OpenAI style): a request carries the whole conversation so far: the system prompt (when the
dialogue has one), the user message and the reply of every earlier turn that got a reply, then the new user
message; no session id.

``server`` mode: the server keeps the history under the conversation's id, sent as ``session_id`` with every
turn. The first turn carries the system prompt (when there is one) and its user message; every later turn
carries its own user message only.

A failed turn (no reply: the transport raised) adds nothing. In client mode its user message is left out of
every later request, which are what they would have been had that turn never been asked. In server mode the
system prompt went with the first turn whatever came of it, and is not sent again. A turn whose reply missed a
retention probe did get a reply: it is history like any other.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadgen.types import ChatMessage, ChatRequest, HistoryMode

#: A request with nothing set: where the defaults below come from.
_PLAIN_REQUEST = ChatRequest(messages=())


@dataclass(frozen=True, slots=True)
class RequestSettings:
    """What every request of a run asks for besides its messages."""

    history: HistoryMode = HistoryMode.CLIENT
    stream: bool = _PLAIN_REQUEST.stream
    model: str = _PLAIN_REQUEST.model
    max_tokens: int | None = None  # None: each turn's own (the dialogue's)


class History:
    """The messages one conversation has to send again, and the session id it sends them under."""

    __slots__ = ("_first", "_messages", "_mode", "session_id")

    def __init__(self, mode: HistoryMode, conversation_id: str, system_prompt: str | None) -> None:
        self._mode = mode
        #: The server-side session (server mode), None in client mode.
        self.session_id: str | None = conversation_id if mode is HistoryMode.SERVER else None
        self._messages: list[ChatMessage] = [ChatMessage("system", system_prompt)] if system_prompt else []
        self._first = True

    def messages_for(self, user_message: str) -> tuple[ChatMessage, ...]:
        """The messages of the next request, whose new user message is ``user_message``."""
        user = ChatMessage("user", user_message)
        if self._mode is HistoryMode.CLIENT or self._first:
            return (*self._messages, user)
        return (user,)

    def replied(self, user_message: str, reply_text: str) -> None:
        """The turn that sent ``user_message`` got ``reply_text``: in client mode both are sent from now on."""
        if self._mode is HistoryMode.CLIENT:
            self._messages.append(ChatMessage("user", user_message))
            self._messages.append(ChatMessage("assistant", reply_text))
        self._first = False

    def failed(self) -> None:
        """The turn just asked got no reply: nothing is added (see the module doc)."""
        self._first = False

    @property
    def messages(self) -> tuple[ChatMessage, ...]:
        """What is kept to be sent again (client mode; in server mode only the system prompt, until turn 1)."""
        return tuple(self._messages)
