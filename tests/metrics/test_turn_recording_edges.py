"""Recording one turn (loadgen.metrics.turns) held to every counter, total and histogram it writes: in the turn's
own series and in its transport's aggregate, for a reply, a failed call, a lost session, a retention probe, each
source of token counts, each per-turn SLO, both inter-token paths, and nothing more than that."""

from __future__ import annotations

from typing import Any

import pytest

from loadgen.errors import ConnectError, TurnTimeout
from loadgen.load.slo import SloChecker, parse_objectives
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.keys import ALL, SeriesKey
from loadgen.metrics.turns import TurnOutcome, record_cut_off, record_turn, to_us, tpot_us
from loadgen.types import Reply, TokenCheck, Usage

T = ("rest", "d", 2)  # the turn's own series
A = ("rest", ALL, 0)  # the transport's aggregate


def _snapshot(batch: MetricsBatch) -> dict[str, Any]:
    """Every counter, total and non-empty histogram (count, exact sum) of the batch, keyed by plain tuples."""

    def key(k: SeriesKey) -> tuple[str, str, int, str]:
        return (k.transport, k.dialogue, k.turn, k.metric)

    return {
        "counts": {key(k): v for k, v in batch.counts.items()},
        "totals": {key(k): v for k, v in batch.totals.items()},
        "hists": {key(k): (h.count, h.value_sum) for k, h in batch.histograms.items() if h.count},
    }


def _both(**values: Any) -> dict[tuple[str, str, int, str], Any]:
    """The same values in the turn's series and the aggregate."""
    return {(*series, metric): value for series in (T, A) for metric, value in values.items()}


def _reply(
    times: list[float], tokens: list[float] | None = None, usage: Usage | None = None, t_sent: float = 100.0
) -> Reply:
    return Reply(
        text="x",
        t_sent=t_sent,
        t_done=times[-1] if times else t_sent + 0.5,
        chunk_times=times,
        chunk_tokens=[1.0] * len(times) if tokens is None else tokens,
        usage=usage,
    )


STREAM = [100.1, 100.2, 100.35, 100.5]  # TTFT 100 ms, gaps 100, 150, 150 ms, e2e 500 ms


def test_a_streamed_reply_with_usage_writes_exactly_these_figures() -> None:
    batch = MetricsBatch()
    record_turn(batch, TurnOutcome(*T, _reply(STREAM, usage=Usage(600, 4)), schedule_lag_s=0.25))
    hists = _both(
        schedule_lag=(1, 250_000),
        e2e=(1, 500_000),
        e2e_from_intended=(1, 750_000),
        ttft=(1, 100_000),
        tpot=(1, 133_333),  # (500 - 100) ms / 3
        itl=(3, 400_000),
        output_tokens=(1, 4),
        prompt_tokens=(1, 600),
    )
    hists[(*A, "e2e@ctx512-2k")] = (1, 500_000)  # by context length: the aggregate only
    hists[(*A, "ttft@ctx512-2k")] = (1, 100_000)
    assert _snapshot(batch) == {
        "counts": _both(**{"count": 1, "tokens.by_usage": 1, "prompt_tokens": 600}),
        "totals": _both(output_tokens=4.0),
        "hists": hists,
    }
    itl = batch.histograms[SeriesKey(*T, "itl")]
    assert itl.quantiles([0.0, 1.0]) == {0.0: pytest.approx(100_000, rel=1e-3), 1.0: pytest.approx(150_000, rel=1e-3)}
    # the same series again: the cached series are used, the figures add up
    record_turn(batch, TurnOutcome(*T, _reply(STREAM, usage=Usage(600, 4)), schedule_lag_s=0.25))
    assert len(batch.handles) == 2
    again = _snapshot(batch)
    assert again["counts"] == _both(**{"count": 2, "tokens.by_usage": 2, "prompt_tokens": 1200})
    assert again["hists"][(*T, "itl")] == (6, 800_000) and again["hists"][(*A, "e2e")] == (2, 1_000_000)


def test_a_reply_with_no_chunks_and_no_usage_is_an_estimate_of_nothing() -> None:
    batch = MetricsBatch()
    record_turn(batch, TurnOutcome(*T, _reply([])))
    assert _snapshot(batch) == {
        "counts": _both(**{"count": 1, "tokens.by_estimate": 1}),
        "totals": _both(output_tokens=0.0),
        "hists": _both(schedule_lag=(1, 1), e2e=(1, 500_000), e2e_from_intended=(1, 500_000)),
    }


def test_a_prompt_of_zero_tokens_is_still_counted_and_bucketed() -> None:
    batch = MetricsBatch()
    record_turn(batch, TurnOutcome(*T, _reply([100.2], usage=Usage(0, 1))))
    snap = _snapshot(batch)
    assert snap["counts"] == _both(**{"count": 1, "tokens.by_usage": 1, "prompt_tokens": 0})
    assert snap["hists"][(*A, "e2e@ctx<512")] == (1, 200_000) and snap["hists"][(*A, "ttft@ctx<512")] == (1, 200_000)
    assert snap["hists"][(*T, "prompt_tokens")] == (1, 1)
    assert (*T, "tpot") not in snap["hists"] and (*T, "itl") not in snap["hists"]  # one token, one chunk


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        (TurnOutcome(*T, None, error=ConnectError("refused"), schedule_lag_s=0.002), "reason:ConnectError:refused"),
        (TurnOutcome(*T, None, schedule_lag_s=0.002), "reason:TransportError:no reply"),
        # an error with a reply (cut short) is a failed call too: no latencies
        (TurnOutcome(*T, _reply(STREAM), error=TurnTimeout("late"), schedule_lag_s=0.002), "reason:TurnTimeout:late"),
    ],
)
def test_a_failed_call_counts_its_reason_and_records_only_the_lag(outcome: TurnOutcome, reason: str) -> None:
    batch = MetricsBatch()
    record_turn(batch, outcome, SloChecker(parse_objectives(["e2e.max < 3600s"])))
    assert _snapshot(batch) == {
        "counts": _both(**{"count": 1, "failures": 1, "failures.transport": 1, reason: 1}),
        "totals": {},
        "hists": _both(schedule_lag=(1, 2_000)),
    }


def test_a_lost_session_is_a_failure_beside_the_latencies_and_skips_retention_and_slo() -> None:
    batch = MetricsBatch()
    outcome = TurnOutcome(
        *T,
        _reply(STREAM, usage=Usage(10, 4)),
        retention_checked=2,
        retention_passed=False,
        retention_reason="forgot",
        session_lost="evicted",
    )
    record_turn(batch, outcome, SloChecker(parse_objectives(["e2e.max < 3600s"])))
    snap = _snapshot(batch)
    assert snap["counts"] == _both(
        **{
            "count": 1,
            "tokens.by_usage": 1,
            "prompt_tokens": 10,
            "failures": 1,
            "failures.session": 1,
            "reason:SessionLost:evicted": 1,
        }
    )
    assert snap["hists"][(*T, "e2e")] == (1, 500_000) and snap["hists"][(*A, "e2e@ctx<512")] == (1, 500_000)


@pytest.mark.parametrize(
    ("outcome", "counts"),
    [
        (
            TurnOutcome(*T, _reply(STREAM, usage=Usage(10, 4)), retention_checked=3),
            {"retention.checked": 1, "retention.passed": 1, "slo.met": 1},
        ),
        (
            TurnOutcome(*T, _reply(STREAM, usage=Usage(10, 4)), retention_checked=1, retention_passed=False),
            {"retention.checked": 1, "failures": 1, "failures.retention": 1, "reason:RetentionFailure:": 1},
        ),
        (
            TurnOutcome(
                *T,
                _reply(STREAM, usage=Usage(10, 4)),
                retention_checked=1,
                retention_passed=False,
                retention_reason="d turn 2 slot city",
            ),
            {
                "retention.checked": 1,
                "failures": 1,
                "failures.retention": 1,
                "reason:RetentionFailure:d turn 2 slot city": 1,
            },
        ),
        # nothing probed: no retention counters; a turn marked as not passing still never meets the SLOs
        (TurnOutcome(*T, _reply(STREAM, usage=Usage(10, 4)), retention_passed=False), {}),
        (TurnOutcome(*T, _reply(STREAM, usage=Usage(10, 4))), {"slo.met": 1}),
    ],
)
def test_retention_probes_and_the_slo_count(outcome: TurnOutcome, counts: dict[str, int]) -> None:
    batch = MetricsBatch()
    record_turn(batch, outcome, SloChecker(parse_objectives(["e2e.max < 3600s"])))
    assert _snapshot(batch)["counts"] == _both(**{"count": 1, "tokens.by_usage": 1, "prompt_tokens": 10, **counts})


@pytest.mark.parametrize(
    ("check", "usage", "counts", "totals", "extra_hists"),
    [
        (
            TokenCheck("tokenizer", prompt_tokens=3000, output_tokens=7, asked=10, short_reply=True),
            None,
            {"tokens.by_tokenizer": 1, "tokens.short_reply": 1, "prompt_tokens": 3000},
            {"output_tokens": 7.0},
            {"tpot": (1, 66_667), "output_tokens": (1, 7), "prompt_tokens": (1, 3000)},  # 400 ms / 6
        ),
        (
            TokenCheck("usage", prompt_tokens=5, output_tokens=9, usage_mismatch=True),
            Usage(10, 3),
            {"tokens.by_usage": 1, "tokens.usage_mismatch": 1, "prompt_tokens": 10},
            {"output_tokens": 3.0},
            {"tpot": (1, 200_000), "output_tokens": (1, 3), "prompt_tokens": (1, 10)},
        ),
        (TokenCheck("estimate"), None, {"tokens.by_estimate": 1}, {"output_tokens": 0.0}, {}),
    ],
)
def test_each_source_of_token_counts(
    check: TokenCheck,
    usage: Usage | None,
    counts: dict[str, int],
    totals: dict[str, float],
    extra_hists: dict[str, tuple[int, int]],
) -> None:
    batch = MetricsBatch()
    record_turn(batch, TurnOutcome(*T, _reply(STREAM, usage=usage), tokens=check))
    snap = _snapshot(batch)
    assert snap["counts"] == _both(count=1, **counts)
    assert snap["totals"] == _both(**totals)
    per_series = {m: v for (*series, m), v in snap["hists"].items() if tuple(series) == T}
    assert per_series == {
        "schedule_lag": (1, 1),
        "e2e": (1, 500_000),
        "e2e_from_intended": (1, 500_000),
        "ttft": (1, 100_000),
        "itl": (3, 400_000),
        **extra_hists,
    }
    buckets = sorted(m for (*series, m), _ in snap["hists"].items() if tuple(series) == A and "@ctx" in m)
    prompt = counts.get("prompt_tokens")
    assert buckets == ([] if prompt is None else [f"e2e@ctx{_bucket(prompt)}", f"ttft@ctx{_bucket(prompt)}"])


def _bucket(tokens: int) -> str:
    return "<512" if tokens < 512 else "512-2k" if tokens < 2048 else "2k-4k" if tokens < 4096 else ">4k"


@pytest.mark.parametrize(
    ("expression", "met"),
    [
        ("ttft.max < 100ms", False),  # TTFT is 100 ms
        ("ttft.max <= 100ms", True),
        ("e2e.max < 500ms", False),  # e2e 500 ms
        ("e2e.max <= 500ms", True),
        ("tpot.max < 133ms", False),  # TPOT 133.333 ms
        ("tpot.max <= 134ms", True),
        ("e2e_from_intended.max < 800ms", False),  # 500 ms + a 300 ms lag
        ("e2e_from_intended.max <= 800ms", True),
        ("grpc.e2e.max < 1ms", True),  # another transport's objective
        ("rest.e2e.max < 1ms", False),
        ("d.turn2.e2e.max < 1ms", False),
        ("d.turn1.e2e.max < 1ms", True),
        ("other.e2e.max < 1ms", True),
    ],
)
def test_each_per_turn_objective_reads_its_own_value(expression: str, met: bool) -> None:
    batch = MetricsBatch()
    record_turn(
        batch,
        TurnOutcome(*T, _reply(STREAM, usage=Usage(10, 4)), schedule_lag_s=0.3),
        SloChecker(parse_objectives([expression])),
    )
    assert batch.counts.get(SeriesKey(*T, "slo.met"), 0) == int(met)
    assert batch.counts.get(SeriesKey(*A, "slo.met"), 0) == int(met)


def test_a_reply_with_no_first_chunk_has_no_ttft_and_tpot_is_met() -> None:
    batch = MetricsBatch()
    slo = SloChecker(parse_objectives(["tpot.max < 1ms", "e2e.max < 1s"]))
    record_turn(batch, TurnOutcome(*T, _reply([], usage=Usage(700, 5))), slo)
    snap = _snapshot(batch)
    assert snap["counts"][(*A, "slo.met")] == 1
    assert sorted(m for (*series, m), _ in snap["hists"].items() if tuple(series) == A and "@ctx" in m) == [
        "e2e@ctx512-2k"
    ]
    assert (*T, "ttft") not in snap["hists"] and (*T, "tpot") not in snap["hists"]
    with_ttft = SloChecker(parse_objectives(["ttft.max < 1s"]))
    record_turn(batch, TurnOutcome(*T, _reply([], usage=Usage(700, 5))), with_ttft)  # no TTFT: not met
    assert batch.counts[SeriesKey(*A, "slo.met")] == 1


@pytest.mark.parametrize(
    ("times", "tokens", "itl"),
    [
        ([100.1, 100.2000007, 100.3], [1.0, 1.0, 1.0], (2, 200_000)),  # the usual stream: gaps rounded, not cut
        ([100.1, 100.2, 100.3], [4.0, 1.0, 1.0], (2, 200_000)),  # a first chunk of several tokens is TTFT's
        ([100.1, 100.2, 100.4], [1.0, 2.0, 1.0], (3, 300_000)),  # 100 ms over 2 tokens, then 200 ms
        ([100.1, 100.2, 100.4], [1.0, 1.0], (2, 300_000)),  # a missing count is one token
        ([100.1, 100.2, 100.4], [1.0, 0.0, 1.0], (1, 200_000)),  # a chunk of no tokens is no sample
        ([100.1], [3.0], None),
    ],
)
def test_both_inter_token_paths(times: list[float], tokens: list[float], itl: tuple[int, int] | None) -> None:
    batch = MetricsBatch()
    record_turn(batch, TurnOutcome(*T, _reply(times, tokens, usage=Usage(1, 3))))
    hists = _snapshot(batch)["hists"]
    assert hists.get((*T, "itl")) == itl and hists.get((*A, "itl")) == itl
    if times == [100.1, 100.2000007, 100.3]:
        assert batch.histograms[SeriesKey(*T, "itl")].max() >= 100_000


def test_a_cut_off_turn_counts_in_the_aggregate_only() -> None:
    batch = MetricsBatch()
    record_cut_off(batch, "amqp")
    record_cut_off(batch, "amqp")
    record_cut_off(batch, "rest")
    assert _snapshot(batch) == {
        "counts": {("amqp", ALL, 0, "cut_off"): 2, ("rest", ALL, 0, "cut_off"): 1},
        "totals": {},
        "hists": {},
    }


def test_microseconds_and_tpot_at_their_edges() -> None:
    assert to_us(-0.5) == 0 and to_us(0.0) == 0
    assert to_us(0.0000007) == 1 and to_us(0.0000004) == 0  # rounded, not cut
    assert to_us(1.5) == 1_500_000
    assert tpot_us(1.0, 0.0, 2) == 1_000_000  # a TTFT of 0 is a TTFT
    assert tpot_us(1.0, 0.2, 2.0) == 800_000
    assert tpot_us(1.0, 0.2, 1.99) is None and tpot_us(1.0, None, 5) is None
    assert tpot_us(0.2, 0.5, 3) == 0  # a clock step backwards reads 0, never below


@pytest.mark.parametrize(
    ("times", "tokens", "itl"),
    [
        ([100.1, 102.1], [1.0, 1.0], (1, 2_000_000)),  # one gap of 2 s, to the microsecond
        ([100.1, 100.2, 100.4], [1.0, 3.0, 3.0], (6, 300_000)),  # each gap over its 3 tokens
        ([100.1, 100.2, 100.4], [3.0, 2.0, 2.0], (4, 300_000)),  # each gap over its 2 tokens
        ([100.1, 100.2, 100.4], [1.0, 2.0, 1.0, 1.0], (3, 300_000)),  # more counts than chunks: the first ones
    ],
)
def test_inter_token_gaps_are_spread_over_their_tokens(
    times: list[float], tokens: list[float], itl: tuple[int, int]
) -> None:
    batch = MetricsBatch()
    record_turn(batch, TurnOutcome(*T, _reply(times, tokens, usage=Usage(1, 3))))
    hists = _snapshot(batch)["hists"]
    assert hists[(*T, "itl")] == itl and hists[(*A, "itl")] == itl


def test_every_failure_counter_adds_up_over_turns() -> None:
    batch = MetricsBatch()
    check = TokenCheck("tokenizer", prompt_tokens=5, output_tokens=2, short_reply=True, usage_mismatch=True)
    for _ in range(2):
        record_turn(batch, TurnOutcome(*T, None, error=ConnectError("refused")))
        record_turn(
            batch, TurnOutcome(*T, _reply(STREAM), retention_checked=1, retention_passed=False, retention_reason="r")
        )
        record_turn(batch, TurnOutcome(*T, _reply(STREAM), session_lost="evicted"))
        record_turn(batch, TurnOutcome(*T, _reply(STREAM), tokens=check))
    assert _snapshot(batch)["counts"] == _both(
        **{
            "count": 8,
            "failures": 6,
            "failures.transport": 2,
            "reason:ConnectError:refused": 2,
            "retention.checked": 2,
            "failures.retention": 2,
            "reason:RetentionFailure:r": 2,
            "failures.session": 2,
            "reason:SessionLost:evicted": 2,
            "tokens.by_estimate": 4,
            "tokens.by_tokenizer": 2,
            "tokens.short_reply": 2,
            "tokens.usage_mismatch": 2,
            "prompt_tokens": 10,
        }
    )
