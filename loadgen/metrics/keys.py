"""The names of series, built and parsed in this one place: what a histogram or a counter is about.

A series is a :class:`SeriesKey`: transport x dialogue x turn x metric name. On the wire and in a run folder
(``histograms.json``, ``intervals.json``) it is written ``transport|dialogue|turn|metric``; ``*`` (:data:`ALL`)
stands for all transports or all dialogues, turn 0 for all turns. A metric name is one of:

- a histogram :class:`Metric`: ``e2e``, ``ttft``, ``itl``, ``tpot``, ``e2e_from_intended``, ``schedule_lag``,
  ``generator_lag`` (microseconds), ``prompt_tokens``, ``output_tokens`` (tokens);
- a :class:`ContextMetric`, a latency histogram of one prompt-length bucket: ``<metric>@ctx<bucket>``, e.g.
  ``e2e@ctx<512`` (buckets :data:`CONTEXT_BUCKETS`, of the per-transport aggregate series only);
- a :class:`Count`, an integer counter: ``count`` (turns), ``failures`` (all failed turns, equal to Locust's
  failures), ``failures.transport``, ``failures.retention``, ``failures.session``, ``retention.checked``,
  ``retention.passed``, ``prompt_tokens``, ``cut_off`` (turns in flight when their user was stopped), ``slo.met``
  (turns that met every per-turn SLO of ``--slo``), the open model's ``arrivals``, ``arrivals.started``,
  ``arrivals.dropped``, ``arrivals.live_ms``, ``arrivals.live_max``, ``arrivals.dispatch_ms``, ``arrivals.run_ms``,
  ``arrivals.requested_milli``, ``arrivals.dispatchers``, and ``tokens.by_usage`` / ``tokens.by_tokenizer`` /
  ``tokens.by_estimate`` (replies whose tokens that source counted), ``tokens.short_reply``,
  ``tokens.usage_mismatch`` (token accounting, :mod:`loadgen.dialogues.accounting`);
- a :class:`Total`, a sum that may hold fractions: ``output_tokens`` (a reply's tokens may be estimated);
- a :class:`FailureReason`, an integer counter per reason a turn failed: ``reason:<kind>:<text>``, the kind being
  the error's class name (``TurnTimeout``, ``ServerError``, ..., ``RetentionFailure``), the text cut at
  :data:`REASON_CHARS` characters.

Counts and totals share the wire's counter map; :func:`is_total` says which of the two a counter name is.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

#: Stands for "all dialogues" / "all transports" in a key (run-level and per-transport aggregates).
ALL = "*"
#: Longest reason text kept in a :class:`FailureReason` counter name.
REASON_CHARS = 200


class Metric(enum.StrEnum):
    """What a histogram holds."""

    E2E = "e2e"  # end-to-end latency of a turn (sent -> last byte)
    TTFT = "ttft"  # time to first token
    ITL = "itl"  # inter-token latency, per token, excluding the time to first token
    TPOT = "tpot"  # time per output token of a turn: (e2e - ttft) / (output tokens - 1), one sample per turn
    E2E_FROM_INTENDED = "e2e_from_intended"  # e2e + schedule lag: from when the turn was meant to start
    SCHEDULE_LAG = "schedule_lag"  # when a turn started minus when it was meant to start
    GENERATOR_LAG = "generator_lag"  # lateness of a 10 ms ticking greenlet: the load generator's own lag
    PROMPT_TOKENS = "prompt_tokens"  # a count, not microseconds
    OUTPUT_TOKENS = "output_tokens"  # a count, not microseconds


class Count(enum.StrEnum):
    """Integer counters of a series."""

    TURNS = "count"
    FAILURES = "failures"  # transport failures and retention misses: Locust's failures
    TRANSPORT_FAILURES = "failures.transport"
    RETENTION_FAILURES = "failures.retention"
    SESSION_FAILURES = "failures.session"  # the server did not know the session (not "the model forgot")
    RETENTION_CHECKED = "retention.checked"  # turns that probed a planted fact
    RETENTION_PASSED = "retention.passed"
    PROMPT_TOKENS = "prompt_tokens"
    CUT_OFF = "cut_off"  # turns in flight when their user was stopped (a transport's aggregate series only)
    SLO_MET = "slo.met"  # turns that met every per-turn SLO (--slo) in scope; a failed turn never does
    # the open model (--arrival-rate), a transport's aggregate series only: see loadgen.load.dispatcher
    ARRIVALS = "arrivals"  # conversations due to start (offered)
    ARRIVALS_STARTED = "arrivals.started"  # handed to an idle slot
    ARRIVALS_DROPPED = "arrivals.dropped"  # due while every slot was busy: dropped, never delayed
    ARRIVALS_LIVE_MS = "arrivals.live_ms"  # live conversations integrated over time (conversation-milliseconds)
    ARRIVALS_LIVE_MAX = "arrivals.live_max"  # the sum of each process's highest live count
    ARRIVALS_DISPATCH_MS = "arrivals.dispatch_ms"  # how long the processes' dispatchers ran, summed (milliseconds)
    ARRIVALS_DISPATCHERS = "arrivals.dispatchers"  # how many processes dispatched arrivals
    # the run's dispatching time: each process's, divided by how many processes shared the rate meanwhile, summed
    ARRIVALS_RUN_MS = "arrivals.run_ms"
    # the arrivals the run asked for, in thousandths: each process's rate integrated over its dispatching time
    ARRIVALS_REQUESTED_MILLI = "arrivals.requested_milli"
    TOKENS_BY_USAGE = "tokens.by_usage"  # replies counted by the server's usage ...
    TOKENS_BY_TOKENIZER = "tokens.by_tokenizer"  # ... by a local tokenizer file (--tokenizer) ...
    TOKENS_BY_ESTIMATE = "tokens.by_estimate"  # ... by an estimate
    SHORT_REPLY = "tokens.short_reply"  # replies shorter than the length asked (--output-tokens)
    USAGE_MISMATCH = "tokens.usage_mismatch"  # the server's usage disagreed with the local count


class Total(enum.StrEnum):
    """Counters that sum fractions."""

    OUTPUT_TOKENS = "output_tokens"


#: Prompt-length buckets for "latency by context length": (upper limit in tokens, label), then the last label.
CONTEXT_BUCKETS: tuple[tuple[int, str], ...] = ((512, "<512"), (2048, "512-2k"), (4096, "2k-4k"))
LAST_CONTEXT_BUCKET = ">4k"
#: Bucket labels in display order.
CONTEXT_BUCKET_ORDER: tuple[str, ...] = (*(label for _, label in CONTEXT_BUCKETS), LAST_CONTEXT_BUCKET)


def context_bucket(prompt_tokens: int) -> str:
    """The label of the bucket ``prompt_tokens`` falls in."""
    for limit, label in CONTEXT_BUCKETS:
        if prompt_tokens < limit:
            return label
    return LAST_CONTEXT_BUCKET


@dataclass(frozen=True, slots=True)
class ContextMetric:
    """A latency histogram of the turns whose prompt fell in one bucket: ``<metric>@ctx<bucket>``."""

    metric: Metric
    bucket: str

    SEPARATOR: ClassVar[str] = "@ctx"

    def __str__(self) -> str:
        return f"{self.metric}{self.SEPARATOR}{self.bucket}"

    @classmethod
    def parse(cls, name: str) -> ContextMetric | None:
        """The context metric ``name`` spells, or None when it is no such name."""
        metric, sep, bucket = name.partition(cls.SEPARATOR)
        if not sep or metric not in _METRICS:
            return None
        return cls(Metric(metric), bucket)


@dataclass(frozen=True, slots=True)
class FailureReason:
    """A counter of the turns that failed for one reason: ``reason:<kind>:<text>``."""

    kind: str  # the error's class name, e.g. TurnTimeout, ServerError, RetentionFailure
    text: str

    PREFIX: ClassVar[str] = "reason:"

    @classmethod
    def of(cls, kind: str, text: str) -> FailureReason:
        """The reason as counted: its text cut at :data:`REASON_CHARS` characters."""
        return cls(kind, text[:REASON_CHARS])

    def __str__(self) -> str:
        return f"{self.PREFIX}{self.kind}:{self.text}"

    def label(self) -> str:
        """How a report shows it: ``Kind: text``."""
        return f"{self.kind}: {self.text}"

    @classmethod
    def parse(cls, name: str) -> FailureReason | None:
        """The reason ``name`` spells, or None when it is no reason counter's name."""
        if not name.startswith(cls.PREFIX):
            return None
        kind, _, text = name[len(cls.PREFIX) :].partition(":")
        return cls(kind, text)


#: Every kind of metric name a key can carry.
MetricName = Metric | ContextMetric | Count | Total | FailureReason

_METRICS = frozenset(m.value for m in Metric)
_TOTALS = frozenset(t.value for t in Total)


def histogram_metric(name: str) -> Metric | None:
    """The :class:`Metric` a histogram of ``name`` measures (a context metric's own), or None if unknown."""
    if name in _METRICS:
        return Metric(name)
    context = ContextMetric.parse(name)
    return None if context is None else context.metric


def is_total(name: str) -> bool:
    """Whether the counter ``name`` is a :class:`Total` (a float sum) rather than an integer count."""
    return name in _TOTALS


@dataclass(frozen=True, order=True, slots=True)
class SeriesKey:
    transport: str
    dialogue: str
    turn: int  # 1-based turn index; 0 for aggregates over all turns
    metric: str  # a metric name, as str(MetricName) spells it

    def encode(self) -> str:
        return f"{self.transport}|{self.dialogue}|{self.turn}|{self.metric}"

    @staticmethod
    def decode(text: str) -> SeriesKey:
        transport, dialogue, turn, metric = text.split("|", 3)
        return SeriesKey(transport, dialogue, int(turn), metric)

    def turn_key(self) -> tuple[str, str, int]:
        return (self.transport, self.dialogue, self.turn)

    def with_metric(self, metric: MetricName) -> SeriesKey:
        return SeriesKey(self.transport, self.dialogue, self.turn, str(metric))

    @staticmethod
    def series(transport: str, dialogue: str = ALL, turn: int = 0) -> SeriesKey:
        """The key of a series with no metric yet (``with_metric`` names one): by default a transport's aggregate."""
        return SeriesKey(transport, dialogue, turn, "")
