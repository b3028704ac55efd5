"""The chat service every front calls: validation, history, context window, responder, engine.

A front turns its wire format into a :class:`~loadgen.types.ChatRequest`, awaits :meth:`ChatService.chat`
and streams the :class:`ChatStream` it returns (one wire message per :class:`TokenChunk`), then reads
``prompt_tokens`` / ``completion_tokens`` / ``finish_reason`` for the usage it reports. ``chat()`` raises
*before* anything is streamed:

- :class:`Unauthorized` (a wrong or missing API key, when ``config.api_key`` is set) -> 401 / UNAUTHENTICATED
- :class:`BadChatRequest` (the message says what is wrong) -> 400 / INVALID_ARGUMENT
- :class:`~loadgen.server.engines.base.EngineOverloaded` (queue full) -> 429 / RESOURCE_EXHAUSTED
- :class:`~loadgen.server.fault_control.InjectedFault` (an ``error P%`` fault drew this request) -> 500 / INTERNAL

While a ``stall`` fault is in force (:attr:`ChatService.faults`), ``chat()`` and every stream wait before going on.

An exception while iterating (the engine stopped, say) is an error in mid-stream. A front that stops early
(client gone) must ``await stream.aclose()``, which frees the engine slot; ``async with stream:`` does it.
:func:`failure_of` names any of these as a row of the status table (:mod:`loadgen.wire.status`) and
:func:`failure_message` says it: every front answers through them (:mod:`loadgen.server.fronts`).

The API key the server requires follows the one key policy of :mod:`loadgen.wire.auth` (a service given
another refuses to start, :class:`~loadgen.errors.ConfigError`); a front reads the client's key with
:func:`loadgen.wire.auth.parse_bearer`.

History modes: with ``request.session_id`` the server keeps the conversation (the request carries the new
message(s) only; the kept history is prepended, the new messages are stored once the engine admitted the
request, and the assistant reply once the stream completed). Without one the request carries the whole
conversation. Either way the context is fitted into ``config.context_window`` tokens (oldest whole turns
dropped) with ``max_tokens`` reserved for the reply.

Reply length: the responder's text is always longer than ``max_tokens`` (its filler), so every reply runs to
``max_tokens`` tokens: a request's ``min_tokens`` (at most ``max_tokens``) and ``ignore_eos`` (token-length shapes,
:mod:`loadgen.dialogues.shapes`) are honoured as they are; a ``min_tokens`` above ``max_tokens`` is a bad request.

With ``--otel`` (:attr:`ChatService.tracing`) each request is a server span, child of the client's turn span whose
trace context the front passes in (``chat(..., trace=...)``): :mod:`loadgen.telemetry.serve_tracing`.
"""

from __future__ import annotations

import contextlib
import hmac
import inspect
import itertools
import secrets
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from loadgen.errors import WireError
from loadgen.server.config import ServerConfig
from loadgen.server.context import ContextOverflow, fit_prompt
from loadgen.server.engines.base import (
    Engine,
    EngineOverloaded,
    EngineRequestError,
    GenerationRequest,
    TokenChunk,
)
from loadgen.server.fault_control import FaultGate, InjectedFault
from loadgen.server.faults import FaultLog
from loadgen.server.responder import Responder
from loadgen.server.sessions import SessionStore
from loadgen.telemetry.serve_tracing import ServeTracing  # (imports no OpenTelemetry until tracing is on)
from loadgen.types import ChatMessage, ChatRequest
from loadgen.wire.auth import HINT, check_key
from loadgen.wire.status import STATUS, Failure
from loadgen.wire.text import short

if TYPE_CHECKING:
    from opentelemetry.trace import Span

#: Largest ``max_tokens`` a request may ask for.
MAX_TOKENS_LIMIT = 4096
ROLES = frozenset({"system", "user", "assistant"})
#: Longest message a front puts in an error answer.
MESSAGE_LIMIT = 300


class BadChatRequest(ValueError):
    """The request can never be served as sent; the message says what is wrong (-> 400 / INVALID_ARGUMENT)."""


class Unauthorized(Exception):
    """A wrong or missing API key, when the server requires one (-> 401 / UNAUTHENTICATED)."""


def failure_of(exc: BaseException) -> Failure:
    """The row of the status table a front answers ``exc`` with: :class:`Unauthorized` -> UNAUTHORIZED,
    :class:`BadChatRequest` or a :class:`~loadgen.errors.WireError` -> BAD_REQUEST, ``EngineOverloaded`` ->
    OVERLOADED, ``EngineRequestError`` (only ever mid-reply: ``chat()`` makes one at admission a bad request) ->
    ENGINE_STOPPED, anything else (an ``error P%`` fault's :class:`InjectedFault` too) -> INTERNAL."""
    if isinstance(exc, Unauthorized):
        return Failure.UNAUTHORIZED
    if isinstance(exc, BadChatRequest | WireError):
        return Failure.BAD_REQUEST
    if isinstance(exc, EngineOverloaded):
        return Failure.OVERLOADED
    if isinstance(exc, EngineRequestError):
        return Failure.ENGINE_STOPPED
    return Failure.INTERNAL


def is_bug(exc: BaseException) -> bool:
    """Whether a front logs ``exc`` with its traceback: an INTERNAL failure that was not injected on purpose."""
    return failure_of(exc) is Failure.INTERNAL and not isinstance(exc, InjectedFault)


def failure_message(failure: Failure, exc: BaseException) -> str:
    """What a front says with ``failure``: the exception's text (an internal error names its type too), or the
    row's meaning; a missing or wrong key adds how to send one."""
    text = str(exc)
    if failure is Failure.INTERNAL and not isinstance(exc, InjectedFault):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    message = text or STATUS[failure].meaning
    if failure is Failure.UNAUTHORIZED:
        message = f"{message}: {HINT}"
    return short(message, MESSAGE_LIMIT)


class ChatStream:
    """The reply to one request: an async iterator of :class:`TokenChunk`.

    ``prompt_tokens`` is known from the start, ``completion_tokens`` grows while iterating, ``finish_reason``
    (``"stop"`` or ``"length"``) is final once the iteration ended. ``text`` is what was streamed so far.
    ``session_new``: the request named a session the store did not hold (a first turn, or one evicted, expired or
    forgotten): the front says so on the wire (:mod:`loadgen.wire.session`).
    """

    __slots__ = (
        "_closed",
        "_first",
        "_first_at",
        "_iterator",
        "_parts",
        "_received_at",
        "_reply",
        "_service",
        "_session_id",
        "_span",
        "completion_tokens",
        "finish_reason",
        "finished",
        "max_tokens",
        "prompt_tokens",
        "request_id",
        "session_new",
    )

    def __init__(
        self,
        service: ChatService,
        request_id: str,
        iterator: AsyncIterator[TokenChunk],
        *,
        prompt_tokens: int,
        max_tokens: int,
        reply: str,
        session_id: str | None,
        session_new: bool = False,
        first: TokenChunk | None = None,
        exhausted: bool = False,
    ) -> None:
        self._service = service
        self.request_id = request_id
        self._iterator = iterator
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = 0
        self.max_tokens = max_tokens
        self.finish_reason = "stop"
        self.finished = False
        self._reply = reply
        self._session_id = session_id
        self.session_new = session_new
        self._first = first
        self._parts: list[str] = []
        self._closed = False
        self._span: Span | None = None  # with --otel (ChatService.tracing): this request's server span
        self._received_at: float | None = None
        self._first_at: float | None = None
        if exhausted and first is None:
            self._finish()

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> TokenChunk:
        if self._service.faults.stall is not None:  # a stall fault: nothing more goes out until it ends
            await self._service.faults.wait_stall()
        chunk = self._first
        if chunk is not None:
            self._first = None
        else:
            if self._closed:
                raise StopAsyncIteration
            try:
                chunk = await self._iterator.__anext__()
            except StopAsyncIteration:
                self._finish()
                raise
            except BaseException:
                self._fail()
                raise
            if self._closed:  # aclose() from another task while we waited
                await self._close_iterator()
                raise StopAsyncIteration
        if self._span is not None and not self._parts:
            self._first_at = ServeTracing.first_token(self._span, self._received_at)
        self.completion_tokens += chunk.n_tokens
        self._parts.append(chunk.text)
        return chunk

    def _traced(self, span: Span, received_at: float | None) -> None:
        """With --otel: the span this reply ends (at once when the engine had nothing to send)."""
        self._span, self._received_at = span, received_at
        if self._closed:
            self._service._end_span(self, completed=self.finished, cancelled=False)

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.finished = True
        if self.completion_tokens >= self.max_tokens and self.completion_tokens > 0:
            tokens_in_reply = self._service.engine.tokenizer.count(self._reply)
            self.finish_reason = "length" if tokens_in_reply > self.completion_tokens else "stop"
        self._service._stream_done(self, completed=True)
        if self._session_id is not None:  # a session dropped while the reply streamed stays dropped
            self._service.sessions.append(self._session_id, ChatMessage("assistant", self.text), create=False)

    def _fail(self) -> None:
        if not self._closed:
            self._closed = True
            self._service._stream_done(self, completed=False)

    async def aclose(self) -> None:
        """Stop early (or after the end: harmless); frees the request's engine slot."""
        self._first = None
        if not self._closed:
            self._closed = True
            self._service._stream_done(self, completed=False, cancelled=True)
        await self._close_iterator()

    async def _close_iterator(self) -> None:
        close = getattr(self._iterator, "aclose", None)
        if close is not None:
            # an async generator that another task is iterating right now cannot be closed from here: that task
            # gets its next chunk, sees the stream closed, and closes the generator then (in __anext__)
            with contextlib.suppress(RuntimeError):
                await close()

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class ChatService:
    """One per server; shared by every front. Used from the server's event loop only."""

    def __init__(
        self,
        engine: Engine,
        sessions: SessionStore,
        config: ServerConfig,
        *,
        responder: Responder | None = None,
    ) -> None:
        self.engine = engine
        self.sessions = sessions
        self.config = config
        self.responder = responder or Responder()
        self._ids = itertools.count(1)
        self._id_prefix = f"chatcmpl-{secrets.token_hex(4)}"
        self._key = check_key(config.api_key, what="the API key to require").encode() if config.api_key else None
        self.counts: dict[str, int] = dict.fromkeys(
            (
                "requests",
                "accepted",
                "completed",
                "cancelled",
                "failed",
                "overloaded",
                "bad_requests",
                "unauthorized",
                "prompt_tokens",
                "completion_tokens",
                "context_truncated",
                "injected_errors",
            ),
            0,
        )
        self.active = 0
        #: the faults in force (``--faults``; healthy otherwise), read on the request path
        self.faults = FaultGate()
        #: every fault as it happened (``GET /faults``); the server sets it when it starts
        self.fault_log: FaultLog | None = None
        #: with ``--otel``: a server span per request (:mod:`loadgen.telemetry.serve_tracing`); ``None``: off
        self.tracing: ServeTracing | None = None

    # -- the one call --------------------------------------------------------------------------------------------

    async def chat(
        self,
        request: ChatRequest,
        *,
        api_key: str | None = None,
        received_at: float | None = None,
        trace: Mapping[str, str] | None = None,
    ) -> ChatStream:
        """Start one reply. ``received_at``: :func:`time.monotonic` when the front received the request; ``trace``:
        the trace context it came with (:func:`loadgen.telemetry.serve_tracing.carrier_of`), the parent of its
        span when tracing is on."""
        tracing = self.tracing
        if tracing is None:
            return await self._chat(request, api_key, received_at)
        span = tracing.start(trace, received_at)
        try:
            stream = await self._chat(request, api_key, received_at)
        except BaseException as exc:
            failure = failure_of(exc)
            tracing.refused(span, failure.name, failure_message(failure, exc))
            raise
        tracing.admitted(
            span,
            received_at,
            request_id=stream.request_id,
            prompt_tokens=stream.prompt_tokens,
            session_new=stream.session_new,
        )
        stream._traced(span, received_at)
        return stream

    async def _chat(self, request: ChatRequest, api_key: str | None, received_at: float | None) -> ChatStream:
        counts = self.counts
        counts["requests"] += 1
        faults = self.faults
        if faults.on:  # --faults: a stall holds the request here; an error fault fails a share of them below
            await faults.wait_stall()
        if self._key is not None:
            self.authorize(api_key)
        try:
            self._validate(request)
            session_id = request.session_id
            session_new = False
            if session_id is not None:
                held = self.sessions.history(session_id)
                session_new = held is None
                messages = (held or []) + list(request.messages)
            else:
                messages = list(request.messages)
            try:
                context, prompt, prompt_tokens = fit_prompt(
                    messages, self.engine.tokenizer, self.config.context_window, request.max_tokens
                )
            except ContextOverflow as exc:
                raise BadChatRequest(str(exc)) from None
        except BadChatRequest:
            counts["bad_requests"] += 1
            raise
        if faults.on:
            try:
                faults.maybe_fail()
            except InjectedFault:
                counts["injected_errors"] += 1
                raise
        if len(context) < len(messages):
            counts["context_truncated"] += 1
        reply = self.responder.reply(context, request.max_tokens)
        request_id = f"{self._id_prefix}{next(self._ids):x}"
        generation = GenerationRequest(request_id, prompt, reply, request.max_tokens, received_at)
        iterator, first, exhausted = await self._admit(generation)
        counts["accepted"] += 1
        counts["prompt_tokens"] += prompt_tokens
        self.active += 1
        if session_id is not None:
            self.sessions.append(session_id, *request.messages)
        return ChatStream(
            self,
            request_id,
            iterator,
            prompt_tokens=prompt_tokens,
            max_tokens=request.max_tokens,
            reply=reply,
            session_id=session_id,
            session_new=session_new,
            first=first,
            exhausted=exhausted,
        )

    # -- helpers -------------------------------------------------------------------------------------------------

    async def _admit(self, generation: GenerationRequest) -> tuple[AsyncIterator[TokenChunk], TokenChunk | None, bool]:
        """The engine's iterator for ``generation``, its first chunk when taken already, and whether it is empty.

        A plain async generator admits only when first iterated: its first chunk is taken now, so that
        :class:`EngineOverloaded` still comes out of :meth:`chat` (before the front starts streaming). An
        :class:`EngineRequestError` here is the request's fault: a :class:`BadChatRequest`.
        """
        first: TokenChunk | None = None
        exhausted = False
        try:
            iterator = self.engine.generate(generation)
            lazy = inspect.isasyncgen(iterator)  # (a bool, not a type guard: keeps the iterator's type)
            if lazy:
                try:
                    first = await iterator.__anext__()
                except StopAsyncIteration:
                    exhausted = True
        except EngineOverloaded:
            self.counts["overloaded"] += 1
            raise
        except EngineRequestError as exc:
            self.counts["bad_requests"] += 1
            raise BadChatRequest(str(exc) or "the engine cannot serve this request") from exc
        return iterator, first, exhausted

    def authorize(self, api_key: str | None) -> None:
        """Raise :class:`Unauthorized` unless ``api_key`` is right (or the server requires none). ``chat()``
        checks too; a front may call this first, to answer 401 before it parses the request."""
        if self._key is None:
            return
        if not api_key:
            self.counts["unauthorized"] += 1
            raise Unauthorized("missing API key")
        if not hmac.compare_digest(api_key.encode("utf-8", "surrogatepass"), self._key):
            self.counts["unauthorized"] += 1
            raise Unauthorized("invalid API key")

    @staticmethod
    def _validate(request: ChatRequest) -> None:
        messages = request.messages
        if not messages:
            raise BadChatRequest("'messages' is empty: send at least one user message")
        for i, message in enumerate(messages):
            if not isinstance(message, ChatMessage):
                raise BadChatRequest(f"messages[{i}] is not a chat message")
            if message.role not in ROLES:
                raise BadChatRequest(
                    f"messages[{i}].role is {message.role!r}: expected 'system', 'user' or 'assistant'"
                )
            if not isinstance(message.content, str):
                raise BadChatRequest(f"messages[{i}].content is not a string")
        if messages[-1].role != "user":
            raise BadChatRequest(f"the last message must be a user message, not {messages[-1].role!r}")
        max_tokens = request.max_tokens
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            raise BadChatRequest(f"max_tokens must be an integer, got {max_tokens!r}")
        if not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
            raise BadChatRequest(f"max_tokens must be between 1 and {MAX_TOKENS_LIMIT}, got {max_tokens}")
        min_tokens = request.min_tokens
        if min_tokens is not None and not 0 <= min_tokens <= max_tokens:
            raise BadChatRequest(f"min_tokens must be between 0 and max_tokens ({max_tokens}), got {min_tokens}")
        if request.session_id is not None and (not isinstance(request.session_id, str) or not request.session_id):
            raise BadChatRequest("session_id must be a non-empty string")

    def _stream_done(self, stream: ChatStream, *, completed: bool, cancelled: bool = False) -> None:
        self.active -= 1
        counts = self.counts
        counts["completion_tokens"] += stream.completion_tokens
        if completed:
            counts["completed"] += 1
        elif cancelled:
            counts["cancelled"] += 1
        else:
            counts["failed"] += 1
        if stream._span is not None:
            self._end_span(stream, completed=completed, cancelled=cancelled)

    def _end_span(self, stream: ChatStream, *, completed: bool, cancelled: bool) -> None:
        span, stream._span = stream._span, None
        if span is None or self.tracing is None:
            return
        outcome = "completed" if completed else "cancelled" if cancelled else "failed"
        self.tracing.done(
            span,
            outcome,
            completion_tokens=stream.completion_tokens,
            finish_reason=stream.finish_reason,
            first_at=stream._first_at,
        )

    def stats(self) -> dict[str, Any]:
        """``{"service": ..., "sessions": ..., "engine": ..., "faults": ...}``: numbers, and the fault log
        (:meth:`~loadgen.server.faults.FaultLog.to_json`; ``None`` before the server started it)."""
        service: dict[str, float] = {**self.counts, "active": self.active}
        faults = self.fault_log.to_json() if self.fault_log is not None else None
        return {"service": service, "sessions": self.sessions.stats(), "engine": self.engine.stats(), "faults": faults}


__all__ = [
    "MAX_TOKENS_LIMIT",
    "BadChatRequest",
    "ChatService",
    "ChatStream",
    "Unauthorized",
    "failure_message",
    "failure_of",
    "is_bug",
]
