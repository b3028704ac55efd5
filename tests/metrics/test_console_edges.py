"""The end-of-run console table held to its exact text (loadgen.metrics.console): the header and its rule, each
column of a row, the defaults of a row with fields left out, and every line after the table (generator lag, TPOT,
SLOs, steady state, outages, faults, warnings) with the figures it is missing."""

from __future__ import annotations

from typing import Any

from loadgen.metrics.console import (
    _format,
    _row_values,
    event_lines,
    format_table,
    latency_lines,
    slo_lines,
    steady_line,
)

HEADER = (
    "transport dialogue           turn   count   fail   e2e p50   e2e p95   e2e p99  ttft p50  ttft p99  itl p50"
    "  itl p99 retained "
)


def _block(count: int = 1, **stats: float | None) -> dict[str, Any]:
    return {"count": count, **stats}


def _row(**extra: Any) -> dict[str, Any]:
    return {
        "count": 4,
        "failures": 1,
        "e2e_ms": _block(4, p50=101.0, p95=102.0, p99=103.0, max=109.0, mean=104.0),
        "ttft_ms": _block(4, p50=11.0, p95=12.0, p99=13.0, max=19.0, mean=14.0),
        "itl_ms": _block(4, p50=1.5, p95=2.0, p99=2.25, max=3.0, mean=1.75),
        "retention": {"checked": 8, "passed": 6, "rate": 0.75},
        **extra,
    }


def _summary(**extra: Any) -> dict[str, Any]:
    return {"turns": [], "transports": {}, **extra}


def _after_table(summary: dict[str, Any]) -> list[str]:
    lines = format_table(summary).splitlines()
    return lines[[line.startswith("generator lag:") for line in lines].index(True) :]


def test_the_title_header_and_rule_are_exact() -> None:
    lines = format_table(_summary()).splitlines()
    assert lines[:3] == ["Per-turn latency (ms) and context retention", HEADER, "-" * 126]
    assert len(HEADER) == 126
    assert lines[3:] == ["generator lag: - (no samples)"]  # no rows, no generator_lag_ms, no warnings key


def test_each_latency_goes_to_its_column_and_long_names_are_cut() -> None:
    summary = _summary(
        turns=[{"transport": "websocket-x", "dialogue": "a-very-long-dialogue-name", "turn": 12, **_row()}],
        transports={"websocket-x": _row(retention={"checked": 3, "passed": 1, "rate": 0.33})},
    )
    lines = format_table(summary).splitlines()
    assert lines[3] == (
        "websocket a-very-long-dialog   12       4      1     101.0     102.0     103.0      11.0      13.0     1.50"
        "     2.25 75.0%    "
    )
    assert lines[4] == (
        "websocket (all)                 0       4      1     101.0     102.0     103.0      11.0      13.0     1.50"
        "     2.25 33.3%    "
    )


def test_a_transport_row_always_reads_all_and_turn_0_even_if_its_figures_name_others() -> None:
    summary = _summary(transports={"rest": _row(dialogue="chat", turn=3)})
    assert format_table(summary).splitlines()[3].startswith("rest      (all)                 0       4      1")


def test_missing_statistics_and_retention_are_dashes() -> None:
    row = _row(
        e2e_ms=_block(4, p50=None, p95=5, p99=7.25),  # count but a null statistic; an int value
        ttft_ms=None,  # no block at all
        itl_ms={"p50": 1.0, "p99": 2.0},  # no count
        retention={"checked": 0, "passed": 0},
    )
    assert _format(_row_values({"transport": "rest", "dialogue": "d", "turn": 1, **row})) == (
        "rest      d                     1       4      1         -       5.0       7.2         -         -        -"
        "        - -        "
    )
    no_retention = {k: v for k, v in row.items() if k != "retention"}
    assert _row_values({"transport": "rest", **no_retention})[-1] == "-"
    assert _row_values({"transport": "rest", **row, "retention": None})[-1] == "-"


def test_a_row_without_names_is_the_unnamed_aggregate_of_turn_0() -> None:
    values = _row_values(_row())
    assert values[:5] == ["", "(all)", 0, 4, 1]
    assert _format(values).startswith("          (all)                 0       4      1     101.0")


def test_rows_come_per_transport_in_name_order_with_or_without_an_aggregate() -> None:
    summary = _summary(
        turns=[
            {"transport": "ws", "dialogue": "b", "turn": 1, **_row()},
            {"transport": "grpc", "dialogue": "a", "turn": 2, **_row()},
            {"transport": "ws", "dialogue": "a", "turn": 1, **_row()},
        ],
        transports={"ws": _row(), "amqp": _row()},
    )
    rows = [line[:33] for line in format_table(summary).splitlines()[3:8]]
    assert rows == [
        "amqp      (all)                 0",
        "grpc      a                     2",  # no aggregate row for it: just its turn
        "ws        b                     1",  # in the order the summary lists them
        "ws        a                     1",
        "ws        (all)                 0",
    ]


def test_the_generator_lag_line() -> None:
    lag = {"p50": 1.5, "p95": 5.0, "p99": 7.25, "max": 9.0, "mean": 2.0, "count": 5}
    assert _after_table(_summary(generator_lag_ms=lag)) == ["generator lag: p50 1.5 ms, p99 7.25 ms, max 9.0 ms"]
    assert _after_table(_summary(generator_lag_ms={**lag, "count": 0})) == ["generator lag: - (no samples)"]
    assert _after_table(_summary(generator_lag_ms={**lag, "p50": None})) == ["generator lag: - (no samples)"]
    assert _after_table(_summary(generator_lag_ms=None)) == ["generator lag: - (no samples)"]


def test_tpot_and_intended_start_lines() -> None:
    summary = _summary(
        transports={
            "rest": _row(tpot_ms=_block(3, p50=12.34, p99=45.67), e2e_from_intended_ms=_block(3, p99=250.0)),
            "amqp": _row(tpot_ms=_block(0, p50=1.0, p99=2.0), e2e_from_intended_ms=None),
            "grpc": _row(),  # a run folder from before these figures: no line
            "ws": _row(tpot_ms=None, e2e_from_intended_ms=_block(2, p50=3.0), e2e_ms=None),
        }
    )
    expected = [
        "amqp: TPOT p50 -, p99 -; e2e p99 from the intended start - (service e2e p99 103.0 ms)",
        "rest: TPOT p50 12.3 ms, p99 45.7 ms; e2e p99 from the intended start 250.0 ms (service e2e p99 103.0 ms)",
        "ws: TPOT p50 -, p99 -; e2e p99 from the intended start - (service e2e p99 -)",
    ]
    assert latency_lines(summary) == expected
    assert _after_table(summary)[1:] == expected
    assert latency_lines({}) == []


def test_slo_lines_name_goodput_attainment_and_what_did_not_hold() -> None:
    summary = _summary(
        transports={
            "rest": {"count": 6, "turns_per_s": 2.5, "slo": {"met": 3, "attainment": 0.125, "goodput_per_s": 1.25}},
            "grpc": {"slo": {"attainment": None, "goodput_per_s": None}, "turns_per_s": None},
            "ws": {"count": 2, "turns_per_s": 1.0},
        },
        slo={
            "objectives": ["ttft.p99 < 100ms", "e2e.p50 < 1s"],
            "transports": {
                "rest": {"checks": [{"objective": "ttft.p99 < 100ms", "held": True},
                                    {"objective": "e2e.p50 < 1s", "held": True}]},
                "grpc": {"checks": [{"objective": "ttft.p99 < 100ms", "held": True},
                                    {"objective": "e2e.p50 < 1s", "held": False},
                                    {"objective": "itl.p99 < 5ms"}]},
            },
        },
    )  # fmt: skip
    expected = [
        "SLOs: ttft.p99 < 100ms; e2e.p50 < 1s",
        "SLO grpc: goodput - of 0.00 turns/s, attainment - (0/0 turns); not held: e2e.p50 < 1s, itl.p99 < 5ms",
        "SLO rest: goodput 1.25 turns/s of 2.50 turns/s, attainment 12.5% (3/6 turns); all held",
        "SLO ws: goodput - of 1.00 turns/s, attainment - (0/2 turns); -",
    ]
    assert slo_lines(summary) == expected


def test_slo_lines_without_slos_or_objectives() -> None:
    assert slo_lines(_summary()) == []
    assert slo_lines(_summary(slo={})) == []
    assert slo_lines({"slo": {"objectives": None}}) == ["SLOs: "]
    checks = {"checks": [{"objective": "a", "held": None}]}
    got = slo_lines({"slo": {"objectives": ["a"], "transports": {"r": checks}}, "transports": {"r": {}}})
    assert got == ["SLOs: a", "SLO r: goodput - of 0.00 turns/s, attainment - (0/0 turns); not held: a"]


def test_the_steady_line_only_with_a_warm_up_or_cool_down() -> None:
    steady = {"start": 5.0, "end": 25.0, "duration_s": 20.0}
    assert steady_line({"steady": steady}) == []
    assert steady_line({"steady": steady, "warmup_s": 0, "cooldown_s": 0}) == []
    assert steady_line({"warmup_s": 5.0}) == []
    assert steady_line({"steady": steady, "warmup_s": 5.0}) == [
        "steady state: 20.0 s (warm-up 5 s and cool-down 0 s left out of the figures)"
    ]
    assert steady_line({"steady": {"duration_s": None}, "cooldown_s": 2.5, "warmup_s": None}) == [
        "steady state: 0.0 s (warm-up 0 s and cool-down 2.5 s left out of the figures)"
    ]
    run = {"steady": steady, "warmup_s": 1.5, "cooldown_s": 3}
    line = "steady state: 20.0 s (warm-up 1.5 s and cool-down 3 s left out of the figures)"
    assert _after_table(_summary(run=run)) == ["generator lag: - (no samples)", line]


def test_outage_lines_count_from_recovery_and_read_each_outage() -> None:
    summary = {
        "outages": [
            {"transport": "rest", "start_s": 1.0, "end_s": 4.0, "duration_s": 3.0, "failed_turns": 7},
            {"transport": "rest", "start_s": 9.0, "end_s": 9.5, "duration_s": 0.5},  # failed_turns left out: 0
            {"transport": "grpc", "start_s": 2.0, "end_s": None, "duration_s": None, "failed_turns": 2},
            {"transport": "ws", "start_s": 2.0, "end_s": 3.0, "duration_s": 1.0, "failed_turns": 1},
            {"transport": "amqp", "start_s": 2.0, "end_s": 3.0, "duration_s": 1.0, "failed_turns": 1},
        ],
        "recovery": {
            "rest": {"outages": 3, "max_s": 1.234, "p50_s": 0.5},  # more than listed: the count wins
            "grpc": {"max_s": None, "p50_s": None},  # no count: the listed ones
            "ws": {"outages": 0},  # a count of 0 (falsy): the listed ones
            "amqp": {"outages": 2},  # one listed
            "h2": {"outages": 0},  # none counted, none listed
        },
        "faults": [
            {"kind": "down", "start_s": 1.25, "end_s": 2.5},
            {"fault": "45s forget", "kind": "forget", "start_s": 45, "end_s": None},
        ],
    }
    assert event_lines(summary) == [
        "outages amqp: 2 (1 failed turns, longest 1.00 s), recovery max -, p50 -",
        "outages grpc: 1 (2 failed turns, longest -), recovery max -, p50 -; 1 still out at the end",
        "outages h2: none",
        "outages rest: 3 (7 failed turns, longest 3.00 s), recovery max 1.23 s, p50 0.50 s",
        "outages ws: 1 (1 failed turns, longest 1.00 s), recovery max -, p50 -",
        "server fault: down at 1.2-2.5 s",
        "server fault: 45s forget at 45 s",
    ]
    assert event_lines({}) == []


def test_lines_after_the_table_come_in_order_and_end_with_the_warnings() -> None:
    summary = _summary(
        transports={"rest": _row(tpot_ms=_block(1, p50=1.0, p99=1.0))},
        run={"steady": {"duration_s": 2.0}, "warmup_s": 1},
        recovery={"rest": {"outages": 0}},
        drift={"rest": {"ttft_p99": {"pct_per_hour": -1.5}, "error_rate": {"per_hour": 0.01}}},
        warnings=["first", "second"],
    )
    assert _after_table(summary) == [
        "generator lag: - (no samples)",
        "rest: TPOT p50 1.0 ms, p99 1.0 ms; e2e p99 from the intended start - (service e2e p99 103.0 ms)",
        "steady state: 2.0 s (warm-up 1 s and cool-down 0 s left out of the figures)",
        "outages rest: none",
        "drift rest: TTFT p99 -1.50%/h, error rate +1.000pp/h",
        "WARNING: first",
        "WARNING: second",
    ]
