"""The run folder held to its bytes (loadgen.metrics.rundir): run ids, the interval log, what write_run writes
(summary.json indented, histograms.json compact, each through a temporary file), what it passes on to the summary
(the run's cut-off turns, warnings in order, sections, pauses, SLOs) and when it writes intervals.jsonl."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from loadgen.errors import ConfigError
from loadgen.load.slo import parse_objectives
from loadgen.metrics import rundir
from loadgen.metrics.aggregator import IntervalSnapshot, RunAggregator
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.outages import OutageRecorder
from loadgen.metrics.rundir import (
    HISTOGRAMS_FILE,
    INTERVALS_LOG,
    SUMMARY_FILE,
    IntervalLog,
    check_run_id,
    load_json,
    new_run_id,
    write_run,
)
from loadgen.metrics.summary import build_summary
from loadgen.metrics.turns import TurnOutcome, record_cut_off, record_turn
from loadgen.types import Reply, Usage


def _reply(ttft_s: float = 0.05) -> Reply:
    times = [100.0 + ttft_s, 100.0 + ttft_s + 0.01]
    return Reply(text="x", t_sent=100.0, t_done=times[-1], chunk_times=times, chunk_tokens=[1.0, 1.0],
                 usage=Usage(10, 2))  # fmt: skip


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _aggregator(*, on_interval: Any = None) -> tuple[RunAggregator, _Clock]:
    clock = _Clock()
    agg = RunAggregator(interval_s=5.0, clock=clock, on_interval=on_interval)
    batch = MetricsBatch()
    for _ in range(3):
        record_turn(batch, TurnOutcome("rest", "d", 1, _reply()))
    record_cut_off(batch, "rest")
    record_cut_off(batch, "grpc")
    agg.merge(batch)
    return agg, clock


# --- run ids ---------------------------------------------------------------------------------------------------


def test_a_new_run_id_is_a_time_stamp_the_label_and_four_hex_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", new_run_id())
    assert re.fullmatch(r"\d{8}-\d{6}-sweep-[0-9a-f]{4}", new_run_id("sweep"))
    monkeypatch.setattr(rundir.time, "strftime", lambda fmt: f"<{fmt}>")
    monkeypatch.setattr(rundir.secrets, "token_hex", lambda n: f"[{n}]")
    assert new_run_id() == "<%Y%m%d-%H%M%S>-[2]"
    assert new_run_id("rest") == "<%Y%m%d-%H%M%S>-rest-[2]"


def test_a_run_id_of_letters_digits_dots_underscores_and_dashes_is_kept() -> None:
    assert check_run_id("Run_1.2-b") == "Run_1.2-b"
    assert check_run_id("x", what="--id") == "x"


@pytest.mark.parametrize("bad", ["", "a/b", "a b", "run\n", "\nrun", "é", "a:b"])
def test_any_other_run_id_is_refused_naming_the_option(bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_run_id(bad, what="--run-id")
    assert str(caught.value) == f"--run-id {bad!r}: use letters, digits, '.', '_' and '-' only"
    with pytest.raises(ConfigError) as caught:
        check_run_id(bad)
    assert str(caught.value).startswith(f"run id {bad!r}: ")


# --- intervals.jsonl -------------------------------------------------------------------------------------------


def _snapshot(start: float, count: int) -> IntervalSnapshot:
    return IntervalSnapshot(start, start + 5.0, {"v": 1, "h": {}, "c": {"rest|*|0|count": count}})


def test_the_interval_log_appends_one_compact_line_per_interval(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        log = IntervalLog(tmp_path / "a" / "b")
    finally:
        os.umask(old)
    assert log.path == tmp_path / "a" / "b" / INTERVALS_LOG
    assert log.path.stat().st_mode & 0o777 == 0o644
    assert log.lines == 0
    log(_snapshot(10.0, 2))
    log(_snapshot(15.0, 3))
    assert log.lines == 2
    log.close()
    log(_snapshot(20.0, 4))  # closed: nothing more
    log.close()  # twice is fine
    assert log.lines == 2
    assert log.path.read_bytes() == (
        b'{"start":10.0,"end":15.0,"v":1,"h":{},"c":{"rest|*|0|count":2}}\n'
        b'{"start":15.0,"end":20.0,"v":1,"h":{},"c":{"rest|*|0|count":3}}\n'
    )


def test_a_fresh_interval_log_starts_empty_and_another_appends(tmp_path: Path) -> None:
    (tmp_path / INTERVALS_LOG).write_text("earlier line, longer than the next one\n", encoding="utf-8")
    log = IntervalLog(tmp_path, fresh=False)
    log(_snapshot(1.0, 1))
    log.close()
    assert (tmp_path / INTERVALS_LOG).read_text(encoding="utf-8").splitlines() == [
        "earlier line, longer than the next one",
        '{"start":1.0,"end":6.0,"v":1,"h":{},"c":{"rest|*|0|count":1}}',
    ]
    log = IntervalLog(tmp_path)
    log(_snapshot(2.0, 1))
    log.close()
    assert (tmp_path / INTERVALS_LOG).read_text(encoding="utf-8") == (
        '{"start":2.0,"end":7.0,"v":1,"h":{},"c":{"rest|*|0|count":1}}\n'
    )


# --- write_run -------------------------------------------------------------------------------------------------


def test_the_run_folder_files_are_exact_json_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    agg, _ = _aggregator()
    folder = tmp_path / "reports" / "run-1"  # parents made
    summary = write_run(folder, agg, {"id": "run-1", "duration_s": 10.0})
    assert sorted(p.name for p in folder.iterdir()) == [HISTOGRAMS_FILE, SUMMARY_FILE]  # no interval kept: none
    assert (folder / SUMMARY_FILE).read_text(encoding="utf-8") == json.dumps(summary, indent=1) + "\n"
    histograms = load_json(folder / HISTOGRAMS_FILE)
    assert (folder / HISTOGRAMS_FILE).read_text(encoding="utf-8") == (
        json.dumps(histograms, separators=(",", ":")) + "\n"
    )
    assert histograms == {"schema_version": 1, "unit": "us", **json.loads(json.dumps(agg.total.to_wire()))}
    assert load_json(folder / SUMMARY_FILE) == json.loads(json.dumps(summary))


def test_the_run_gets_its_cut_off_turns_and_warnings_come_before_the_aggregators(tmp_path: Path) -> None:
    agg, _ = _aggregator()
    own, _ = agg.sections()
    agg.sections = lambda: (own, ["from the aggregator"])  # type: ignore[method-assign]
    summary = write_run(tmp_path, agg, {"id": "r", "duration_s": 10.0}, ["given 1", "given 2"])
    assert summary["run"] == {"id": "r", "duration_s": 10.0, "cut_off_turns": 2}
    assert summary["warnings"][:3] == ["given 1", "given 2", "from the aggregator"]
    assert write_run(tmp_path, agg, {"duration_s": 10.0})["warnings"][:1] == ["from the aggregator"]


def test_sections_join_the_aggregators_own_and_win_over_them(tmp_path: Path) -> None:
    agg, _ = _aggregator()
    recorder = OutageRecorder()
    recorder.turn("rest", "u", 1001.0, 1001.5, False)
    agg.merge_outages_wire(recorder.take_wire())
    faults = [{"fault": "10s down", "kind": "down", "start_s": 1.0, "end_s": 11.0}]
    summary = write_run(tmp_path, agg, {"duration_s": 10.0}, sections={"faults": faults, "drift": {"x": 1}})
    assert summary["faults"] == faults
    assert summary["drift"] == {"x": 1}
    assert summary["recovery"] == {"rest": {"outages": 1, "max_s": None, "p50_s": None}}
    assert [o["start_s"] for o in summary["outages"]] == [1.5]
    assert set(summary) >= {"windows", "drift", "outages", "recovery", "faults"}
    assert "faults" not in write_run(tmp_path, agg, {"duration_s": 10.0})


def test_every_pause_is_passed_on_and_one_comes_between_the_sections_and_the_summary(tmp_path: Path) -> None:
    agg, _ = _aggregator()
    counted: list[str] = []
    build_summary(agg.total, {"duration_s": 1.0}, pause=lambda: counted.append("summary"))
    agg.total.to_wire(pause=lambda: counted.append("wire"))
    assert counted.count("summary") > 0 and counted.count("wire") > 0
    calls: list[int] = []
    write_run(tmp_path, agg, {"duration_s": 1.0}, pause=lambda: calls.append(1))
    assert len(calls) == 1 + len(counted)


def test_slo_objectives_reach_the_summary(tmp_path: Path) -> None:
    agg, _ = _aggregator()
    objectives = parse_objectives(["ttft.p99 < 100ms"])
    summary = write_run(tmp_path, agg, {"duration_s": 10.0}, slo=objectives)
    assert summary["slo"]["objectives"] == ["ttft.p99 < 100ms"]
    assert summary["transports"]["rest"]["slo"]["met"] == 0  # no SloChecker recorded the turns: none met
    assert "slo" not in write_run(tmp_path, agg, {"duration_s": 10.0})


def test_kept_intervals_are_written_and_a_sinks_log_is_left_alone(tmp_path: Path) -> None:
    agg, clock = _aggregator()
    clock.now += 5.0
    agg.maybe_roll()
    clock.now += 1.0
    agg.maybe_roll(force=True)
    assert len(agg.intervals) == 2
    write_run(tmp_path / "kept", agg, {"duration_s": 6.0})
    lines = (tmp_path / "kept" / INTERVALS_LOG).read_text(encoding="utf-8").splitlines(keepends=True)
    assert lines == [json.dumps(i.to_json(), separators=(",", ":")) + "\n" for i in agg.intervals]
    assert [json.loads(line)["start"] for line in lines] == [1000.0, 1005.0]

    log = IntervalLog(tmp_path / "sink")
    agg, clock = _aggregator(on_interval=log)
    clock.now += 5.0
    agg.maybe_roll()
    log.close()
    before = (tmp_path / "sink" / INTERVALS_LOG).read_bytes()
    assert before.count(b"\n") == 1
    write_run(tmp_path / "sink", agg, {"duration_s": 5.0})
    assert (tmp_path / "sink" / INTERVALS_LOG).read_bytes() == before


def test_a_write_stopped_before_the_rename_leaves_the_last_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agg, _ = _aggregator()
    write_run(tmp_path, agg, {"id": "first", "duration_s": 1.0})
    first = (tmp_path / SUMMARY_FILE).read_bytes()

    def killed(src: Any, dst: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(rundir.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_run(tmp_path, agg, {"id": "second", "duration_s": 1.0})
    assert (tmp_path / SUMMARY_FILE).read_bytes() == first
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [HISTOGRAMS_FILE, HISTOGRAMS_FILE + ".tmp", SUMMARY_FILE]  # histograms are written first
    assert json.loads((tmp_path / (HISTOGRAMS_FILE + ".tmp")).read_text(encoding="utf-8"))["unit"] == "us"


def test_load_json_reads_utf8(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_bytes('{"name": "café ✓"}'.encode())
    assert load_json(path) == {"name": "café ✓"}
