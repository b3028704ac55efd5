import json

import pytest

from loadgen.errors import ConnectError
from loadgen.metrics.aggregator import RunAggregator
from loadgen.metrics.batch import PAUSE_EVERY, WIRE_VERSION, MetricsBatch
from loadgen.metrics.console import format_table
from loadgen.metrics.keys import ALL, Metric, SeriesKey, Total
from loadgen.metrics.rundir import HISTOGRAMS_FILE, SUMMARY_FILE, write_run
from loadgen.metrics.summary import build_summary
from loadgen.metrics.turns import TurnOutcome, context_bucket, record_turn
from loadgen.types import Reply, Usage


def _reply(t0: float, ttft: float, gaps: list[float], first_tokens: float = 1) -> Reply:
    times = [t0 + ttft]
    for g in gaps:
        times.append(times[-1] + g)
    return Reply(
        text="x",
        t_sent=t0,
        t_done=times[-1],
        chunk_times=times,
        chunk_tokens=[first_tokens] + [1.0] * len(gaps),
        usage=Usage(600, int(first_tokens) + len(gaps)),
    )


def test_record_turn_counts_latencies_and_retention() -> None:
    batch = MetricsBatch()
    r = _reply(100.0, 0.050, [0.010] * 9, first_tokens=3)
    record_turn(
        batch,
        TurnOutcome("rest", "travel", 2, r, retention_checked=1, retention_passed=False, retention_reason="forgot"),
    )
    record_turn(batch, TurnOutcome("rest", "travel", 2, None, error=ConnectError("refused")))
    k = SeriesKey("rest", "travel", 2, "")
    assert batch.counts[k.with_metric("count")] == 2
    assert batch.counts[k.with_metric("failures")] == 2
    assert batch.counts[k.with_metric("failures.transport")] == 1
    assert batch.counts[k.with_metric("failures.retention")] == 1
    assert batch.histograms[k.with_metric("e2e")].count == 1  # failed transport turns have no latency
    itl = batch.histograms[k.with_metric("itl")]
    assert itl.count == 9  # the first (3-token) chunk is TTFT, not ITL
    assert abs(itl.quantiles([0.5])[0.5] - 10_000) <= 10
    agg = SeriesKey("rest", ALL, 0, "count")
    assert batch.counts[agg] == 2
    assert SeriesKey("rest", ALL, 0, "e2e@ctx512-2k") in batch.histograms


@pytest.mark.parametrize(
    ("tokens", "bucket"), [(0, "<512"), (511, "<512"), (512, "512-2k"), (2048, "2k-4k"), (4096, ">4k")]
)
def test_context_buckets(tokens: int, bucket: str) -> None:
    assert context_bucket(tokens) == bucket


def test_worker_batches_merge_exactly_into_the_aggregator() -> None:
    workers = [MetricsBatch() for _ in range(3)]
    for i, w in enumerate(workers):
        for j in range(10 * (i + 1)):
            record_turn(w, TurnOutcome("grpc", "coding", 1, _reply(0.0, 0.02 + j / 1000, [0.005] * 4)))
    agg = RunAggregator(interval_s=3600)
    reference = MetricsBatch()
    for w in workers:
        reference.merge(w)
        agg.merge_wire(json.loads(json.dumps(w.take().to_wire())))  # through JSON, like the wire
        assert w.is_empty()
    key = SeriesKey("grpc", "coding", 1, "ttft")
    assert agg.total.histograms[key].count == 60
    assert agg.total.counts[key.with_metric("count")] == 60
    assert agg.total.histograms[key].quantiles([0.5, 0.99]) == reference.histograms[key].quantiles([0.5, 0.99])
    agg.maybe_roll(force=True)
    assert len(agg.intervals) == 1
    assert all(k.split("|")[1] == ALL for k in agg.intervals[0].wire["h"])


def test_in_place_flush_keeps_recording_exact_across_reports() -> None:
    """The local path: merge the pending batch directly, empty it in place, record again (cached handles)."""
    pending, agg = MetricsBatch(), RunAggregator(interval_s=3600)
    wire_total = MetricsBatch()
    for report in range(3):
        for j in range(5 + report):
            record_turn(pending, TurnOutcome("rest", "travel", 1, _reply(0.0, 0.03 + j / 1000, [0.004] * 3)))
        wire_total.merge_wire(json.loads(json.dumps(pending.to_wire())))
        agg.merge(pending)
        pending.empty_in_place()
        assert pending.is_empty()
        assert pending.handles  # the cached series stay valid
    for key, hist in wire_total.histograms.items():
        assert agg.total.histograms[key].count == hist.count, key
        assert list(agg.total.histograms[key].hist.counts) == list(hist.hist.counts), key
        assert agg.total.histograms[key].value_sum == hist.value_sum, key
    assert agg.total.counts == wire_total.counts
    assert agg.total.totals == wire_total.totals
    assert agg.total.counts[SeriesKey("rest", "travel", 1, "count")] == 18
    agg.maybe_roll(force=True)
    assert all(k.split("|")[1] == ALL for k in agg.intervals[0].wire["h"])


def test_summary_and_run_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    agg = RunAggregator()
    b = MetricsBatch()
    for _ in range(5):
        record_turn(b, TurnOutcome("rest", "travel", 1, _reply(0.0, 0.05, [0.01] * 5), retention_checked=1))
    b.record(SeriesKey(ALL, ALL, 0, "generator_lag"), 9_000)
    agg.merge(b)
    summary = write_run(tmp_path, agg, {"id": "t", "duration_s": 10.0})
    on_disk = json.loads((tmp_path / SUMMARY_FILE).read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["schema_version"] == 2
    row = on_disk["turns"][0]
    assert (row["transport"], row["dialogue"], row["turn"], row["count"]) == ("rest", "travel", 1, 5)
    assert row["retention"] == {"checked": 5, "passed": 5, "rate": 1.0}
    for block in ("e2e_ms", "ttft_ms", "itl_ms"):
        assert set(row[block]) >= {"p50", "p95", "p99", "max"}
    assert abs(row["ttft_ms"]["p50"] - 50.0) < 0.1
    assert on_disk["generator_lag_ms"]["p99"] > 5
    assert any("generator lag" in w for w in on_disk["warnings"])
    assert "rest" in on_disk["transports"]
    assert (tmp_path / HISTOGRAMS_FILE).exists()
    table = format_table(summary)
    assert "travel" in table and "100.0%" in table


def test_empty_summary_is_well_formed() -> None:
    s = build_summary(MetricsBatch(), {"duration_s": 0})
    assert s["turns"] == []
    assert s["generator_lag_ms"] == {
        "p50": None, "p95": None, "p99": None, "max": None, "mean": None, "count": 0, "out_of_range": 0,
    }  # fmt: skip


def test_a_latency_block_with_no_samples_is_all_null_never_zero() -> None:
    batch = MetricsBatch()
    record_turn(batch, TurnOutcome("rest", "travel", 1, _reply(0.0, 0.05, [])))  # one chunk: no ITL sample
    record_turn(batch, TurnOutcome("rest", "travel", 2, None, error=ConnectError("refused")))  # no reply at all
    s = build_summary(batch, {"duration_s": 1.0})
    by_turn = {row["turn"]: row for row in s["turns"]}
    empty = {"p50": None, "p95": None, "p99": None, "max": None, "mean": None, "count": 0, "out_of_range": 0}
    assert by_turn[1]["itl_ms"] == empty
    assert by_turn[1]["e2e_ms"]["count"] == 1 and by_turn[1]["e2e_ms"]["p50"] == pytest.approx(50.0, abs=0.05)
    assert by_turn[2]["e2e_ms"] == by_turn[2]["ttft_ms"] == empty
    assert by_turn[2]["failures_by_kind"] == {"transport": 1, "retention": 0, "session": 0}


def test_recorded_itl_is_inter_token_samples_in_microseconds() -> None:
    from loadgen.metrics.histograms import Metric, TrackedHistogram
    from loadgen.metrics.turns import to_us

    reply = _reply(10.0, 0.05, [0.01, 0.0, 0.013, 0.0071, 0.02], first_tokens=4)
    reply.chunk_tokens[2] = 0.0  # a chunk with no tokens is skipped, its gap not carried over
    reply.chunk_tokens[3] = 2.6
    del reply.chunk_tokens[5]  # a missing count is one token
    expected = TrackedHistogram(Metric.ITL)
    for seconds, n in reply.inter_token_samples():
        expected.record(to_us(seconds), n)
    batch = MetricsBatch()
    record_turn(batch, TurnOutcome("rest", "travel", 1, reply))
    for dialogue, turn in (("travel", 1), (ALL, 0)):
        got = batch.histograms[SeriesKey("rest", dialogue, turn, "itl")]
        assert list(got.hist.counts) == list(expected.hist.counts)
        assert (got.count, got.value_sum, got.max()) == (expected.count, expected.value_sum, expected.max())
    assert expected.count == 1 + 3 + 1 + 1  # gaps 1, 3 (2.6 tokens -> 3), 4 and 5 (no count: 1); 2 has none


def test_a_paused_run_folder_write_holds_merges_off_and_matches_an_unpaused_one(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import threading

    agg = RunAggregator()
    for turn in (1, 2, 3):
        b = MetricsBatch()
        record_turn(b, TurnOutcome("rest", "travel", turn, _reply(0.0, 0.05, [0.01] * 5)))
        agg.merge(b)
    late = MetricsBatch()
    record_turn(late, TurnOutcome("rest", "travel", 1, _reply(0.0, 0.05, [0.01] * 5)))
    merged = threading.Event()
    merger = threading.Thread(target=lambda: (agg.merge(late), merged.set()))
    pauses = []

    def pause() -> None:
        if not pauses:
            merger.start()  # a merge arriving mid-write must wait for the write
        pauses.append(merged.wait(timeout=0.05))

    paused = write_run(tmp_path / "a", agg, {"id": "t", "duration_s": 1.0}, pause=pause)
    merger.join(timeout=5)
    assert pauses and not any(pauses)  # the merge never got in while the folder was being written
    assert merged.is_set()
    assert [r["count"] for r in paused["turns"]] == [1, 1, 1]
    assert write_run(tmp_path / "b", agg, {"id": "t", "duration_s": 1.0})["turns"][0]["count"] == 2


def test_batch_edges_found_by_mutation_testing() -> None:
    """take() leaves a batch that still records; a missing total reads 0; a 3-field wire entry (no value sum) and a
    version mismatch are handled as documented; pauses come every PAUSE_EVERY histograms."""
    b = MetricsBatch()
    tokens = SeriesKey.series("rest").with_metric(Total.OUTPUT_TOKENS)
    assert b.counter(tokens) == 0.0
    b.totals[tokens] += 5.0
    taken = b.take()
    assert taken.totals[tokens] == 5.0 and b.handles == {}
    b.totals[tokens] += 2.0  # the fresh totals still default to 0.0
    assert b.totals[tokens] == 2.0
    for i in range(2 * PAUSE_EVERY + 1):
        b.record(SeriesKey.series("rest", "chat", i + 1).with_metric(Metric.E2E), 100 + i)
    pauses: list[int] = []
    wire = b.to_wire(pause=lambda: pauses.append(1))
    assert len(pauses) == 2
    merged = MetricsBatch()
    merged.merge(b, pause=lambda: pauses.append(1))
    assert len(pauses) == 4
    key_text, entry = next(iter(wire["h"].items()))
    old = MetricsBatch()
    old.merge_wire({"v": WIRE_VERSION, "h": {key_text: entry[:3]}, "c": {}})
    assert old.histograms[SeriesKey.decode(key_text)].count == 1
    assert old.histograms[SeriesKey.decode(key_text)].value_sum == 0  # no sum on the wire: none added
    with pytest.raises(ValueError, match=rf"^metrics wire version 0 is not {WIRE_VERSION}: mixed versions\?$"):
        old.merge_wire({"v": 0, "h": {}, "c": {}})
