"""The peers script's pieces (no peer needed): skipping a peer that is not there, its steady window, and the
reading of GuideLLM's report."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.bench_peers import Result, build_tokenizer, fill_guidellm, parse_args, peer_missing, steady_cpu_ms


def test_a_peer_not_installed_is_skipped_with_one_line(tmp_path: Path) -> None:
    said = peer_missing("aiperf", None, "aiperf")
    assert said is not None and said.startswith("aiperf: skipped, not installed here")
    assert "--aiperf-venv DIR or $LOADGEN_PEERS_AIPERF_VENV" in said
    said = peer_missing("guidellm", str(tmp_path), "guidellm")
    assert said == f"guidellm: skipped, {tmp_path}/bin/guidellm does not exist (pip install it into that venv)"
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "guidellm").write_text("")
    assert peer_missing("guidellm", str(tmp_path), "guidellm") is None


def test_venvs_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADGEN_PEERS_AIPERF_VENV", "/somewhere/aiperf")
    monkeypatch.delenv("LOADGEN_PEERS_GUIDELLM_VENV", raising=False)
    args = parse_args(["-c", "8"])
    assert (args.aiperf_venv, args.guidellm_venv, args.concurrency, args.seconds) == ("/somewhere/aiperf", None, 8, 30)
    with pytest.raises(SystemExit):
        parse_args(["-t", "2"])


def test_steady_window_leaves_out_the_ramp_and_the_end() -> None:
    # (tree CPU s, requests the server received) once a second: idle start-up, 10 requests/s at 0.02 CPU-s
    # each in steady state, a costly ramp and a costly end (reports) that must not count
    samples = [(1.0, 0), (2.0, 0), (2.5, 5)]
    samples += [(2.5 + 0.2 * i, 5 + 10 * i) for i in range(1, 11)]
    samples += [(9.0, 105), (9.5, 105)]
    assert steady_cpu_ms(samples, ramp=2) == pytest.approx(20.0)
    assert steady_cpu_ms([(1.0, 0), (2.0, 3), (3.0, 3)]) is None  # too short a window
    assert steady_cpu_ms([(1.0, 0), (2.0, 0)]) is None  # nothing served


def test_guidellm_report_is_read(tmp_path: Path) -> None:
    def dist(mean: float, p50: float, p99: float) -> dict[str, object]:
        return {"successful": {"mean": mean, "percentiles": {"p50": p50, "p99": p99}}}

    report = {"benchmarks": [{"metrics": {
        "request_totals": {"successful": 60, "errored": 0, "incomplete": 10},
        "requests_per_second": dist(6.0, 1.4, 123.0), "request_latency": dist(1.467, 1.464, 1.496),
        "time_to_first_token_ms": dist(205.6, 202.1, 236.2),
    }}]}  # fmt: skip
    result = Result("guidellm")
    fill_guidellm(result, report)
    assert (result.requests, result.throughput, result.latency_mean_ms) == (60, 6.0, pytest.approx(1467.0))
    assert (result.ttft_p50_ms, result.ttft_p99_ms) == (202.1, 236.2)
    result.cpu_s, result.steady_cpu_ms, result.processes = 1.2, 7.5, 14
    row = result.row(10, 200.0)
    assert row.startswith("| guidellm | 60 | 6.0 | 20.00 | **7.50** | 14 | 10 | 8.8 | 202.1 / 236.2 (+2.1 / +36.2)")


def test_the_tiny_tokenizer_loads_from_its_folder(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    folder = build_tokenizer(tmp_path / "tok")
    tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert tokenizer.encode("w1 w2 nothing").ids == [3, 4, 0]
    assert (folder / "tokenizer_config.json").exists()
