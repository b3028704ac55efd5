"""The transport comparison tabulated from run folders: figures with intervals, verdicts, the warm-up cut, lagging
rounds, recovery and sweep figures, and what was measured beside the runs (CPU, the floor)."""

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from report_helpers import T0, make_run, outage, run_command, soak_fields, update_summary

from loadgen.errors import ConfigError
from loadgen.report import transports_cli
from loadgen.report.transports_build import Judging, from_folders, from_rounds_file


def _table(out_dir: Path) -> dict[str, dict[str, str]]:
    return {r["transport"]: r for r in csv.DictReader((out_dir / "comparison.csv").open())}


def _json(out_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out_dir / "comparison.json").read_text())
    return data


def _verdict(out_dir: Path, figure: str) -> dict[str, Any]:
    (found,) = [d for d in _json(out_dir)["differences"] if d["figure"] == figure]
    return found


def test_table_from_finished_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reports = tmp_path / "reports"
    rest = make_run(reports, "t-rest", transports=("rest",), intervals=2)
    grpc = make_run(reports, "t-grpc", transports=("grpc",), intervals=2, scale=1.4)
    code = run_command(transports_cli, ["--runs", f"{rest},{grpc}", "--id", "t", "--reports-dir", str(reports)])
    assert code == 0
    out = capsys.readouterr().out
    assert "| transport | run | turns | e2e avg (ms) |" in out
    assert "| transport | avg latency (ms) | p95 latency (ms) | max turns/s within SLO | error rate |" in out
    rows = list(csv.DictReader((reports / "t" / "comparison.csv").open()))
    assert [r["transport"] for r in rows] == ["rest", "grpc"]
    assert float(rows[1]["e2e_p99_ms"]) > float(rows[0]["e2e_p99_ms"])
    for name in ("comparison.md", "comparison.csv", "comparison.json", "comparison.html"):
        assert (reports / "t" / name).stat().st_size > 0
    assert "cmp-dist-e2e" in (reports / "t" / "comparison.html").read_text()
    # one round each: intervals from the turns; a figure of the round as a whole has none, and is not judged
    for row in rows:
        assert float(row["ttft_p50_ms_ci_low"]) <= float(row["ttft_p50_ms"]) <= float(row["ttft_p50_ms_ci_high"])
        assert row["turns_per_s"] and row["turns_per_s_ci_low"] == row["turns_per_s_ci_high"] == ""
        assert row["client_cpu_ms_per_turn"] == row["floor_ttft_p50_ms"] == row["max_turns_per_s_slo"] == ""
    assert "not judged" in _verdict(reports / "t", "turns_per_s")["verdict"]
    ttft = _verdict(reports / "t", "ttft_p50_ms")
    assert (
        ttft["shown"]
        and ttft["verdict"].startswith("grpc TTFT p50 ")
        and " ms higher than rest, 95% CI " in ttft["verdict"]
    )


def test_csv_and_json_carry_the_same_figures_and_intervals(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    folders = [make_run(reports, f"j{i}-rest", transports=("rest",), intervals=2, seed=i) for i in range(3)]
    assert (
        run_command(transports_cli, ["--runs", ",".join(map(str, folders)), "--id", "j", "--reports-dir", str(reports)])
        == 0
    )
    row, saved = _table(reports / "j")["rest"], _json(reports / "j")
    assert (row["run"], row["rounds"], row["rounds_kept"]) == ("3/3 rounds", "3", "3")
    figures = saved["transports"]["rest"]["figures"]
    for key in ("e2e_avg_ms", "e2e_p95_ms", "ttft_p50_ms", "itl_p50_ms", "turns_per_s", "error_rate", "retention"):
        for part, column in (("value", key), ("ci_low", f"{key}_ci_low"), ("ci_high", f"{key}_ci_high")):
            assert figures[key][part] == pytest.approx(float(row[column]), abs=1e-3), (key, part)
    assert saved["transports"]["rest"]["turns"] == int(row["turns"]) == 3 * 2 * 96
    assert [r["round"] for r in saved["rounds"]] == [1, 2, 3] and all(r["kept"] == "yes" for r in saved["rounds"])


def test_a_known_difference_is_shown_and_identical_configurations_show_none(tmp_path: Path) -> None:
    """Three rounds per arm: one arm's latencies 30% above the other's is shown; the same distribution (other
    seeds) is not."""
    reports = tmp_path / "reports"

    def rounds(transport: str, scale: float, seeds: range) -> list[Path]:
        return [
            make_run(reports, f"{transport}{s}", transports=(transport,), intervals=2, seed=s, scale=scale)
            for s in seeds
        ]

    how = Judging(0.0)
    slower = from_folders([*rounds("rest", 1.0, range(1, 4)), *rounds("amqp", 1.3, range(4, 7))], "slower", how)
    diffs = {d.figure.key: d for d in slower.diffs}
    for key in ("ttft_p50_ms", "e2e_avg_ms", "e2e_p50_ms"):
        assert diffs[key].shown and diffs[key].interval is not None and diffs[key].interval.low > 0, diffs[key].verdict
        assert " higher than rest, 95% CI " in diffs[key].verdict
    same = from_folders([*rounds("rest", 1.0, range(1, 4)), *rounds("amqp", 1.0, range(11, 14))], "same", how)
    for d in same.diffs:
        if d.figure.key in ("ttft_p50_ms", "ttft_p99_ms", "e2e_avg_ms", "e2e_p50_ms", "e2e_p95_ms", "itl_p50_ms"):
            assert not d.shown and d.verdict.startswith(f"amqp vs rest {d.figure.label}: no difference shown"), (
                d.verdict
            )


def test_the_warm_up_is_left_out(tmp_path: Path) -> None:
    """The first two 5 s intervals are five times slower: a 10 s warm-up leaves them out."""
    reports = tmp_path / "reports"
    run = make_run(reports, "w-rest", transports=("rest",), intervals=6, scale_at=lambda i: 5.0 if i < 2 else 1.0)
    whole = from_folders([run], "whole", Judging(0.0)).rows[0]
    cut = from_folders([run], "cut", Judging(10.0)).rows[0]
    assert cut["turns"] == 4 * 96 and whole["turns"] == 6 * 96
    assert cut["ttft_p99_ms"] < whole["ttft_p99_ms"] / 2
    assert cut["turns_per_s"] == pytest.approx(4 * 96 / 20.0)
    ttft_after = from_folders([make_run(reports, "n-rest", transports=("rest",), intervals=4)], "n", Judging(0.0))
    assert cut["ttft_p50_ms"] == pytest.approx(ttft_after.rows[0]["ttft_p50_ms"], rel=0.2)


def test_lagging_rounds_are_marked_and_left_out_unless_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """amqp's second round lagged (6-9 ms) and ran three times slower: left out, amqp and rest are the same."""
    reports = tmp_path / "reports"
    rest = [make_run(reports, f"l{i}-rest", transports=("rest",), intervals=2) for i in (1, 2)]
    amqp = [
        make_run(reports, "l1-amqp", transports=("amqp",), intervals=2),
        make_run(reports, "l2-amqp", transports=("amqp",), intervals=2, scale=3.0, lag_us=(6000, 9000)),
    ]
    argv = ["--runs", ",".join(map(str, [*rest, *amqp])), "--reports-dir", str(reports)]
    assert run_command(transports_cli, [*argv, "--id", "left"]) == 0
    out = capsys.readouterr().out
    assert "- amqp round 2 left out: generator lag p99 9.0 ms > 5 ms (--keep-lagging-rounds keeps it)" in out
    row = _table(reports / "left")["amqp"]
    assert (row["rounds"], row["rounds_kept"], row["turns"]) == ("2", "1", str(2 * 96))
    assert float(row["lag_p99_ms"]) < 5.0
    rounds = {(r["transport"], r["round"]): r["kept"] for r in _json(reports / "left")["rounds"]}
    assert rounds[("amqp", 2)] == "no: generator lag p99 9.0 ms > 5 ms" and rounds[("amqp", 1)] == "yes"
    assert _verdict(reports / "left", "ttft_p50_ms")["value"] == 0.0  # the same data as rest's rounds
    assert run_command(transports_cli, [*argv, "--id", "kept", "--keep-lagging-rounds"]) == 0
    kept = _table(reports / "kept")["amqp"]
    assert kept["rounds_kept"] == "2" and float(kept["lag_p99_ms"]) > 5.0
    assert _verdict(reports / "kept", "ttft_p50_ms")["value"] > 0.5 * float(kept["ttft_p50_ms"]) - 1e-9
    assert run_command(transports_cli, [*argv, "--id", "limit", "--lag-limit-ms", "10"]) == 0
    assert _table(reports / "limit")["amqp"]["rounds_kept"] == "2"


def test_recovery_per_transport_under_one_fault_schedule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The seed's table: per transport, latency, turns/s, error rate and recovery time, from each run's summary."""
    reports = tmp_path / "reports"
    rest = make_run(reports, "f-rest", transports=("rest",), intervals=2)
    grpc = make_run(reports, "f-grpc", transports=("grpc",), intervals=2)
    old = make_run(reports, "f-amqp", transports=("amqp",), intervals=2)  # a folder with no recovery figures
    faults = [{"fault": "3s+2s down", "kind": "down", "start_s": 3.0, "end_s": 5.0}]
    update_summary(rest, **soak_fields(10.0, ("rest",), outages=[outage("rest", 3.1, 5.2, 0.4)], faults=faults))
    two = [outage("grpc", 3.0, 6.0, 1.8), outage("grpc", 8.0, 9.0, 0.2)]
    update_summary(grpc, **soak_fields(10.0, ("grpc",), outages=two, faults=faults))
    argv = ["--runs", f"{rest},{grpc},{old}", "--id", "f", "--reports-dir", str(reports)]
    assert run_command(transports_cli, argv) == 0
    out = capsys.readouterr().out
    assert "| outages | recovery max (s) | recovery p50 (s) |" in out
    assert "- rest round 1: server faults injected: 3s+2s down" in out
    rows = _table(reports / "f")
    recovery = {t: (r["outages"], r["recovery_max_s"], r["recovery_p50_s"]) for t, r in rows.items()}
    assert recovery["rest"] == ("1", "0.4", "0.4") and recovery["grpc"] == ("2", "1.8", "1.8")
    assert (rows["amqp"]["outages"], rows["amqp"]["recovery_max_s"]) == ("", "")  # no data, not 0
    assert float(rows["grpc"]["turns_per_s"]) > 0 and rows["grpc"]["error_rate"]


def test_max_load_within_the_slo_comes_from_a_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reports = tmp_path / "reports"
    runs = ",".join(str(make_run(reports, f"s-{t}", transports=(t,), intervals=2)) for t in ("rest", "grpc"))
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_text(json.dumps({"transports": {"rest": {"max_sustainable_turns_per_s": 41.5}}}))
    (sweep / "sweep.html").write_text("<html></html>")
    assert (
        run_command(transports_cli, ["--runs", runs, "--id", "s", "--reports-dir", str(reports), "--sweep", str(sweep)])
        == 0
    )
    out = capsys.readouterr().out
    rows = _table(reports / "s")
    assert (rows["rest"]["max_turns_per_s_slo"], rows["grpc"]["max_turns_per_s_slo"]) == ("41.5", "")
    assert "| rest | " in out and " | 41.5 | " in out
    assert 'href="../../sweep/sweep.html"' in (reports / "s" / "comparison.html").read_text()
    (sweep / "sweep.json").write_text('{"points": []}')
    assert run_command(transports_cli, ["--runs", runs, "--reports-dir", str(reports), "--sweep", str(sweep)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        f"loadgen compare-transports: --sweep {sweep}: {sweep / 'sweep.json'} is not a sweep's result"
    )
    assert len(err.splitlines()) == 1


def _rounds_file(reports: Path, entries: list[dict[str, Any]], **extra: Any) -> Path:
    out = reports / "c"
    out.mkdir(parents=True)
    arms = [{"arm": "rest", "transport": "rest", "target": None}]
    saved = {"schema_version": 1, "id": "c", "arms": arms, "order": [["rest"]], "repeats": 1, "warmup_s": 0.0}
    (out / "rounds.json").write_text(json.dumps({**saved, **extra, "runs": entries}))
    return out


def test_cpu_per_turn_and_the_floor_from_what_was_measured_beside_the_run(tmp_path: Path) -> None:
    """Samples a second before and after a 20 s run (4 intervals of 96 turns) are read at its edges."""
    reports = tmp_path / "reports"
    make_run(reports, "c-rest", transports=("rest",), intervals=4)
    entry = {
        "round": 1, "arm": "rest", "transport": "rest", "run_dir": "c-rest", "log": "rest.log",
        "samples": [[T0 - 1.0, 10.0, 5.0, 100], [T0 + 21.0, 12.1, 6.05, 310]],
        "floor_ttft_ms": [18.0, 19.0, 20.0, 21.0, 90.0], "floor_failures": 1,
    }  # fmt: skip
    comparison = from_rounds_file(_rounds_file(reports, [entry]), "c", Judging())
    (row,) = comparison.rows
    assert row["client_cpu_ms_per_turn"] == pytest.approx(1000 * 2.1 * 20 / 22 / 384)  # 4.97 ms
    assert row["server_cpu_ms_per_turn"] == pytest.approx(1000 * 1.05 / 210)  # 5.0 ms per request it counted
    assert row["floor_ttft_p50_ms"] == 20.0
    assert row["ttft_above_floor_ms"] == pytest.approx(row["ttft_p50_ms"] - 20.0)
    assert row["ttft_above_floor_ms_ci_low"] < row["ttft_above_floor_ms"] < row["ttft_above_floor_ms_ci_high"]


def test_a_run_that_left_no_folder_is_noted(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    make_run(reports, "c-rest", transports=("rest",), intervals=2)
    entries = [
        {"round": 1, "arm": "rest", "transport": "rest", "run_dir": "c-rest", "log": "r1-rest.log"},
        {"round": 2, "arm": "rest", "transport": "rest", "run_dir": "c-r2-rest", "log": "r2-rest.log"},
    ]
    comparison = from_rounds_file(_rounds_file(reports, entries), "c", Judging())
    assert (
        comparison.notes[0].startswith("MISSING round 2, rest: no run folder ") and "r2-rest.log" in comparison.notes[0]
    )
    assert comparison.rows[0]["rounds"] == 1
    (reports / "c" / "rounds.json").write_text("{")
    with pytest.raises(ConfigError, match=r"rounds\.json: not a comparison's rounds file"):
        from_rounds_file(reports / "c", "c", Judging())


def test_run_time_syntax() -> None:
    assert transports_cli._seconds("30s") == 30
    assert transports_cli._seconds("1h30m") == 5400
    assert transports_cli._seconds("45") == 45
    with pytest.raises(ValueError, match="expected a duration"):
        transports_cli._seconds("soon")
