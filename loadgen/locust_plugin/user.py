"""ConversationUser: one Locust user holds one conversation from its first turn to its last, then starts anew.

Think time between turns keeps the user's slot. The conversation builds each request and keeps the history
(:mod:`loadgen.dialogues.conversation`); each turn ends in one :meth:`LoadgenRuntime.report` call, which fires
exactly one Locust ``request`` event and records the same turn in our histograms. Failures (transport and
retention) are reported, never raised. A turn's schedule lag is when it started minus when its think time
said it should. A turn in flight when Locust stops the user (the end of the run) is counted as cut off
(:meth:`LoadgenRuntime.cut_off`), never silently dropped.

In the open model (``--arrival-rate``, :mod:`loadgen.locust_plugin.open_model`) a user is a conversation slot:
it waits for an arrival from its process's dispatcher, runs one whole dialogue from the arrival's intended time
(turn 1's schedule lag is when it started minus when it was due: any dispatch delay counts) and waits again. A
slot waiting for an arrival is stopped at once, as a user in Locust's own wait is.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from typing import Any

import gevent
from locust import User, constant, task
from locust.exception import StopUser
from locust.user.task import LOCUST_STATE_RUNNING, LOCUST_STATE_STOPPING, LOCUST_STATE_WAITING

from loadgen.dialogues import Conversation, ThinkTime, Turn
from loadgen.errors import TransportError
from loadgen.load.dispatcher import Dispatcher
from loadgen.locust_plugin import open_model
from loadgen.locust_plugin.runtime import LoadgenRuntime, get_runtime
from loadgen.transports import Transport, make_transport

_user_numbers = itertools.count()


class ConversationUser(User):
    """Replays scripted dialogues over the chosen transport (``--transport``)."""

    abstract = True
    wait_time = constant(0)  # think time lives inside the conversation

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.user_index = next(_user_numbers)
        self.user_id = f"{os.getpid()}.{self.user_index}"  # unique across the run's processes (outages)
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
        dispatcher = open_model.current()
        if dispatcher is None:  # the closed model
            conversation = self._dialogue(rt, time.perf_counter())
            self._think(rt, conversation.dialogue.think_time)  # a user does not start a new chat instantly
            return
        arrival = self._wait_for_arrival(dispatcher)
        try:
            self._dialogue(rt, arrival)
        finally:
            dispatcher.done()

    def _dialogue(self, rt: LoadgenRuntime, meant_start: float) -> Conversation:
        """One whole conversation, its first turn meant to start at ``meant_start``."""
        conversation = rt.factory.new(self.user_index)
        dialogue = conversation.dialogue
        for turn in dialogue.turns:
            if turn.index > 1:
                meant_start = self._think(rt, dialogue.think_time_before(turn))
            self._turn(rt, conversation, turn, meant_start)
        return conversation

    def _wait_for_arrival(self, dispatcher: Dispatcher) -> float:
        """An idle slot: wait, stoppable at once (Locust kills a user in its waiting state), for the next arrival."""
        if self._state == LOCUST_STATE_STOPPING:
            raise StopUser()
        self._state = LOCUST_STATE_WAITING
        arrival = dispatcher.wait_for_arrival()
        if self._state == LOCUST_STATE_STOPPING:
            dispatcher.done()  # handed an arrival while being stopped: it ends before it began
            raise StopUser()
        self._state = LOCUST_STATE_RUNNING
        return arrival

    def _turn(self, rt: LoadgenRuntime, conversation: Conversation, turn: Turn, meant_start: float) -> None:
        assert self.transport is not None
        started = time.perf_counter()
        request = rt.request(conversation, turn)
        try:
            reply, error = self.transport.send(request, timeout=rt.options.turn_timeout), None
        except TransportError as exc:
            reply, error = None, exc
        except gevent.GreenletExit:  # the user is stopped mid-turn (the run ends): a cut-off turn
            rt.cut_off()
            raise
        elapsed_s = time.perf_counter() - started
        result = conversation.record(turn, reply, error)
        rt.report(result, schedule_lag_s=started - meant_start, elapsed_s=elapsed_s, user=self.user_id)

    def _think(self, rt: LoadgenRuntime, think: ThinkTime) -> float:
        """Sleep a drawn think time; returns when the next turn is meant to start."""
        low, high = rt.options.think_range(think)
        delay = self._rng.uniform(low, high)
        meant = time.perf_counter() + delay
        gevent.sleep(delay)
        return meant
