"""ConversationUser: one Locust user holds one conversation from its first turn to its last, then starts anew.

Think time between turns keeps the user's slot. Each turn fires exactly one Locust ``request`` event
(request_type = transport name, name = ``<dialogue>:turn<k>``) and records the same turn in our HDR
histograms, in the same greenlet step, so Locust's counts and ours always agree. Failures (transport and
retention) are reported, never raised.
"""

from __future__ import annotations

import itertools
import random
import time
from typing import Any

import gevent
from locust import User, constant, task

from loadgen.errors import RetentionFailure, TransportError
from loadgen.locust_plugin.runtime import LoadgenRuntime, get_runtime
from loadgen.metrics.turns import TurnOutcome
from loadgen.transports import Transport, make_transport
from loadgen.types import ChatMessage, ChatRequest, HistoryMode, Reply

_user_numbers = itertools.count()


class ConversationUser(User):
    """Replays scripted dialogues over the chosen transport (``--transport``)."""

    abstract = True
    wait_time = constant(0)  # think time lives inside the conversation

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.user_index = next(_user_numbers)
        self.transport: Transport | None = None
        self._rng = random.Random()

    def on_start(self) -> None:
        rt = get_runtime()
        if rt.options.seed is not None:
            self._rng.seed(f"{rt.options.seed}:{self.user_index}")
        self.transport = make_transport(rt.options.transport, rt.transport_config(self.host))

    def on_stop(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    @task
    def converse(self) -> None:
        rt = get_runtime()
        assert self.transport is not None
        conversation = rt.factory.new(self.user_index)
        dialogue = conversation.dialogue
        history: list[ChatMessage] = []
        system = conversation.system_prompt()
        if system:
            history.append(ChatMessage("system", system))
        session_id = conversation.conversation_id if rt.options.history is HistoryMode.SERVER else None
        meant_start = time.perf_counter()
        for position, turn in enumerate(dialogue.turns):
            if position > 0:
                meant_start = self._think(rt, dialogue.think_time_before(turn))
            started = time.perf_counter()
            user_message = ChatMessage("user", conversation.render(turn))
            if session_id is None:
                messages = (*history, user_message)
            else:
                messages = (*history, user_message) if position == 0 else (user_message,)
            max_tokens = rt.options.max_tokens or dialogue.max_tokens_for(turn)
            request = ChatRequest(
                messages=tuple(messages),
                max_tokens=max_tokens,
                stream=rt.options.stream,
                model=rt.options.model,
                session_id=session_id,
            )
            reply, error = self._send(request, rt.options.turn_timeout)
            elapsed_s = time.perf_counter() - started
            outcome = self._report(
                rt,
                dialogue.name,
                turn.index,
                reply,
                error,
                conversation,
                turn,
                started - meant_start,
                elapsed_s,
            )
            if reply is not None:
                conversation.mark_sent(turn)
                if session_id is None:
                    history.append(user_message)
                    history.append(ChatMessage("assistant", reply.text))
                elif position == 0:
                    history.clear()  # the server holds it from now on
            del outcome
        # think before the next conversation too: a user does not start a new chat instantly
        self._think(rt, dialogue.think_time)

    def _think(self, rt: LoadgenRuntime, think: Any) -> float:
        low = rt.options.think_min if rt.options.think_min is not None else think.min_s
        high = rt.options.think_max if rt.options.think_max is not None else think.max_s
        high = max(low, high)
        delay = self._rng.uniform(low, high)
        meant = time.perf_counter() + delay
        gevent.sleep(delay)
        return meant

    def _send(self, request: ChatRequest, timeout: float) -> tuple[Reply | None, TransportError | None]:
        assert self.transport is not None
        try:
            return self.transport.send(request, timeout=timeout), None
        except TransportError as exc:
            return None, exc

    def _report(
        self,
        rt: LoadgenRuntime,
        dialogue: str,
        turn_index: int,
        reply: Reply | None,
        error: TransportError | None,
        conversation: Any,
        turn: Any,
        schedule_lag_s: float,
        elapsed_s: float,
    ) -> TurnOutcome:
        transport_name = rt.options.transport
        exception: Exception | None = error
        checked, passed, reason = 0, True, None
        if reply is not None:
            verdict = conversation.check_retention(turn, reply.text)
            if verdict is not None:
                checked, passed = verdict.checked, verdict.passed
                if not passed:
                    reason = verdict.reason()
                    exception = RetentionFailure(reason)
            response_time_ms = reply.e2e_s() * 1000.0
            length = len(reply.text)
        else:
            response_time_ms = elapsed_s * 1000.0
            length = 0
        outcome = TurnOutcome(
            transport=transport_name,
            dialogue=dialogue,
            turn=turn_index,
            reply=reply,
            error=error,
            retention_checked=checked,
            retention_passed=passed,
            retention_reason=reason,
            schedule_lag_s=max(0.0, schedule_lag_s),
        )
        # one Locust event and our own record, with no greenlet switch in between
        self.environment.events.request.fire(
            request_type=transport_name,
            name=f"{dialogue}:turn{turn_index}",
            response_time=response_time_ms,
            response_length=length,
            exception=exception,
            context={"conversation_id": conversation.conversation_id},
        )
        rt.record(outcome, conversation.conversation_id)
        return outcome
