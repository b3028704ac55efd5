"""summary.json's figures (loadgen.metrics.summary) held to exact values: the latency and token blocks, every field
of a row from known counters and histograms, the duration rates are taken over, who counted the tokens, the token
and generator-lag warnings, the rows and buckets a summary holds and the ones it leaves out."""

from __future__ import annotations

from typing import Any

import pytest

from loadgen.load.slo import parse_objectives
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.histograms import TrackedHistogram
from loadgen.metrics.keys import ALL, Count, FailureReason, Metric, SeriesKey, Total
from loadgen.metrics.lag_advice import processes_advice
from loadgen.metrics.summary import (
    build_summary,
    cut_off_turns,
    figures_duration_s,
    lag_advice,
    latency_block,
    token_block,
    token_counting,
    token_warnings,
)

EMPTY_LATENCY = {"p50": None, "p95": None, "p99": None, "max": None, "mean": None, "count": 0, "out_of_range": 0}
EMPTY_TOKENS = {"p50": None, "p95": None, "p99": None, "max": None, "mean": None, "count": 0}


def _hist(metric: str, values: dict[int, int]) -> TrackedHistogram:
    hist = TrackedHistogram(metric)
    for value, n in values.items():
        hist.record(value, n)
    return hist


def test_a_latency_block_to_the_microsecond() -> None:
    assert latency_block(None) == EMPTY_LATENCY
    assert latency_block(TrackedHistogram(Metric.E2E)) == EMPTY_LATENCY
    hist = _hist(Metric.E2E, {1000: 1, 1001: 1, 1002: 1, 1003: 94, 1500: 2, 2000: 1})
    # mean: (1000 + 1001 + 1002 + 94 * 1003 + 3000 + 2000) / 100 = 1022.85 us
    assert latency_block(hist) == {
        "p50": 1.003,
        "p95": 1.003,
        "p99": 1.5,
        "max": 2.0,
        "mean": 1.023,
        "count": 100,
        "out_of_range": 0,
    }
    hist.record(10**13)  # above the hour
    hist.record(-3)
    block = latency_block(hist)
    assert block["out_of_range"] == 2 and block["count"] == 102


def test_a_token_block_in_tokens() -> None:
    assert token_block(None) == EMPTY_TOKENS
    assert token_block(TrackedHistogram(Metric.OUTPUT_TOKENS)) == EMPTY_TOKENS
    hist = _hist(Metric.OUTPUT_TOKENS, {10: 97, 11: 2, 40: 1})
    # mean (970 + 22 + 40) / 100 = 10.32
    assert token_block(hist) == {"p50": 10, "p95": 10, "p99": 11, "max": 40, "mean": 10.3, "count": 100}
    assert token_block(_hist(Metric.OUTPUT_TOKENS, {7: 1, 8: 1}))["mean"] == 7.5


@pytest.mark.parametrize(
    ("run", "seconds"),
    [
        ({"duration_s": 30, "steady": {"duration_s": 12}}, 12.0),
        ({"duration_s": 30, "steady": {"duration_s": 0}}, 0.0),
        ({"duration_s": 30, "steady": {"duration_s": None}}, 30.0),
        ({"duration_s": 30, "steady": {}}, 30.0),
        ({"duration_s": 30, "steady": 12}, 30.0),
        ({"duration_s": 30}, 30.0),
        ({"duration_s": None}, 0.0),
        ({}, 0.0),
    ],
)
def test_the_duration_rates_are_taken_over(run: dict[str, Any], seconds: float) -> None:
    got = figures_duration_s(run)
    assert got == seconds and type(got) is float


def _batch() -> MetricsBatch:
    """rest: 4 turns of dialogue d turn 1 (one failed on a timeout, one missed a fact, one a lost session), known
    counters and histograms; grpc: one turn; the generator's lag under the run-wide key."""
    batch = MetricsBatch()
    for series in (SeriesKey.series("rest", "d", 1), SeriesKey.series("rest")):
        counts = {
            Count.TURNS: 4,
            Count.FAILURES: 3,
            Count.TRANSPORT_FAILURES: 1,
            Count.RETENTION_FAILURES: 1,
            Count.SESSION_FAILURES: 1,
            Count.RETENTION_CHECKED: 3,
            Count.RETENTION_PASSED: 2,
            Count.PROMPT_TOKENS: 900,
            Count.SLO_MET: 1,
            Count.TOKENS_BY_USAGE: 1,
            Count.TOKENS_BY_TOKENIZER: 3,
            Count.TOKENS_BY_ESTIMATE: 0,
            Count.SHORT_REPLY: 2,
            Count.USAGE_MISMATCH: 1,
        }
        for name, n in counts.items():
            batch.counts[series.with_metric(name)] = n
        batch.counts[series.with_metric(FailureReason("TurnTimeout", "late"))] = 1
        batch.counts[series.with_metric(FailureReason("SessionLost", "evicted"))] = 1
        batch.counts[series.with_metric(FailureReason("RetentionFailure", "d turn 1"))] = 2
        batch.totals[series.with_metric(Total.OUTPUT_TOKENS)] = 30.25
        batch.record(series.with_metric(Metric.E2E), 500_000, 3)  # 1.5 s busy in all
        batch.record(series.with_metric(Metric.TTFT), 100_000, 3)
        batch.record(series.with_metric(Metric.PROMPT_TOKENS), 200, 3)
        batch.record(series.with_metric(Metric.OUTPUT_TOKENS), 10, 3)
    grpc = SeriesKey.series("grpc")
    batch.counts[grpc.with_metric(Count.TURNS)] = 1
    batch.counts[grpc.with_metric(Count.TOKENS_BY_USAGE)] = 1
    batch.record(grpc.with_metric(Metric.E2E), 2_000)
    return batch


ROW: dict[str, Any] = {
    "count": 4,
    "failures": 3,
    "failures_by_kind": {"transport": 1, "retention": 1, "session": 1},
    "failure_reasons": {"RetentionFailure: d turn 1": 2, "TurnTimeout: late": 1, "SessionLost: evicted": 1},
    # percentiles and max: the histogram's highest value equivalent to 500 ms (3 significant digits); the mean exact
    "e2e_ms": {
        "p50": 500.223,
        "p95": 500.223,
        "p99": 500.223,
        "max": 500.223,
        "mean": 500.0,
        "count": 3,
        "out_of_range": 0,
    },
    "ttft_ms": {
        "p50": 100.031,
        "p95": 100.031,
        "p99": 100.031,
        "max": 100.031,
        "mean": 100.0,
        "count": 3,
        "out_of_range": 0,
    },
    "itl_ms": EMPTY_LATENCY,
    "tpot_ms": EMPTY_LATENCY,
    "e2e_from_intended_ms": EMPTY_LATENCY,
    "schedule_lag_ms": EMPTY_LATENCY,
    "retention": {"checked": 3, "passed": 2, "rate": 2 / 3},
    "output_tokens": 30.2,  # 30.25 to one decimal (half to even)
    "prompt_tokens": 900,
    "output_tokens_per_s_per_user": 20.17,  # 30.25 tokens over 1.5 s of replies
    "output_tokens_per_s": 3.78,  # over the 8 s steady state
    "turns_per_s": 0.5,
    "tokens": {
        "prompt": {"p50": 200, "p95": 200, "p99": 200, "max": 200, "mean": 200.0, "count": 3},
        "output": {"p50": 10, "p95": 10, "p99": 10, "max": 10, "mean": 10.0, "count": 3},
        "counted_by": {"usage": 1, "tokenizer": 3, "estimate": 0},
        "short_reply": 2,
        "usage_mismatch": 1,
    },
}
RUN = {"duration_s": 20.0, "steady": {"duration_s": 8.0}, "users": 4}


def test_every_field_of_a_row_and_of_a_transport() -> None:
    summary = build_summary(_batch(), RUN)
    assert summary["schema_version"] == 2 and summary["run"] is RUN
    assert summary["turns"] == [{"transport": "rest", "dialogue": "d", "turn": 1, **ROW}]
    assert list(summary["transports"]) == ["grpc", "rest"]
    assert summary["transports"]["rest"] == ROW
    assert list(summary["transports"]["rest"]["failure_reasons"]) == list(ROW["failure_reasons"])  # most first
    grpc = summary["transports"]["grpc"]
    assert grpc["count"] == 1 and grpc["retention"] == {"checked": 0, "passed": 0, "rate": None}
    assert grpc["output_tokens_per_s_per_user"] == 0.0 and grpc["output_tokens"] == 0.0
    assert grpc["turns_per_s"] == 0.125 and grpc["failure_reasons"] == {}
    assert "slo" not in grpc and "slo" not in summary
    assert summary["token_counting"] == "tokenizer"
    assert summary["context_buckets"] == {} and summary["generator_lag_ms"] == EMPTY_LATENCY
    assert summary["warnings"] == token_warnings(summary["transports"])


def test_rates_over_no_duration_are_zero_and_slo_figures_come_with_objectives() -> None:
    summary = build_summary(_batch(), {"duration_s": 0}, slo=tuple(parse_objectives(["e2e.max < 1s"])))
    rest = summary["transports"]["rest"]
    assert rest["output_tokens_per_s"] == 0.0 and rest["turns_per_s"] == 0.0
    assert rest["output_tokens_per_s_per_user"] == 20.17
    assert rest["slo"] == {"met": 1, "attainment": 0.25, "goodput_per_s": None}
    assert summary["turns"][0]["slo"] == {"met": 1, "attainment": 0.25, "goodput_per_s": None}
    assert summary["slo"]["objectives"] == ["e2e.max < 1s"]
    assert summary["slo"]["transports"]["rest"]["held"] is True
    with_time = build_summary(_batch(), RUN, slo=tuple(parse_objectives(["e2e.max < 1s"])))
    assert with_time["transports"]["rest"]["slo"] == {"met": 1, "attainment": 0.25, "goodput_per_s": 0.125}


def test_rows_buckets_warnings_and_sections() -> None:
    batch = _batch()
    agg = SeriesKey.series("rest")
    batch.record(agg.with_metric("e2e@ctx<512"), 4_000)
    batch.record(agg.with_metric("ttft@ctx<512"), 1_000)
    batch.record(agg.with_metric("e2e@ctx>4k"), 9_000)
    batch.record(SeriesKey("rest", "d", 1, "e2e@ctx<512"), 4_000)  # not an aggregate: no bucket of its own
    batch.record(SeriesKey(ALL, ALL, 0, "e2e@ctx<512"), 4_000)  # the run-wide key: no transport
    batch.record(SeriesKey(ALL, ALL, 0, Metric.GENERATOR_LAG), 4_999, 99)
    given = ["first"]
    calls: list[int] = []
    summary = build_summary(batch, RUN, given, pause=lambda: calls.append(1), sections={"windows": [1, 2]})
    assert given == ["first"]
    assert summary["windows"] == [1, 2]
    assert list(summary["context_buckets"]) == ["rest"]
    assert summary["context_buckets"]["rest"] == {
        "<512": {
            "e2e_ms": latency_block(_hist(Metric.E2E, {4_000: 1})),
            "ttft_ms": latency_block(_hist("ttft", {1_000: 1})),
        },
        ">4k": {"e2e_ms": latency_block(_hist(Metric.E2E, {9_000: 1}))},
    }
    assert [row["transport"] for row in summary["turns"]] == ["rest"]  # no row for the run-wide key
    assert summary["generator_lag_ms"]["p99"] == 4.999 and summary["generator_lag_ms"]["count"] == 99
    # under 5 ms: no warning; 3 rows x 6 latency blocks + 3 buckets paused after each read
    assert summary["warnings"] == ["first", *token_warnings(summary["transports"])]
    assert len(calls) == 3 * 6 + 3
    batch.record(SeriesKey(ALL, ALL, 0, Metric.GENERATOR_LAG), 5_001, 2)
    lagging = build_summary(batch, RUN)["warnings"]
    assert lagging[-1] == (
        "load generator lag p99 is 5.003 ms (> 5.0 ms): the generator was overloaded and its own delay is inside the "
        f"latencies; {processes_advice(4, None, ['grpc', 'rest'])}. Per-token figures: trust TPOT (a turn's whole "
        "stream after its first token, over its tokens) rather than ITL, whose single gaps take the generator's "
        "stalls in full"
    )
    assert len(lagging) == 1 + len(token_warnings(build_summary(batch, RUN)["transports"]))


def test_token_warnings_say_how_many_of_how_many() -> None:
    row = {"count": 9, "tokens": {"short_reply": 2, "usage_mismatch": 0}}
    other = {"count": 5, "tokens": {"short_reply": 0, "usage_mismatch": 3}}
    quiet = {"count": 5, "tokens": {"short_reply": 0, "usage_mismatch": 0}}
    assert token_warnings({"rest": row, "amqp": other, "grpc": quiet}) == [
        "amqp: in 3 of 5 turns the server's usage disagreed with the local count (--tokenizer) by more than "
        "--token-tolerance: a different tokenizer, a context the server cut, or wrong usage figures; per turn in "
        "the report's token table",
        "rest: 2 of 9 replies were shorter than the length asked (--output-tokens): the server stops early or "
        "ignores min_tokens/ignore_eos; per turn in the report's token table",
    ]
    both = {"count": 1, "tokens": {"short_reply": 1, "usage_mismatch": 1}}
    assert [w.split(":")[0] for w in token_warnings({"x": both})] == ["x", "x"]
    assert "shorter" in token_warnings({"x": both})[0] and "disagreed" in token_warnings({"x": both})[1]


def _counted(usage: int, tokenizer: int, estimate: int) -> dict[str, Any]:
    return {"tokens": {"counted_by": {"usage": usage, "tokenizer": tokenizer, "estimate": estimate}}}


def test_who_counted_the_most_replies() -> None:
    assert token_counting({}) is None
    assert token_counting({"rest": _counted(0, 0, 0)}) is None
    assert token_counting({"rest": _counted(0, 0, 1)}) == "estimate"
    assert token_counting({"rest": _counted(2, 1, 0), "grpc": _counted(0, 3, 0)}) == "tokenizer"  # summed
    assert token_counting({"rest": _counted(2, 2, 2)}) == "usage"  # a tie: the first source
    assert token_counting({"rest": _counted(0, 1, 1)}) == "tokenizer"


def test_lag_advice_reads_users_and_processes_when_they_are_integers() -> None:
    assert lag_advice({"users": 64, "processes": 2}) == processes_advice(64, 2)
    assert lag_advice({"users": 64, "processes": 2}, ["grpc"]) == processes_advice(64, 2, ["grpc"])
    assert processes_advice(64, 2, ["grpc"]) != processes_advice(64, 2)
    assert lag_advice({"users": 64}) == processes_advice(64, None)
    assert lag_advice({"users": "64", "processes": 2.0}) == processes_advice(None, None)
    assert lag_advice({}) == processes_advice(None, None)
    assert processes_advice(64, 2) != processes_advice(64, None) or processes_advice(64, 2) != processes_advice(
        None, None
    )


def test_cut_off_turns_over_every_transport() -> None:
    batch = MetricsBatch()
    assert cut_off_turns(batch) == 0
    batch.counts[SeriesKey("rest", ALL, 0, str(Count.CUT_OFF))] = 2
    batch.counts[SeriesKey("grpc", ALL, 0, str(Count.CUT_OFF))] = 3
    batch.counts[SeriesKey("grpc", ALL, 0, str(Count.TURNS))] = 40
    assert cut_off_turns(batch) == 5


def test_rates_at_their_edges() -> None:
    batch = _batch()
    amqp = SeriesKey.series("amqp")  # turns and tokens counted, no latency at all
    batch.counts[amqp.with_metric(Count.TURNS)] = 3
    batch.totals[amqp.with_metric(Total.OUTPUT_TOKENS)] = 5.0
    fast = SeriesKey.series("grpc", "x", 1)  # 20000 tokens over 1 s of replies
    batch.totals[fast.with_metric(Total.OUTPUT_TOKENS)] = 20_000.0
    batch.record(fast.with_metric(Metric.E2E), 1_000_000)
    rest = SeriesKey.series("rest")
    batch.record(rest.with_metric(Metric.ITL), 1_000)
    batch.record(rest.with_metric(Metric.E2E_FROM_INTENDED), 1_500)
    batch.record(rest.with_metric(Metric.SCHEDULE_LAG), 200)
    summary = build_summary(batch, {"duration_s": 0.75})
    row = summary["transports"]["amqp"]
    assert row["output_tokens_per_s_per_user"] == 0.0 and row["e2e_ms"] == EMPTY_LATENCY
    assert row["turns_per_s"] == 4.0 and row["output_tokens_per_s"] == 6.67
    assert summary["turns"][0]["output_tokens_per_s_per_user"] == 20_000.0
    rest_row = summary["transports"]["rest"]
    assert rest_row["turns_per_s"] == 5.333 and rest_row["output_tokens_per_s"] == 40.33
    assert rest_row["itl_ms"]["max"] == 1.0 and rest_row["itl_ms"]["count"] == 1
    assert rest_row["e2e_from_intended_ms"]["max"] == 1.5 and rest_row["schedule_lag_ms"]["max"] == 0.2


def test_who_counted_sums_over_transports() -> None:
    assert token_counting({"a": _counted(3, 0, 0), "b": _counted(1, 2, 0)}) == "usage"  # 4 against 2


def test_lag_advice_leaves_out_processes_that_are_not_integers() -> None:
    assert lag_advice({"users": 64, "processes": "4"}) == processes_advice(64, None)
