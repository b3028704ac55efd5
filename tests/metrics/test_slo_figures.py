"""TPOT, latency from the intended start, ``slo.met`` and goodput: from recorded turns to summary.json's figures."""

from __future__ import annotations

import pytest

from loadgen.errors import ConnectError
from loadgen.load.slo import SloChecker, parse_objectives
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.console import format_table
from loadgen.metrics.keys import ALL, Count, Metric, SeriesKey
from loadgen.metrics.summary import build_summary
from loadgen.metrics.turns import TurnOutcome, record_turn, tpot_us
from loadgen.types import Reply, Usage

AGG = SeriesKey("rest", ALL, 0, "")


def _reply(ttft_s: float, gaps: list[float], tokens: int | None = None, t0: float = 100.0) -> Reply:
    times = [t0 + ttft_s]
    for gap in gaps:
        times.append(times[-1] + gap)
    n = len(times) if tokens is None else tokens
    return Reply(text="x", t_sent=t0, t_done=times[-1], chunk_times=times, chunk_tokens=[1.0] * len(times),
                 usage=Usage(10, n))  # fmt: skip


def _value_us(batch: MetricsBatch, metric: Metric, key: SeriesKey = AGG) -> float:
    hist = batch.histograms[key.with_metric(metric)]
    assert hist.count == 1
    return hist.mean()


@pytest.mark.parametrize(
    ("e2e_s", "ttft_s", "tokens", "expected_us"),
    [(1.050, 0.050, 11, 100_000), (0.250, 0.050, 2, 200_000), (0.5, 0.1, 1, None), (0.5, None, 10, None)],
)
def test_tpot_is_the_stream_after_the_first_token_over_the_tokens_after_it(
    e2e_s: float, ttft_s: float | None, tokens: int, expected_us: int | None
) -> None:
    assert tpot_us(e2e_s, ttft_s, tokens) == expected_us


def test_a_turn_records_its_tpot_and_its_latency_from_the_intended_start() -> None:
    batch = MetricsBatch()
    reply = _reply(0.040, [0.020] * 5)  # 6 tokens: e2e 140 ms, TPOT (140 - 40) / 5 = 20 ms
    record_turn(batch, TurnOutcome("rest", "d", 1, reply, schedule_lag_s=0.300))
    for key in (AGG, SeriesKey("rest", "d", 1, "")):
        assert _value_us(batch, Metric.TPOT, key) == pytest.approx(20_000, rel=1e-3)
        e2e = _value_us(batch, Metric.E2E, key)
        assert e2e == pytest.approx(140_000, rel=1e-3)
        # from the intended start: the service time plus how late the turn started
        assert _value_us(batch, Metric.E2E_FROM_INTENDED, key) == pytest.approx(e2e + 300_000, rel=1e-3)


def test_latency_from_the_intended_start_is_never_below_the_service_time() -> None:
    batch = MetricsBatch()
    for i, lag in enumerate((0.0, 0.002, 0.5, 3.0)):
        record_turn(batch, TurnOutcome("rest", "d", 1, _reply(0.01 * (i + 1), [0.01] * 3), schedule_lag_s=lag))
    intended = batch.histograms[AGG.with_metric(Metric.E2E_FROM_INTENDED)]
    e2e = batch.histograms[AGG.with_metric(Metric.E2E)]
    assert intended.count == e2e.count == 4
    for q in (0.25, 0.5, 0.99):
        assert intended.quantiles([q])[q] >= e2e.quantiles([q])[q]
    assert intended.max() >= 3_000_000 > e2e.max()


def test_a_one_token_reply_and_a_failed_turn_have_no_tpot() -> None:
    batch = MetricsBatch()
    record_turn(batch, TurnOutcome("rest", "d", 1, _reply(0.05, [])))  # one token
    record_turn(batch, TurnOutcome("rest", "d", 1, None, error=ConnectError("refused"), schedule_lag_s=1.0))
    assert batch.histograms[AGG.with_metric(Metric.TPOT)].count == 0
    assert batch.histograms[AGG.with_metric(Metric.E2E_FROM_INTENDED)].count == 1  # the failed turn has none


def _slo(*expressions: str) -> SloChecker:
    return SloChecker(parse_objectives(expressions))


def test_slo_met_counts_the_turns_that_met_every_objective_in_their_scope() -> None:
    batch = MetricsBatch()
    slo = _slo("ttft.p99 < 100ms", "tpot.p99 <= 20ms", "d.turn2.e2e.max < 150ms")
    record_turn(batch, TurnOutcome("rest", "d", 1, _reply(0.050, [0.010] * 4)), slo)  # met
    record_turn(batch, TurnOutcome("rest", "d", 1, _reply(0.150, [0.010] * 4)), slo)  # TTFT too slow
    record_turn(batch, TurnOutcome("rest", "d", 1, _reply(0.050, [0.030] * 4)), slo)  # TPOT 30 ms too slow
    record_turn(batch, TurnOutcome("rest", "d", 2, _reply(0.050, [0.010] * 4)), slo)  # e2e 90 ms: met
    record_turn(batch, TurnOutcome("rest", "d", 2, _reply(0.050, [0.020] * 6)), slo)  # e2e 170 ms >= 150 ms
    record_turn(batch, TurnOutcome("rest", "d", 1, _reply(0.050, [])), slo)  # one token: no TPOT to bound, met
    record_turn(batch, TurnOutcome("rest", "d", 1, None, error=ConnectError("refused")), slo)  # failed: never met
    missed = TurnOutcome("rest", "d", 1, _reply(0.01, [0.01]), retention_checked=1, retention_passed=False)
    record_turn(batch, missed, slo)  # a retention miss is a failed turn
    assert batch.counts[AGG.with_metric(Count.SLO_MET)] == 3
    assert batch.counts[SeriesKey("rest", "d", 1, str(Count.SLO_MET))] == 2
    assert batch.counts[SeriesKey("rest", "d", 2, str(Count.SLO_MET))] == 1
    assert batch.counts[AGG.with_metric(Count.TURNS)] == 8


def test_without_slos_no_turn_is_counted_as_met() -> None:
    batch = MetricsBatch()
    record_turn(batch, TurnOutcome("rest", "d", 1, _reply(0.05, [0.01])))
    assert AGG.with_metric(Count.SLO_MET) not in batch.counts


def test_goodput_and_attainment_in_the_summary_are_over_the_steady_state() -> None:
    batch = MetricsBatch()
    objectives = parse_objectives(["ttft.p99 < 100ms"])
    slo = SloChecker(objectives)
    for ttft in (0.05,) * 30 + (0.2,) * 10:
        record_turn(batch, TurnOutcome("rest", "d", 1, _reply(ttft, [0.01] * 3)), slo)
    run = {"duration_s": 30.0, "steady": {"start": 10.0, "end": 30.0, "duration_s": 20.0}}
    summary = build_summary(batch, run, slo=objectives)
    agg = summary["transports"]["rest"]
    assert agg["slo"] == {"met": 30, "attainment": 0.75, "goodput_per_s": 1.5}  # 30 met turns / 20 s
    assert agg["turns_per_s"] == 2.0  # 40 turns over the 20 steady seconds, not the run's 30
    assert summary["turns"][0]["slo"]["met"] == 30
    verdict = summary["slo"]["transports"]["rest"]
    assert summary["slo"]["objectives"] == ["ttft.p99 < 100ms"]
    assert verdict["held"] is False  # the p99 TTFT is 200 ms
    assert verdict["checks"][0]["value_ms"] == pytest.approx(200.0, rel=1e-2)
    lines = format_table(summary).splitlines()
    assert any(line.startswith("SLO rest: goodput 1.50 turns/s of 2.00 turns/s, attainment 75.0%") for line in lines)


def test_without_slos_the_summary_has_no_slo_figures() -> None:
    batch = MetricsBatch()
    record_turn(batch, TurnOutcome("rest", "d", 1, _reply(0.05, [0.01])))
    summary = build_summary(batch, {"duration_s": 10.0})
    assert "slo" not in summary and "slo" not in summary["transports"]["rest"]
    assert summary["transports"]["rest"]["tpot_ms"]["count"] == 1
    assert summary["transports"]["rest"]["turns_per_s"] == 0.1  # no steady block: over the run's duration
