"""``--slo`` objectives: parsed from the threshold grammar, one line for a bad one, checked per turn, evaluated
over a run's histograms."""

from __future__ import annotations

import pytest

from loadgen.errors import ConfigError
from loadgen.load.slo import SloChecker, evaluate, parse_objective, parse_objectives, row_figures
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.keys import ALL, Count, Metric, SeriesKey


def test_an_objective_keeps_its_scope_bound_and_statistic() -> None:
    o = parse_objective("rest.travel.turn2.e2e_from_intended.p95 <= 2s")
    assert (o.transport, o.dialogue, o.turn, o.metric, o.stat, o.op) == ("rest", "travel", 2, "e2e_from_intended",
                                                                         "p95", "<=")  # fmt: skip
    assert o.bound_us == 2_000_000 and o.quantile == pytest.approx(0.95)
    assert o.covers("rest", "travel", 2) and not o.covers("grpc", "travel", 2) and not o.covers("rest", "travel", 1)
    assert o.holds(2_000_000) and not parse_objective("ttft.p99 < 2s").holds(2_000_000)


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("errors < 1%", "an SLO bounds a turn's latency"),
        ("generator_lag.p99 < 5ms", "an SLO bounds a turn's latency"),
        ("schedule_lag.p99 < 5ms", "an SLO bounds a turn's latency"),
        ("ttft.p99 > 5ms", "an SLO is an upper bound: use < or <="),
        ("ttft.p99 < 5", "needs a time unit"),
        ("ttft < 5ms", "needs a statistic"),
        ("nonsense", "no comparison operator"),
    ],
)
def test_a_bad_objective_is_one_line_naming_the_option(expression: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_objectives(["ttft.p99 < 500ms", expression])
    message = str(caught.value)
    assert message.startswith(f"--slo {expression!r}: ") and says in message
    assert "\n" not in message


def test_the_checker_reads_each_turns_own_values() -> None:
    slo = SloChecker(parse_objectives(["ttft.p99 < 100ms", "itl.p99 < 1ms", "grpc.e2e.p50 < 1ms"]))
    ok = {Metric.TTFT: 99_999, Metric.E2E: 5_000_000, Metric.TPOT: None, Metric.E2E_FROM_INTENDED: 5_000_000}
    assert slo.met("rest", "d", 1, ok)  # itl is not checked per turn; the grpc objective does not cover rest
    assert not slo.met("rest", "d", 1, {**ok, Metric.TTFT: 100_000})
    assert not slo.met("rest", "d", 1, {**ok, Metric.TTFT: None})  # no first token: TTFT not shown to be met
    assert not slo.met("grpc", "d", 1, ok)


def _batch(ttfts_ms: list[float], transport: str = "rest") -> MetricsBatch:
    batch = MetricsBatch()
    for value in ttfts_ms:
        batch.record(SeriesKey(transport, ALL, 0, Metric.TTFT), round(value * 1000))
        batch.record(SeriesKey(transport, "d", 1, Metric.TTFT), round(value * 1000))
        batch.counts[SeriesKey(transport, ALL, 0, str(Count.TURNS))] += 1
    return batch


def test_evaluate_reads_each_objective_as_written_per_transport() -> None:
    batch = _batch([10.0] * 97 + [900.0] * 3)
    batch.merge(_batch([10.0] * 10, transport="grpc"))
    objectives = parse_objectives(["ttft.p50 < 50ms", "ttft.p99 < 500ms", "d.turn1.ttft.max < 1s", "e2e.p99 < 1s"])
    block = evaluate(objectives, batch)
    assert block["objectives"] == [o.text for o in objectives]
    rest = block["transports"]["rest"]
    assert [c["held"] for c in rest["checks"]] == [True, False, True, None]  # e2e: no samples, never held
    assert rest["held"] is False
    assert rest["checks"][1]["value_ms"] == pytest.approx(900.0, rel=1e-2)
    grpc = block["transports"]["grpc"]
    assert [c["held"] for c in grpc["checks"]] == [True, True, True, None] and grpc["held"] is None
    only_ttft = evaluate(objectives[:2], batch)["transports"]["grpc"]
    assert only_ttft["held"] is True


def test_row_figures_arithmetic() -> None:
    assert row_figures(30, 40, 20.0) == {"met": 30, "attainment": 0.75, "goodput_per_s": 1.5}
    assert row_figures(0, 0, 0.0) == {"met": 0, "attainment": None, "goodput_per_s": None}
