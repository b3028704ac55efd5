"""Transports that break the contract one way each (subclasses of the REST transport), for the kit to catch.

Importable by name (``tests.testing.broken:Class``) so that the kit's gevent process can load them too.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable

from loadgen.errors import ConnectError, ProtocolError, TransportError, TurnTimeout
from loadgen.transports.rest import RestTransport
from loadgen.types import ChatRequest, Reply


class HoldsChunksBack(RestTransport):
    """Stamps every chunk when the reply ended (the classic buffered read: TTFT reads as e2e)."""

    def _send(self, request: ChatRequest, turn_timeout: float) -> Reply:
        reply = super()._send(request, turn_timeout)
        reply.chunk_times = [reply.t_done] * len(reply.chunk_times)
        return reply


class LateSent(RestTransport):
    """Takes ``t_sent`` when the first chunk came (TTFT near zero, earlier than the server can send)."""

    def _send(self, request: ChatRequest, turn_timeout: float) -> Reply:
        reply = super()._send(request, turn_timeout)
        if reply.chunk_times:
            reply.t_sent = reply.t_first_byte = reply.chunk_times[0] - 0.0001
        return reply


class FirstByteAfterDone(RestTransport):
    """Stamps ``t_first_byte`` after ``t_done``."""

    def _send(self, request: ChatRequest, turn_timeout: float) -> Reply:
        reply = super()._send(request, turn_timeout)
        reply.t_first_byte = reply.t_done + 0.01
        return reply


class RefusedIsProtocol(RestTransport):
    """Reports a refused connection as a protocol error."""

    def _send(self, request: ChatRequest, turn_timeout: float) -> Reply:
        try:
            return super()._send(request, turn_timeout)
        except ConnectError as exc:
            raise ProtocolError(exc.reason) from exc


class TimesOutAfterTheFact(RestTransport):
    """Reads the whole reply, then says it timed out if it took too long (a timeout that bounds nothing)."""

    def _send(self, request: ChatRequest, turn_timeout: float) -> Reply:
        reply = super()._send(request, 60.0)
        if reply.e2e_s() > turn_timeout:
            raise TurnTimeout(f"turn exceeded its timeout ({turn_timeout:g}s)")
        return reply


class DropsSession(RestTransport):
    """Leaves the session id out (server history mode loses the conversation)."""

    def _send(self, request: ChatRequest, turn_timeout: float) -> Reply:
        return super()._send(dataclasses.replace(request, session_id=None), turn_timeout)


class LastMessageOnly(RestTransport):
    """Sends the last message only (client history mode loses the conversation)."""

    def _send(self, request: ChatRequest, turn_timeout: float) -> Reply:
        return super()._send(dataclasses.replace(request, messages=request.messages[-1:]), turn_timeout)


class LeaksKey(RestTransport):
    """Overrides ``send`` (skipping the base class's scrubbing) and puts its key in a reason."""

    def send(self, request: ChatRequest, *, timeout: float | None = None) -> Reply:
        try:
            return self._send(request, timeout or self.config.timeout_s)
        except TransportError as exc:
            raise type(exc)(f"{exc.reason} (sent key {self.config.api_key})") from exc

    def secrets(self) -> Iterable[str | None]:
        return ()


class BlocksTheHub(RestTransport):
    """Waits 1.5 s with the original (unpatched) sleep before each turn: every other greenlet stops meanwhile."""

    def _send(self, request: ChatRequest, turn_timeout: float) -> Reply:
        try:
            from gevent import monkey

            blocking_sleep = monkey.get_original("time", "sleep")
        except ImportError:  # pragma: no cover - gevent is installed with Locust
            blocking_sleep = time.sleep
        blocking_sleep(1.5)
        return super()._send(request, turn_timeout)
