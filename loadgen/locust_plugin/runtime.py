"""Per-process state of a chat-loadgen run: options, dialogues, the recorder and (where reports are
written) the aggregator. Built once in Locust's ``init`` event, after any ``--processes`` fork.

:meth:`LoadgenRuntime.report` is the one call a user makes per finished turn: it fires exactly one Locust
``request`` event (request_type = transport, name = ``<dialogue>:turn<k>``, the exception a
:class:`~loadgen.errors.TransportError` or a :class:`~loadgen.errors.RetentionFailure`) and records the same turn
in our histograms, with no greenlet switch in between, so Locust's counts and ours always agree; then the turn
listeners run, each isolated from the others (:class:`~loadgen.locust_plugin.listeners.Listeners`). A turn whose
reply says the server lost the session fires with a :class:`SessionLost` exception (Locust counts it failed).

Each turn also goes to the process's :class:`~loadgen.metrics.outages.OutageRecorder` (``outages``): ``done`` is
``time.time()`` when the turn is reported and ``sent`` is ``done`` minus the turn's end-to-end time (the reply's
own ``perf_counter`` times are per process, wall-clock times merge across processes). A turn in flight when its
user is stopped is counted by :meth:`LoadgenRuntime.cut_off`.

When a test starts (:meth:`LoadgenRuntime.begin_test`, in every process: a worker reads the master's options by
then) the runtime learns the test's steady window (``--warmup``, ``--cooldown``, the planned run time) and its
``--slo`` objectives. A turn that started outside the steady window is recorded into a batch of its own
(``unsteady``) that only feeds the intervals: a worker ships it beside its figures, so the mark survives the trip
to the master. Each turn is checked against the SLOs where it ran (``slo.met``).

A user builds each turn's request with :meth:`LoadgenRuntime.request`: with Locust's ``--otel`` the turn's span
starts there and the request carries its trace context (:mod:`loadgen.telemetry.tracing`); off, it costs a
``None`` check.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from loadgen.adapters import with_adapter
from loadgen.datasets import DatasetError, open_dataset
from loadgen.datasets.replay import DatasetConversationFactory
from loadgen.datasets.tokens import token_counter
from loadgen.dialogues import ConversationFactory, load_dialogues
from loadgen.dialogues.accounting import TokenAccounting
from loadgen.dialogues.conversation import SESSION_LOST, TurnResult
from loadgen.dialogues.model import Dialogue
from loadgen.errors import ConfigError, RetentionFailure
from loadgen.load.slo import SloChecker
from loadgen.locust_plugin.listeners import Listeners
from loadgen.locust_plugin.options import LoadgenOptions, test_options
from loadgen.metrics.aggregator import RunAggregator
from loadgen.metrics.batch import MetricsBatch, Pause
from loadgen.metrics.histograms import Metric
from loadgen.metrics.keys import ALL, SeriesKey
from loadgen.metrics.outages import OutageRecorder
from loadgen.metrics.steady import SteadyWindow
from loadgen.metrics.turns import TurnOutcome, record_cut_off, record_turn
from loadgen.transports.base import TransportConfig
from loadgen.types import ChatRequest

if TYPE_CHECKING:
    from loadgen.dialogues import Conversation, Turn
    from loadgen.telemetry.tracing import TurnTracing

_GENERATOR_LAG_KEY = SeriesKey(ALL, ALL, 0, Metric.GENERATOR_LAG)


class SessionLost(Exception):
    """A turn's reply said the server did not know the conversation's session (what Locust records)."""


class RequestEvent(Protocol):
    """Locust's ``request`` event hook (``environment.events.request``)."""

    def fire(self, *, reverse: bool = False, **kwargs: Any) -> None: ...


@dataclass
class LoadgenRuntime:
    options: LoadgenOptions
    dialogues: list[Dialogue]
    factory: ConversationFactory | DatasetConversationFactory
    role: str  # "local" | "master" | "worker"
    request_event: RequestEvent
    pending: MetricsBatch = field(default_factory=MetricsBatch)  # what turns are recorded into now
    _spare: MetricsBatch = field(default_factory=MetricsBatch)  # the other of the two, swapped at each flush
    aggregator: RunAggregator | None = None
    outages: OutageRecorder = field(default_factory=OutageRecorder)
    #: Called with (outcome, conversation id) for every finished turn in the process that ran it.
    turn_listeners: Listeners[[TurnOutcome, str]] = field(default_factory=lambda: Listeners("turn"))
    #: Spans per conversation and turn with ``--otel`` (:mod:`loadgen.telemetry.tracing`); ``None``: off.
    tracing: TurnTracing | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: Turns started in the warm-up or cool-down: for the intervals only.
    unsteady: MetricsBatch = field(default_factory=MetricsBatch)
    #: The test's steady window (None before a test starts: every turn counts).
    steady: SteadyWindow | None = None
    #: The per-turn SLO check (None without --slo).
    slo: SloChecker | None = None

    def __post_init__(self) -> None:
        if self.slo is None and self.options.slo:
            self.slo = SloChecker(self.options.slo)

    def begin_test(self, parsed: Any, now: float) -> SteadyWindow:
        """A test starts at ``now``: its steady window and SLOs from ``parsed`` (a worker's are the master's by
        now); a :class:`ConfigError` if they are bad."""
        warmup_s, cooldown_s, objectives, run_s = test_options(parsed)
        self.steady = SteadyWindow(now, warmup_s, cooldown_s, run_s)
        self.slo = SloChecker(objectives) if objectives else None
        return self.steady

    def transport_config(self, host: str | None) -> TransportConfig:
        if not host:
            raise ConfigError("no target: give --host URL, or leave it out to use the embedded server")
        config = TransportConfig(
            target=host,
            timeout_s=self.options.turn_timeout,
            connect_timeout_s=self.options.connect_timeout,
            max_reply_bytes=self.options.max_reply_bytes,
            accept_unstreamed=self.options.accept_unstreamed,
            api_key=TransportConfig.api_key_from_env(),
            tls_verify=not self.options.tls_insecure,
            model=self.options.model,
        )
        return with_adapter(config, self.options.adapter)

    def request(self, conversation: Conversation, turn: Turn) -> ChatRequest:
        """The request of a conversation's turn; with tracing on its span starts here and the request carries
        its trace context."""
        request = conversation.request(turn)
        tracing = self.tracing
        return request if tracing is None else tracing.start_turn(conversation, turn, request)

    def report(
        self, result: TurnResult, *, schedule_lag_s: float, elapsed_s: float, user: str | None = None
    ) -> TurnOutcome:
        """One finished turn: one Locust request event and our own record (see the module doc). ``elapsed_s`` is
        Locust's response time of a turn with no reply (a reply's is its end-to-end time); ``user`` names the
        user across processes (for outages; the conversation id when not given)."""
        retention, reply, miss = result.retention, result.reply, result.retention_miss
        outcome = TurnOutcome(
            transport=self.options.transport,
            dialogue=result.dialogue,
            turn=result.turn,
            reply=reply,
            error=result.error,
            retention_checked=retention.checked if retention is not None else 0,
            retention_passed=miss is None,
            retention_reason=miss,
            schedule_lag_s=max(0.0, schedule_lag_s),
            session_lost=SESSION_LOST if result.session_lost else None,
            retention_detail=result.retention_detail,
            tokens=result.tokens,
        )
        took_s = reply.e2e_s() if reply is not None else elapsed_s
        exception: Exception | None = result.error
        if miss is not None:
            exception = RetentionFailure(miss)
        elif outcome.session_lost is not None:
            exception = SessionLost(outcome.session_lost)
        self.request_event.fire(
            request_type=outcome.transport,
            name=f"{outcome.dialogue}:turn{outcome.turn}",
            response_time=took_s * 1000.0,
            response_length=len(reply.text) if reply is not None else 0,
            exception=exception,
            context={"conversation_id": result.conversation_id},
        )
        self.record(outcome, user or result.conversation_id, took_s, result.conversation_id)
        return outcome

    def record(self, outcome: TurnOutcome, user: str, took_s: float, conversation_id: str) -> None:
        """Our record of a turn Locust has been told of: histograms, the outage recorder, the turn listeners."""
        done = time.time()
        steady = self.steady
        batch = self.pending if steady is None or steady.is_steady(done - took_s) else self.unsteady
        record_turn(batch, outcome, self.slo)
        self.outages.turn(outcome.transport, user, done - took_s, done, outcome.reply is not None)
        self.turn_listeners.fire(outcome, conversation_id)

    def cut_off(self) -> None:
        """A turn in flight when its user was stopped (the end of the run): counted, not lost."""
        record_cut_off(self.pending, self.options.transport)

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

    def take_unsteady_wire(self) -> dict[str, Any] | None:
        """This process's warm-up and cool-down turns since the last report, encoded; None when there were none."""
        batch = self.unsteady.take()
        return None if batch.is_empty() else batch.to_wire()

    def take_outages_wire(self) -> dict[str, Any]:
        """This process's outage events since the last report, for the master."""
        return self.outages.take_wire()

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
            self.aggregator.merge_unsteady(self.unsteady.take())
            self.aggregator.merge_outages_wire(self.outages.take_wire())


def runner_role(runner: Any) -> str:
    """ "worker", "master" or "local" (the only process) for a Locust runner."""
    from locust.runners import MasterRunner, WorkerRunner

    if isinstance(runner, WorkerRunner):
        return "worker"
    if isinstance(runner, MasterRunner):
        return "master"
    return "local"


_runtime: LoadgenRuntime | None = None


def _dataset_factory(options: LoadgenOptions, paths: tuple[str, ...]) -> DatasetConversationFactory:
    """Open the dataset (read through once: a bad line stops the run here) and hand out its conversations."""
    try:
        feed = open_dataset(paths)
    except DatasetError as exc:
        raise ConfigError(f"--dataset {exc}") from None
    return DatasetConversationFactory(
        feed,
        seed=options.seed,
        locale=options.locale,
        settings=options.request_settings(),
        prefixes=options.shared_prefixes(),
        plant_probes=options.plant_probes,
        recorded_history=options.dataset_history == "recorded",
    )


def build_runtime(parsed_options: Any, role: str, request_event: RequestEvent) -> LoadgenRuntime:
    """The process's runtime (options validated, dialogues loaded: :class:`ConfigError` if either is bad)."""
    global _runtime
    options = LoadgenOptions.from_parsed(parsed_options)
    dialogues: list[Dialogue] = []
    factory: ConversationFactory | DatasetConversationFactory
    if options.dataset_paths is not None:
        factory = _dataset_factory(options, options.dataset_paths)
    else:
        dialogues = load_dialogues(options.dialogue_paths, locale=options.locale)
        factory = ConversationFactory(
            dialogues,
            seed=options.seed,
            locale=options.locale,
            settings=options.request_settings(),
            prefixes=options.shared_prefixes(),
            accounting=token_accounting(options, dialogues),
        )
    aggregator = None
    if role != "worker":
        aggregator = RunAggregator(
            interval_s=options.interval_s,
            drift_window_s=options.drift_window_s,
            run_s=getattr(parsed_options, "run_time", None) or None,
            turn_timeout_s=options.turn_timeout,
        )
    _runtime = LoadgenRuntime(
        options=options,
        dialogues=dialogues,
        factory=factory,
        role=role,
        request_event=request_event,
        aggregator=aggregator,
    )
    return _runtime


def token_accounting(options: LoadgenOptions, dialogues: list[Dialogue]) -> TokenAccounting | None:
    """The run's token accounting: on with a token-length shape (the command line's or a dialogue's) or a
    ``--tokenizer`` file (read now: a bad one is a :class:`ConfigError` before load starts); None: off."""
    shape = options.token_shape()
    if not shape and options.tokenizer is None and not any(d.shape for d in dialogues):
        return None
    return TokenAccounting(token_counter(options.tokenizer), shape, options.token_tolerance)


#: How long a worker's first test start waits for the process's ``init`` (see :func:`await_runtime`).
INIT_WAIT_S = 60.0


def await_runtime(timeout_s: float = INIT_WAIT_S) -> LoadgenRuntime:
    """The runtime, waiting for it while this process's ``init`` has not built it yet: a worker that joins a
    running test is handed its users (and its test start) by the master as soon as it connects, which is before
    Locust fires ``init`` in it. Waits by sleeping (a gevent sleep in a Locust process), so ``init`` can run."""
    deadline = time.monotonic() + timeout_s
    while _runtime is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return get_runtime()


def get_runtime() -> LoadgenRuntime:
    if _runtime is None:
        raise RuntimeError("chat-loadgen runtime not initialised: import loadgen.locust_plugin in the locustfile")
    return _runtime


def reset_runtime() -> None:
    global _runtime
    _runtime = None
