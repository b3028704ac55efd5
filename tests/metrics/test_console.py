"""The end-of-run console table: a latency with no sample is "-" (never 0.0, whether the summary says null or, as an
older one did, 0.0 with count 0); outages, recovery, faults and drift are listed after it."""

from __future__ import annotations

from typing import Any

from loadgen.metrics.console import format_table


def _block(count: int, value: float | None) -> dict[str, Any]:
    stats = dict.fromkeys(("p50", "p95", "p99", "max", "mean"), value)
    return {**stats, "count": count, "out_of_range": 0}


def _row(count: int, failures: int, latency: float | None, samples: int, **extra: Any) -> dict[str, Any]:
    return {
        "count": count,
        "failures": failures,
        "e2e_ms": _block(samples, latency),
        "ttft_ms": _block(samples, latency),
        "itl_ms": _block(samples, latency),
        "retention": {"checked": 0, "passed": 0, "rate": None},
        **extra,
    }


def test_no_sample_is_a_dash_and_events_follow_the_table() -> None:
    summary = {
        "turns": [
            {"transport": "rest", "dialogue": "chat", "turn": 1, **_row(10, 10, None, 0)},  # schema 2: null
            {"transport": "rest", "dialogue": "chat", "turn": 2, **_row(10, 10, 0.0, 0)},  # schema 1: 0.0, count 0
            {"transport": "rest", "dialogue": "chat", "turn": 3, **_row(10, 0, 12.5, 10)},
        ],
        "transports": {"rest": _row(30, 20, 12.5, 10)},
        "generator_lag_ms": {"p50": None, "p95": None, "p99": None, "max": None, "mean": None, "count": 0},
        "outages": [
            {"transport": "rest", "start_s": 10.0, "end_s": 20.0, "duration_s": 10.0, "failed_turns": 15, "users": 4,
             "recovery_s": 1.8},
            {"transport": "rest", "start_s": 50.0, "end_s": None, "duration_s": None, "failed_turns": 5, "users": 2,
             "recovery_s": None},
        ],
        "recovery": {"rest": {"outages": 2, "max_s": 1.8, "p50_s": 1.8}, "grpc": {"outages": 0, "max_s": None,
                                                                                  "p50_s": None}},
        "faults": [{"fault": "10s+10s down", "kind": "down", "start_s": 10.0, "end_s": 20.0},
                   {"fault": "45s forget-sessions", "kind": "forget-sessions", "start_s": 45.0, "end_s": None}],
        "drift": {"rest": {"ttft_p99": {"windows": 8, "first": 80.0, "per_hour": 4.0, "pct_per_hour": 5.0},
                           "error_rate": {"windows": 8, "first": 0.0, "per_hour": 0.002, "pct_per_hour": None}},
                  "grpc": {"ttft_p99": {"windows": 2, "first": None, "per_hour": None, "pct_per_hour": None}}},
        "warnings": ["a warning"],
    }  # fmt: skip
    lines = format_table(summary).splitlines()
    dash_row = "rest      chat                  1      10     10         -         -         -         -         -"
    assert lines[3] == dash_row + "        -        - -        "
    assert lines[4] == lines[3].replace("   1 ", "   2 ")
    assert lines[5].startswith("rest      chat                  3      10      0      12.5      12.5      12.5")
    assert lines[6].startswith("rest      (all)                 0      30     20      12.5")
    assert lines[7:] == [
        "generator lag: - (no samples)",
        "outages grpc: none",
        "outages rest: 2 (20 failed turns, longest 10.00 s), recovery max 1.80 s, p50 1.80 s; 1 still out at the end",
        "server fault: 10s+10s down at 10.0-20.0 s",
        "server fault: 45s forget-sessions at 45.0 s",
        "drift grpc: TTFT p99 -, error rate -",
        "drift rest: TTFT p99 +5.00%/h, error rate +0.200pp/h",
        "WARNING: a warning",
    ]
    assert " 0.0 " not in "\n".join(lines[3:5])
