"""ConversationUser: one Locust user holds one conversation from its first turn to its last, then starts anew.

Think time between turns keeps the user's slot. The conversation builds each request and keeps the history
(:mod:`loadgen.dialogues.conversation`); each turn ends in one :meth:`LoadgenRuntime.report` call, which fires
exactly one Locust ``request`` event and records the same turn in our histograms. Failures (transport and
retention) are reported, never raised. A turn's schedule lag is when it started minus when its think time
said it should. A turn in flight when Locust stops the user (the end of the run) is counted as cut off
(:meth:`LoadgenRuntime.cut_off`), never silently dropped.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from typing import Any

import gevent
from locust import User, constant, task

from loadgen.dialogues import Conversation, ThinkTime, Turn
from loadgen.errors import TransportError
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
        conversation = rt.factory.new(self.user_index)
        dialogue = conversation.dialogue
        meant_start = time.perf_counter()
        for turn in dialogue.turns:
            if turn.index > 1:
                meant_start = self._think(rt, dialogue.think_time_before(turn))
            self._turn(rt, conversation, turn, meant_start)
        self._think(rt, dialogue.think_time)  # a user does not start a new chat instantly

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
