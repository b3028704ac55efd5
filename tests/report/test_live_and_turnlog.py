import json
from pathlib import Path

from loadgen.errors import ConnectError
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.turns import TurnOutcome, record_turn
from loadgen.report.live import COLUMNS, LiveTable, build_rows
from loadgen.report.turnlog import TurnLog, path_for_process, turn_record
from loadgen.types import Reply, Usage


def _reply(ttft: float = 0.05, gaps: tuple[float, ...] = (0.01, 0.01, 0.02)) -> Reply:
    times = [10.0 + ttft]
    for g in gaps:
        times.append(times[-1] + g)
    return Reply(
        text="hi", t_sent=10.0, t_done=times[-1], chunk_times=times, chunk_tokens=[1.0] * len(times), usage=Usage(7, 4)
    )


def _batch() -> MetricsBatch:
    batch = MetricsBatch()
    for i in range(20):
        record_turn(batch, TurnOutcome("rest", "travel", 1, _reply(ttft=0.01 * (i + 1))))
    record_turn(batch, TurnOutcome("rest", "travel", 2, _reply(), retention_checked=1, retention_passed=True))
    record_turn(
        batch,
        TurnOutcome("rest", "travel", 2, _reply(), retention_checked=1, retention_passed=False, retention_reason="x"),
    )
    record_turn(batch, TurnOutcome("rest", "travel", 2, None, error=ConnectError("refused")))
    return batch


def test_live_rows_have_every_column_and_an_aggregate_row() -> None:
    rows = build_rows(_batch())
    assert [r["name"] for r in rows] == ["travel:turn1", "travel:turn2", "(all)"]
    for row in rows:
        assert set(row) == {k for k, _ in COLUMNS}
    turn1, turn2, agg = rows
    assert turn1["count"] == 20 and turn1["ttft_p50"] is not None
    assert abs(turn1["ttft_p99"] - 200.0) < 1.0
    assert turn2["failures"] == 2 and turn2["retention"] == 50.0
    assert turn1["retention"] is None
    assert agg["count"] == 23


def test_live_table_recomputes_at_most_once_a_second() -> None:
    now = [100.0]
    version = [1]
    batch = _batch()
    table = LiveTable(lambda: (batch, version[0]), min_interval_s=1.0, clock=lambda: now[0])
    first = table.snapshot()
    assert first["rows"] and table.computations == 1
    version[0] = 2
    now[0] += 0.5
    assert table.snapshot() is first and table.computations == 1  # too soon
    now[0] += 0.6
    assert table.snapshot() is not first and table.computations == 2
    now[0] += 5
    table.snapshot()
    assert table.computations == 2  # nothing changed: no recomputation


def test_turn_record_fields() -> None:
    ok = turn_record(TurnOutcome("grpc", "d", 3, _reply(), schedule_lag_s=0.002), "conv-1", now=5.0)
    assert ok["verdict"] == "ok" and ok["error"] is None
    assert ok["conversation_id"] == "conv-1" and ok["turn"] == 3 and ok["ts"] == 5.0
    assert ok["ttft_ms"] == 50.0 and ok["e2e_ms"] == 90.0 and ok["chunks"] == 4
    assert abs(ok["itl_ms_mean"] - 13.333) < 0.01
    assert ok["prompt_tokens"] == 7 and ok["schedule_lag_ms"] == 2.0
    failed = turn_record(TurnOutcome("grpc", "d", 3, None, error=ConnectError("refused")), "c")
    assert failed["verdict"] == "transport_error" and failed["error"] == "ConnectError: refused"
    missed = turn_record(
        TurnOutcome("grpc", "d", 3, _reply(), retention_checked=1, retention_passed=False, retention_reason="no name"),
        "c",
    )
    assert missed["verdict"] == "retention_failure" and missed["retention"]["reason"] == "no name"


def test_turn_log_writes_jsonl_and_workers_get_their_own_file(tmp_path: Path) -> None:
    assert path_for_process(tmp_path / "turns.jsonl", True, pid=42) == tmp_path / "turns.42.jsonl"
    assert path_for_process(tmp_path / "turns", True, pid=42) == tmp_path / "turns.42"
    assert path_for_process(tmp_path / "turns.jsonl", False) == tmp_path / "turns.jsonl"
    log = TurnLog(tmp_path / "sub" / "turns.jsonl")
    for i in range(3):
        log(TurnOutcome("rest", "d", i + 1, _reply()), f"conv-{i}")
    log.close()
    lines = (tmp_path / "sub" / "turns.jsonl").read_text().splitlines()
    assert [json.loads(line)["turn"] for line in lines] == [1, 2, 3]


def test_live_rows_carry_tpot_and_with_slo_the_share_of_turns_that_met_it() -> None:
    from loadgen.load.slo import SloChecker, parse_objectives

    batch = MetricsBatch()
    slo = SloChecker(parse_objectives(["ttft.p99 < 100ms"]))
    for ttft in (0.05, 0.05, 0.05, 0.15):  # three of four turns meet it
        record_turn(batch, TurnOutcome("rest", "travel", 1, _reply(ttft=ttft, gaps=(0.01, 0.01, 0.04))), slo)
    record_turn(batch, TurnOutcome("rest", "travel", 1, None, error=ConnectError("refused")), slo)  # never meets it
    turn1, agg = build_rows(batch, slo=True)
    # (e2e - ttft) / (output tokens - 1): 60 ms over 4 tokens' 3 gaps
    assert abs(turn1["tpot_p50"] - 20.0) < 0.1 and abs(turn1["tpot_p99"] - 20.0) < 0.1
    assert turn1["slo"] == 60.0 and agg["slo"] == 60.0  # 3 of 5 turns, the failed one included
    assert [row["slo"] for row in build_rows(batch)] == [None, None]  # no --slo: no column value
    table = LiveTable(lambda: (batch, 1), slo=lambda: True)
    assert table.snapshot()["rows"][0]["slo"] == 60.0
