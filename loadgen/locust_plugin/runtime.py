"""Per-process state of a chat-loadgen run: options, dialogues, the recorder and (where reports are
written) the aggregator. Built once in Locust's ``init`` event, after any ``--processes`` fork."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loadgen.dialogues import ConversationFactory, load_dialogues
from loadgen.dialogues.model import Dialogue
from loadgen.errors import ConfigError
from loadgen.locust_plugin.options import LoadgenOptions
from loadgen.metrics.aggregator import RunAggregator
from loadgen.metrics.batch import MetricsBatch, Pause
from loadgen.metrics.histograms import Metric
from loadgen.metrics.keys import ALL, SeriesKey
from loadgen.metrics.turns import TurnOutcome, record_turn
from loadgen.transports.base import TransportConfig

#: Called for every finished turn in the process that ran it (e.g. a per-turn JSONL log).
TurnListener = Callable[[TurnOutcome, str], None]

_GENERATOR_LAG_KEY = SeriesKey(ALL, ALL, 0, Metric.GENERATOR_LAG)


@dataclass
class LoadgenRuntime:
    options: LoadgenOptions
    dialogues: list[Dialogue]
    factory: ConversationFactory
    role: str  # "local" | "master" | "worker"
    pending: MetricsBatch = field(default_factory=MetricsBatch)  # what turns are recorded into now
    _spare: MetricsBatch = field(default_factory=MetricsBatch)  # the other of the two, swapped at each flush
    aggregator: RunAggregator | None = None
    turn_listeners: list[TurnListener] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def transport_config(self, host: str | None) -> TransportConfig:
        if not host:
            raise ConfigError("no target: give --host URL, or leave it out to use the embedded server")
        return TransportConfig(
            target=host,
            timeout_s=self.options.turn_timeout,
            connect_timeout_s=self.options.connect_timeout,
            api_key=TransportConfig.api_key_from_env(),
            tls_verify=not self.options.tls_insecure,
            model=self.options.model,
        )

    def record(self, outcome: TurnOutcome, conversation_id: str) -> None:
        record_turn(self.pending, outcome)
        for listener in self.turn_listeners:
            listener(outcome, conversation_id)

    def record_generator_lag(self, lag_us: int) -> None:
        self.pending.record(_GENERATOR_LAG_KEY, lag_us)

    def _swap_pending(self) -> MetricsBatch:
        """Hand over the batch turns were recorded into, and record into the spare one from now on: the
        handed-over batch can then be merged or encoded with pauses (``pause``) while users keep recording."""
        batch, self.pending = self.pending, self._spare
        return batch

    def _give_back(self, batch: MetricsBatch) -> None:
        batch.empty_in_place()  # keeps its histograms (and the recorder's handles to them) for reuse
        self._spare = batch

    def take_pending_wire(self, pause: Pause | None = None) -> dict[str, Any]:
        """This process's figures since the last report, encoded for the master; then start afresh."""
        with self._lock:
            batch = self._swap_pending()
            try:
                return batch.to_wire(pause=pause)
            finally:
                self._give_back(batch)

    def flush_local(self, pause: Pause | None = None) -> None:
        """Move this process's pending figures into its aggregator (single-process runs). One flush at a time:
        another waits for it (the lock is gevent's once Locust has patched ``threading``)."""
        if self.aggregator is None:
            return
        with self._lock:
            batch = self._swap_pending()
            try:
                self.aggregator.merge(batch, pause=pause)
            finally:
                self._give_back(batch)


def runner_role(runner: Any) -> str:
    """ "worker", "master" or "local" (the only process) for a Locust runner."""
    from locust.runners import MasterRunner, WorkerRunner

    if isinstance(runner, WorkerRunner):
        return "worker"
    if isinstance(runner, MasterRunner):
        return "master"
    return "local"


_runtime: LoadgenRuntime | None = None


def build_runtime(parsed_options: Any, role: str) -> LoadgenRuntime:
    global _runtime
    options = LoadgenOptions.from_parsed(parsed_options)
    dialogues = load_dialogues(options.dialogue_paths, locale=options.locale)
    factory = ConversationFactory(dialogues, seed=options.seed, locale=options.locale)
    aggregator = RunAggregator(interval_s=options.interval_s) if role != "worker" else None
    _runtime = LoadgenRuntime(options=options, dialogues=dialogues, factory=factory, role=role, aggregator=aggregator)
    return _runtime


def get_runtime() -> LoadgenRuntime:
    if _runtime is None:
        raise RuntimeError("chat-loadgen runtime not initialised: import loadgen.locust_plugin in the locustfile")
    return _runtime


def reset_runtime() -> None:
    global _runtime
    _runtime = None
