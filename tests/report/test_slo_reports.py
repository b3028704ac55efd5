"""SLO figures, TPOT and the latency from the intended start in the report files and the thresholds, and rates over
the steady state."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from report_helpers import make_run, update_summary

from loadgen.report.files import write_reports
from loadgen.report.rundata import load_run
from loadgen.report.thresholds import evaluate, parse_thresholds

SLO = ("ttft.p99 < 80ms", "rest.e2e_from_intended.p99 < 1s")


@pytest.fixture
def slo_run(tmp_path: Path) -> Path:
    return make_run(tmp_path / "reports", "slo", transports=("rest", "grpc"), slo=SLO)


def test_the_slo_figures_reach_the_csv_and_the_html(slo_run: Path) -> None:
    summary = json.loads((slo_run / "summary.json").read_text())
    write_reports(slo_run)
    rows = {(r["transport"], r["dialogue"], r["turn"]): r for r in csv.DictReader((slo_run / "turns.csv").open())}
    for transport in ("rest", "grpc"):
        figures = summary["transports"][transport]["slo"]
        row = rows[(transport, "*", "0")]
        assert int(row["slo_met"]) == figures["met"] and 0 < figures["met"] < summary["transports"][transport]["count"]
        assert float(row["slo_attainment"]) == pytest.approx(figures["attainment"])
        assert float(row["goodput_per_s"]) == pytest.approx(figures["goodput_per_s"])
        assert float(row["tpot_p50_ms"]) == summary["transports"][transport]["tpot_ms"]["p50"]
    # the rest-only objective is not checked on grpc turns, nor evaluated for grpc
    assert [c["objective"] for c in summary["slo"]["transports"]["grpc"]["checks"]] == ["ttft.p99 < 80ms"]
    html = (slo_run / "report.html").read_text()
    assert 'id="slo-table"' in html and 'id="intended-table"' in html
    assert "rest.e2e_from_intended.p99 &lt; 1s" in html


def test_thresholds_on_attainment_goodput_and_the_new_latencies(slo_run: Path) -> None:
    data = load_run(slo_run)
    rest = data.summary["transports"]["rest"]
    attainment = rest["slo"]["attainment"]
    expressions = [
        f"rest.slo_attainment >= {100 * attainment - 0.1:.3f}%",
        f"rest.slo_attainment > {100 * attainment + 0.1:.3f}%",
        f"rest.goodput_per_s >= {rest['slo']['goodput_per_s'] - 0.01:.3f}",
        "rest.tpot.p50 < 1s",
        "rest.e2e_from_intended.p99 >= 1us",
    ]
    results = evaluate(data, parse_thresholds(expressions))
    assert [r.passed for r in results] == [True, False, True, True, True]
    assert results[0].detail.startswith("SLO attainment = ")


def test_slo_thresholds_of_a_run_without_slos_have_no_data(tmp_path: Path) -> None:
    data = load_run(make_run(tmp_path / "reports", "plain", transports=("rest",)))
    results = evaluate(data, parse_thresholds(["slo_attainment >= 1%", "goodput_per_s >= 0"]))
    assert [(r.passed, r.detail) for r in results] == [(False, "no data: the run had no --slo")] * 2


def test_throughput_thresholds_read_the_steady_duration(slo_run: Path) -> None:
    data = load_run(slo_run)
    turns = data.summary["transports"]["rest"]["count"]
    update_summary(slo_run, run={"steady": {"start": 0.0, "end": 4.0, "duration_s": 4.0}})
    data = load_run(slo_run)
    assert data.duration_s == 4.0
    [result] = evaluate(data, parse_thresholds([f"rest.turns_per_s >= {turns / 4.0 - 0.01:.3f}"]))
    assert result.passed and result.observed == pytest.approx(turns / 4.0)
