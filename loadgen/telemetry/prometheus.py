"""The run's figures as Prometheus metrics, read from the aggregator at scrape time.

:class:`RunCollector` is a custom collector: each scrape holds the aggregator still (as a checkpoint does:
:meth:`~loadgen.metrics.aggregator.RunAggregator.held`), reads its run totals, the very
:class:`~loadgen.metrics.batch.MetricsBatch` summary.json is written from, and lets go; so a scrape taken after the
last write of the run folder equals summary.json exactly. Live, it is as fresh as the aggregator: a single process
merges its own figures every second (or every ``--interval``), a master its workers' every report (3 s).

Labels: ``transport``, ``dialogue``, ``turn`` (1-based); a transport's aggregate over all dialogues and turns has
``dialogue="all", turn="all"``, and the load generator's own lag ``transport="all"`` too. Series per run: one set
per (transport, dialogue, turn) of the dialogues run, plus one per transport, so the count stays as small as the
dialogue files. Metrics (counters restart from 0 when a new test starts or the statistics are reset):

- ``chat_loadgen_turns_total``; ``chat_loadgen_failures_total{kind}`` with kind ``transport``, ``retention``,
  ``session`` (their sum is summary.json's ``failures``); ``chat_loadgen_retention_checked_total``,
  ``chat_loadgen_retention_passed_total``; ``chat_loadgen_output_tokens_total``, ``chat_loadgen_prompt_tokens_total``;
  ``chat_loadgen_cut_off_turns_total`` (per transport);
- a histogram ``chat_loadgen_<metric>_seconds`` for every latency :class:`~loadgen.metrics.keys.Metric` recorded
  (``e2e``, ``ttft``, ``itl``, ``tpot``, ``e2e_from_intended``, ``schedule_lag``, ``generator_lag``, and any the
  recorder adds), with the bounds of :data:`~loadgen.telemetry.buckets.LATENCY_BOUNDS_S`;
  ``chat_loadgen_turn_<metric>`` for the token ones (``prompt_tokens``, ``output_tokens`` per turn,
  :data:`~loadgen.telemetry.buckets.TOKEN_BOUNDS`);
- gauges ``chat_loadgen_users`` (Locust's running users: live conversations) and
  ``chat_loadgen_run_start_time_seconds`` (unix time the test started).

Latency by context length and failure reasons are left out (their labels would be free text or many more series).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric as Family
from prometheus_client.registry import Collector, CollectorRegistry

from loadgen.metrics.aggregator import RunAggregator
from loadgen.metrics.batch import PAUSE_EVERY, MetricsBatch, Pause
from loadgen.metrics.keys import ALL, Count, Metric, SeriesKey, Total
from loadgen.telemetry.buckets import LATENCY_BOUNDS_S, MICROSECONDS_PER_SECOND, TOKEN_BOUNDS, bucket_counts

PREFIX = "chat_loadgen_"
LABELS = ("transport", "dialogue", "turn")
#: What a label shows for "all" (a transport's aggregate: all dialogues, all turns).
ALL_LABEL = "all"
#: Counters whose name starts with this are failures of the kind that follows (``failures.transport``).
FAILURE_PREFIX = "failures."

#: Counter names (without prefix and ``_total``) and help texts; a counter the recorder adds later and this table
#: lacks is shown under its own name, dots as underscores.
COUNTERS: dict[str, tuple[str, str]] = {
    Count.TURNS: ("turns", "Turns finished, failed ones included."),
    Count.RETENTION_CHECKED: ("retention_checked", "Turns that probed a fact planted earlier in the conversation."),
    Count.RETENTION_PASSED: ("retention_passed", "Turns whose reply still knew the planted fact."),
    Count.PROMPT_TOKENS: ("prompt_tokens", "Prompt tokens the server reported."),
    Count.CUT_OFF: ("cut_off_turns", "Turns in flight when their user was stopped (not in the other figures)."),
    Total.OUTPUT_TOKENS: ("output_tokens", "Reply tokens (counted, or estimated where the server gives none)."),
}
#: Counters left out: all failures (the sum of the kinds shown).
SKIPPED_COUNTERS = frozenset({str(Count.FAILURES)})
_KNOWN_COUNTERS = frozenset(c.value for c in Count) | frozenset(t.value for t in Total)


def label_values(key: SeriesKey) -> tuple[str, str, str]:
    """The (transport, dialogue, turn) label values of a series."""
    return (
        ALL_LABEL if key.transport == ALL else key.transport,
        ALL_LABEL if key.dialogue == ALL else key.dialogue,
        str(key.turn) if key.turn else ALL_LABEL,
    )


def is_token_metric(metric: Metric) -> bool:
    """Whether a histogram counts tokens rather than microseconds."""
    return metric.value.endswith("_tokens")


@dataclass
class _HistogramRow:
    labels: tuple[str, str, str]
    cumulative: list[int]
    count: int
    total: float


@dataclass
class Snapshot:
    """What one scrape read from the run totals, in Prometheus units, ready to expose."""

    counters: dict[str, dict[tuple[str, ...], float]] = field(default_factory=dict)  # name -> labels -> value
    histograms: dict[Metric, list[_HistogramRow]] = field(default_factory=dict)

    @classmethod
    def read(cls, batch: MetricsBatch, pause: Pause | None = None) -> Snapshot:
        """Read ``batch`` (held still by the caller); ``pause`` is called between groups of histograms."""
        snap = cls()
        for counters in (batch.counts, batch.totals):
            for key, value in counters.items():
                snap._add_counter(key, float(value))
        metrics = {m.value: m for m in Metric}
        for i, (key, hist) in enumerate(batch.histograms.items(), 1):
            metric = metrics.get(key.metric)  # a context metric (e2e@ctx<512) is no Metric: left out
            if metric is not None:
                tokens = is_token_metric(metric)
                scale = 1 if tokens else MICROSECONDS_PER_SECOND
                row = _HistogramRow(
                    label_values(key),
                    bucket_counts(hist, TOKEN_BOUNDS if tokens else LATENCY_BOUNDS_S, scale),
                    hist.count,
                    hist.value_sum / scale,
                )
                snap.histograms.setdefault(metric, []).append(row)
            if pause is not None and i % PAUSE_EVERY == 0:
                pause()
        return snap

    def _add_counter(self, key: SeriesKey, value: float) -> None:
        name = key.metric
        if name in SKIPPED_COUNTERS:
            return
        labels: tuple[str, ...] = label_values(key)
        if name.startswith(FAILURE_PREFIX):
            family, labels = "failures", (*labels, name[len(FAILURE_PREFIX) :])
        elif name in COUNTERS:
            family = COUNTERS[name][0]
        elif name in _KNOWN_COUNTERS:
            family = name.replace(".", "_")
        else:
            return  # failure reasons: free text, left out
        self.counters.setdefault(family, {})[labels] = value

    def families(self) -> Iterator[Family]:
        """The counter and histogram families, in a stable order."""
        helps = {name: text for name, text in COUNTERS.values()}
        helps["failures"] = (
            "Failed turns by kind: transport, retention (the model forgot), session (lost by the server)."
        )
        for family in sorted(self.counters):
            rows = self.counters[family]
            labels = [*LABELS, "kind"] if family == "failures" else list(LABELS)
            counter = CounterMetricFamily(PREFIX + family, helps.get(family, family.replace("_", " ")), labels=labels)
            for values, value in sorted(rows.items()):
                counter.add_metric(list(values), value)
            yield counter
        for metric in sorted(self.histograms, key=str):
            tokens = is_token_metric(metric)
            name = f"{PREFIX}turn_{metric.value}" if tokens else f"{PREFIX}{metric.value}_seconds"
            bounds = TOKEN_BOUNDS if tokens else LATENCY_BOUNDS_S
            what = "tokens per turn" if tokens else "latency, seconds"
            help_text = f"{metric.value} {what} (from the run's HDR histograms)."
            histogram = HistogramMetricFamily(name, help_text, labels=list(LABELS))
            for row in sorted(self.histograms[metric], key=lambda r: r.labels):
                buckets = [(_bound(b), float(c)) for b, c in zip(bounds, row.cumulative, strict=True)]
                buckets.append(("+Inf", float(row.count)))
                histogram.add_metric(list(row.labels), buckets, row.total)
            yield histogram


def _bound(value: float) -> str:
    return repr(value)


class RunCollector(Collector):
    """Reads the run totals of ``aggregator()`` at each scrape (see the module doc). ``users()`` is Locust's
    running user count (None when unknown); ``pause`` (e.g. ``gevent.sleep(0)``) runs between groups of
    histograms while they are read, and after each family is formatted, so that a scrape of a big run never holds
    the users up for the whole of it."""

    def __init__(
        self,
        aggregator: Callable[[], RunAggregator | None],
        users: Callable[[], int | None] = lambda: None,
        pause: Pause | None = None,
    ) -> None:
        self._aggregator = aggregator
        self._users = users
        self._pause = pause

    def describe(self) -> Iterable[Family]:
        return []  # nothing to check at registration: the names are this module's own

    def collect(self) -> Iterator[Family]:
        agg = self._aggregator()
        if agg is not None:
            with agg.held():
                snapshot = Snapshot.read(agg.total, self._pause)
                started_at = agg.started_at
            for family in snapshot.families():
                yield family  # formatted by the exposition before the next one is asked for: pause after each
                if self._pause is not None:
                    self._pause()
            yield GaugeMetricFamily(PREFIX + "run_start_time_seconds", "Unix time the test started.", started_at)
        users = self._users()
        if users is not None:
            yield GaugeMetricFamily(PREFIX + "users", "Locust users running: live conversations.", users)


def registry_for(collector: RunCollector) -> CollectorRegistry:
    """A private registry holding ``collector`` only (never the process-wide default one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
