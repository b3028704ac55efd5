"""Service-level objectives (``--slo 'ttft.p99 < 500ms'``, repeatable): each turn checked against them, and each
one evaluated over a run's figures.

An objective is written in the threshold grammar (:mod:`loadgen.report.threshold_grammar`), restricted to a
latency bounded from above: ``[TRANSPORT.][DIALOGUE.][turnN.]METRIC.STAT < NUMBER UNIT`` (or ``<=``), METRIC one of
:data:`SLO_METRICS`. It is used twice:

- **per turn** (:class:`SloChecker`, in the process that ran the turn): the turn's own value of the metric against
  the bound, the statistic aside (``ttft.p99 < 500ms``: this turn's TTFT < 500 ms). A turn meets the SLO when it
  did not fail (a transport error, a lost session or a retention miss never meets it) and every objective whose
  scope covers it holds for it. A value the turn lacks fails its objective (no first token: no TTFT), except TPOT
  of a reply of fewer than 2 tokens (nothing to bound). ``itl`` objectives are not checked per turn (a turn has
  many gaps): they count in the evaluation below only. Met turns are counted as ``slo.met``: attainment =
  met / turns, goodput = met / the steady-state duration.
- **as written** (:func:`evaluate`): the statistic over the transport's steady-state histogram (the scope's series
  merged) against the bound: held true/false, null when there is no data (no data never holds).

``--slo`` is informative: it never changes the run's exit code by itself. A CI gate on it is a threshold
(``slo_attainment >= 99%``, ``goodput_per_s >= 5``, or the latency itself, ``ttft.p99 < 500ms``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loadgen.errors import ConfigError
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.histograms import TrackedHistogram
from loadgen.metrics.keys import ALL, Count, Metric, SeriesKey

#: The metrics an SLO may bound.
SLO_METRICS: tuple[str, ...] = (Metric.TTFT, Metric.E2E, Metric.TPOT, Metric.E2E_FROM_INTENDED, Metric.ITL)
#: The metrics a single turn is checked on (an ``itl`` objective is evaluated over the run only).
PER_TURN_METRICS: frozenset[str] = frozenset((Metric.TTFT, Metric.E2E, Metric.TPOT, Metric.E2E_FROM_INTENDED))
_EXAMPLE = "e.g. 'ttft.p99 < 500ms' or 'rest.turn2.e2e.p95 <= 2s'"


@dataclass(frozen=True)
class Objective:
    """One ``--slo`` expression, parsed."""

    text: str
    metric: str
    stat: str  # p50, p99, p999, max, mean
    quantile: float | None  # 0..1 for a pNN statistic
    op: str  # "<" or "<="
    bound_us: float
    transport: str | None = None
    dialogue: str | None = None
    turn: int | None = None

    def covers(self, transport: str, dialogue: str, turn: int) -> bool:
        """Whether a turn of (transport, dialogue, turn) is in this objective's scope."""
        return (
            (self.transport is None or self.transport == transport)
            and (self.dialogue is None or self.dialogue == dialogue)
            and (self.turn is None or self.turn == turn)
        )

    def holds(self, value_us: float) -> bool:
        return value_us < self.bound_us if self.op == "<" else value_us <= self.bound_us


def parse_objective(expression: str, *, flag: str = "--slo") -> Objective:
    """``expression`` as an :class:`Objective`; a :class:`ConfigError` of one line naming ``flag`` if it is none."""
    from loadgen.report.threshold_grammar import ThresholdError, parse_threshold  # the grammar imports reports

    try:
        t = parse_threshold(expression)
    except ThresholdError as exc:
        raise ConfigError(f"{flag} {expression!r}: {exc.problem}; {_EXAMPLE}") from exc
    if t.kind != "latency" or t.metric not in SLO_METRICS or t.stat is None:
        metrics = ", ".join(SLO_METRICS)
        raise ConfigError(f"{flag} {expression!r}: an SLO bounds a turn's latency ({metrics}); {_EXAMPLE}")
    if t.op not in ("<", "<="):
        raise ConfigError(f"{flag} {expression!r}: an SLO is an upper bound: use < or <=; {_EXAMPLE}")
    return Objective(t.text, t.metric, t.stat, t.quantile(), t.op, t.value, t.transport, t.dialogue, t.turn)


def parse_objectives(expressions: Iterable[str], *, flag: str = "--slo") -> tuple[Objective, ...]:
    return tuple(parse_objective(e, flag=flag) for e in expressions)


class SloChecker:
    """Whether one turn met every per-turn objective that covers it (see the module doc)."""

    def __init__(self, objectives: Sequence[Objective]) -> None:
        self.objectives = tuple(objectives)
        self._per_turn = tuple(o for o in self.objectives if o.metric in PER_TURN_METRICS)
        self._scoped: dict[tuple[str, str, int], tuple[Objective, ...]] = {}

    def met(self, transport: str, dialogue: str, turn: int, values: Mapping[str, int | None]) -> bool:
        """``values``: the turn's microseconds per metric (None: the turn has no such value; TPOT's None is met)."""
        key = (transport, dialogue, turn)
        scoped = self._scoped.get(key)
        if scoped is None:
            scoped = self._scoped[key] = tuple(o for o in self._per_turn if o.covers(*key))
        for objective in scoped:
            value = values.get(objective.metric)
            if value is None:
                if objective.metric == Metric.TPOT:
                    continue
                return False
            if not objective.holds(value):
                return False
        return True


def _scope_histogram(batch: MetricsBatch, o: Objective, transport: str) -> TrackedHistogram:
    """The objective's metric over its scope within ``transport``: the aggregate series, or the per-turn series of
    its dialogue and/or turn merged exactly."""
    out = TrackedHistogram(o.metric)
    if o.dialogue is None and o.turn is None:
        found = batch.histograms.get(SeriesKey(transport, ALL, 0, o.metric))
        if found is not None:
            out.add(found)
        return out
    for key, hist in batch.histograms.items():
        if key.metric != o.metric or key.transport != transport or key.dialogue == ALL:
            continue
        if (o.dialogue is None or key.dialogue == o.dialogue) and (o.turn is None or key.turn == o.turn):
            out.add(hist)
    return out


def _observed_us(hist: TrackedHistogram, o: Objective) -> float | None:
    if hist.count == 0:
        return None
    if o.stat == "max":
        return float(hist.max())
    if o.stat == "mean":
        return hist.mean()
    assert o.quantile is not None
    return float(hist.quantiles([o.quantile])[o.quantile])


def _transports(batch: MetricsBatch) -> list[str]:
    return sorted({k.transport for k in batch.counts if k.metric == Count.TURNS and k.transport != ALL})


def evaluate(objectives: Sequence[Objective], batch: MetricsBatch) -> dict[str, Any]:
    """summary.json's top-level ``slo`` block: each objective as written, per transport of ``batch``.
    ``held`` of a transport: false if any check failed, else null if any had no data, else true."""
    transports: dict[str, Any] = {}
    for transport in _transports(batch):
        checks = []
        for o in objectives:
            if o.transport is not None and o.transport != transport:
                continue
            value = _observed_us(_scope_histogram(batch, o, transport), o)
            held = None if value is None else o.holds(value)
            checks.append({"objective": o.text, "value_ms": None if value is None else round(value / 1000.0, 3),
                           "held": held})  # fmt: skip
        verdicts = [c["held"] for c in checks]
        overall = False if False in verdicts else (None if None in verdicts or not verdicts else True)
        transports[transport] = {"held": overall, "checks": checks}
    return {"objectives": [o.text for o in objectives], "transports": transports}


def row_figures(met: int, count: int, duration_s: float) -> dict[str, Any]:
    """A summary row's ``slo``: met turns, attainment (met / turns) and goodput (met turns per steady second)."""
    return {
        "met": met,
        "attainment": round(met / count, 6) if count else None,
        "goodput_per_s": round(met / duration_s, 3) if duration_s > 0 else None,
    }
