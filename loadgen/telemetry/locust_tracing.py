"""Locust's ``--otel`` turns on the spans of :mod:`loadgen.telemetry.tracing` in every process that runs users.

A setup hook (:data:`loadgen.locust_plugin.events.setup_hooks`): with ``--otel`` a local run and each worker get a
:class:`~loadgen.telemetry.tracing.TurnTracing` on their runtime (each turn's span starts as its request is built,
:meth:`~loadgen.locust_plugin.runtime.LoadgenRuntime.request`), a turn listener that ends it when the turn is
reported, and a ``test_stop`` listener that ends the spans still open. A master runs no users: nothing. Without
``--otel`` nothing is imported and the runtime's ``tracing`` stays ``None``.
"""

from __future__ import annotations

from typing import Any

from loadgen.locust_plugin import events as loadgen_events
from loadgen.locust_plugin.runtime import LoadgenRuntime


def setup(environment: Any, rt: LoadgenRuntime, role: str, web_ui: Any = None) -> None:
    """Turn tracing on when Locust's ``--otel`` is (:class:`~loadgen.errors.ConfigError` if not installed)."""
    if role == "master" or not getattr(environment.parsed_options, "otel", False):
        return
    from loadgen.telemetry.tracing import turn_tracing

    tracing = rt.tracing = turn_tracing(rt.options.transport)
    rt.turn_listeners.add(tracing.end_turn)

    def end_open(**_: Any) -> None:
        tracing.end_open()

    environment.events.test_stop.add_listener(end_open)


loadgen_events.setup_hooks.append(setup)
