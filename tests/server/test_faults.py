"""The --faults schedule language and the schedule's answers (what holds when, which edges passed)."""

from __future__ import annotations

import pytest

from loadgen.errors import ConfigError
from loadgen.server.faults import Fault, FaultKind, FaultLog, FaultSchedule, FaultState, parse_faults

SEED_SPEC = "30s+10s down; 60s+5s stall; 90s+20s error 5%; 120s+10s slow 3x; 150s forget-sessions"


def test_the_example_schedule_parses_to_these_faults() -> None:
    assert parse_faults(SEED_SPEC) == [
        Fault(FaultKind.DOWN, 30.0, 10.0),
        Fault(FaultKind.STALL, 60.0, 5.0),
        Fault(FaultKind.ERROR, 90.0, 20.0, share=0.05),
        Fault(FaultKind.SLOW, 120.0, 10.0, factor=3.0),
        Fault(FaultKind.FORGET_SESSIONS, 150.0, 0.0),
    ]


@pytest.mark.parametrize(
    ("text", "start", "duration"),
    [("500ms+1.5s down", 0.5, 1.5), ("2m+30s stall", 120.0, 30.0), ("0s+100ms down", 0.0, 0.1)],
)
def test_time_units(text: str, start: float, duration: float) -> None:
    (fault,) = parse_faults(text)
    assert (fault.start_s, fault.duration_s) == (pytest.approx(start), pytest.approx(duration))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "--faults is empty"),
        ("30s down", "down lasts a while: write START\\+DURATION, e.g. 30s\\+10s"),
        ("30s+1s forget-sessions", "forget-sessions is an instant"),
        ("30s+10s explode", "unknown fault 'explode': choose one of down, stall, error, slow, forget-sessions"),
        ("30+10s down", "entry 1 .*'30' is not a time: write e.g. 30s"),
        ("thirty+10s down", "'thirty' is not a time"),
        ("30s+0s down", "the duration must be more than 0"),
        ("30s+10s error", "write it as '30s\\+10s error 5%'"),
        ("30s+10s error 0%", "a percentage above 0"),
        ("30s+10s error 150%", "a percentage above 0 and up to 100%"),
        ("30s+10s error five", "a percentage"),
        ("30s+10s slow 0x", "a factor above 0"),
        ("30s+10s slow 3", "a factor above 0, e.g. 3x"),
        ("30s+10s down now", "write it as '30s\\+10s down'"),
        ("1s+1s down; 30s+10s", "entry 2 .*expected START"),
        ("30s+10s down; 35s+10s down", "'30s\\+10s down' and '35s\\+10s down' overlap"),
    ],
)
def test_bad_schedules_name_the_entry_and_what_to_write(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_faults(spec)


def test_faults_of_different_kinds_may_overlap_and_back_to_back_is_not_overlap() -> None:
    faults = parse_faults("10s+10s slow 2x; 12s+2s error 50%; 20s+5s slow 4x")
    schedule = FaultSchedule(faults)
    assert schedule.state(9.999).healthy
    assert schedule.state(10.0) == FaultState(slow_factor=2.0)
    assert schedule.state(13.0) == FaultState(error_share=0.5, slow_factor=2.0)
    assert schedule.state(14.0) == FaultState(slow_factor=2.0)
    assert schedule.state(20.0) == FaultState(slow_factor=4.0)  # the first ended as the second began
    assert schedule.state(25.0).healthy


def test_edges_come_once_in_order_ends_before_starts() -> None:
    schedule = FaultSchedule(parse_faults("1s+1s down; 2s+1s stall; 2.5s forget-sessions"))
    assert schedule.next_edge_s() == 1.0
    assert list(schedule.edges(0.5)) == []
    seen = [(e.fault.kind.value, e.starting, e.at_s) for e in schedule.edges(2.0)]
    assert seen == [("down", True, 1.0), ("down", False, 2.0), ("stall", True, 2.0)]
    assert list(schedule.edges(2.0)) == []  # handed out once
    seen = [(e.fault.kind.value, e.starting) for e in schedule.edges(10.0)]
    assert seen == [("forget-sessions", True), ("stall", False)]
    assert schedule.next_edge_s() is None


def test_log_records_real_start_and_end() -> None:
    down, forget = parse_faults("1s+1s down; 3s forget-sessions")
    log = FaultLog(started_at=1000.0)
    log.begin(down, 1001.02)
    log.begin(forget, 1003.0)
    log.end(down, 1002.05)
    assert log.to_json() == {
        "started_at": 1000.0,
        "faults": [
            {"fault": "1s+1s down", "kind": "down", "start": 1001.02, "end": 1002.05},
            {"fault": "3s forget-sessions", "kind": "forget-sessions", "start": 1003.0, "end": 1003.0},
        ],
    }
