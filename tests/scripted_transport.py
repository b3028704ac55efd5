"""A dialogue and a transport that needs no server, for the cases run in a gevent-patched Python (the plugin's,
tracing's)."""

from __future__ import annotations

import time

import gevent

from loadgen.errors import ConnectError
from loadgen.transports.base import Transport, TransportConfig
from loadgen.types import ChatRequest, Reply, Usage

#: A five-turn dialogue that plants a name and a code and probes both (turns 4 and 5), its slots fixed.
DIALOGUE = """\
name: plan
system: "You help {name}."
slots:
  name: {choice: [Zephyrine]}
  code: {choice: [QX-7781]}
turns:
  - user: "Hi, I am {name}."
    plant: [name]
  - user: "My code is {code}."
    plant: [code]
  - user: "Any news?"
  - user: "What was my code?"
    probe: [code]
  - user: "And my name?"
    probe: [name]
"""


class ScriptedTransport(Transport):
    """Replies with every message it was sent (so a fact in the history is "remembered"): a reply of 3 tokens, its
    first 1 ms and its end 2 ms after the send. Raises ConnectError at the sends in ``fail_at``, forgets
    everything at those in ``forget_at`` (1-based, counted per send), and with ``hang`` waits 60 s at send 3 (for
    the test to cut it off)."""

    name = "rest"
    schemes = ("http",)

    def __init__(self, fail_at: tuple[int, ...] = (), forget_at: tuple[int, ...] = (), hang: bool = False) -> None:
        super().__init__(TransportConfig(target="http://scripted"))
        self.fail_at, self.forget_at, self.hang = fail_at, forget_at, hang
        self.requests: list[ChatRequest] = []

    def _send(self, request: ChatRequest, turn_timeout: float) -> Reply:
        self.requests.append(request)
        k = len(self.requests)
        if self.hang and k == 3:
            gevent.sleep(60)
        if k in self.fail_at:
            raise ConnectError(f"refused at send {k}")
        text = "no idea" if k in self.forget_at else " | ".join(m.content for m in request.messages)
        now = time.perf_counter()
        return Reply(text, t_sent=now, t_done=now + 0.002, chunk_times=[now + 0.001], chunk_tokens=[3.0],
                     usage=Usage(40, 3))  # fmt: skip
