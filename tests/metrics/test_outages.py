"""Outages and recovery from the turns' outcomes (loadgen.metrics.outages)."""

from __future__ import annotations

import json
import random

import pytest

from loadgen.metrics.outages import (
    MAX_FAILURES_PER_REPORT,
    Outage,
    OutageEvents,
    OutageRecorder,
    find_outages,
)

T0 = 1_000_000.0


def _turns(recorder: OutageRecorder, turns: list[tuple[str, float, float, bool]], transport: str = "rest") -> None:
    for user, sent, done, ok in sorted(turns, key=lambda t: t[2]):
        recorder.turn(transport, user, T0 + sent, T0 + done, ok)


def _outages(*recorders: OutageRecorder, transport: str = "rest") -> list[Outage]:
    merged = OutageEvents()
    for recorder in recorders:
        merged.merge_wire(json.loads(json.dumps(recorder.take_wire())))  # through JSON, as a worker ships it
    return find_outages(transport, merged.of(transport))


def test_a_healthy_run_records_nothing() -> None:
    recorder = OutageRecorder()
    _turns(recorder, [(f"u{i}", t, t + 0.2, True) for i in range(5) for t in range(10)])
    assert recorder.take_wire() == {"v": 1, "t": {}}


def test_a_clean_outage_and_an_instant_recovery() -> None:
    recorder = OutageRecorder()
    _turns(
        recorder,
        [
            ("a", 1.0, 1.2, True), ("b", 1.5, 1.7, True),
            ("a", 10.0, 10.01, False), ("b", 11.0, 11.01, False), ("a", 13.0, 13.01, False),
            ("b", 20.5, 20.7, True),  # the service is back: first success
            ("a", 22.0, 22.2, True),  # a thought for a while, then succeeded: not "still failing"
        ],
    )  # fmt: skip
    (outage,) = _outages(recorder)
    assert outage.to_json(T0) == {
        "transport": "rest", "start_s": 10.01, "end_s": 20.7, "duration_s": 10.69,
        "failed_turns": 3, "users": 2, "recovery_s": 0.0,
    }  # fmt: skip


def test_turns_sent_after_the_service_came_back_that_still_fail_are_the_recovery() -> None:
    # gRPC-like: b's channel is in reconnect backoff and keeps failing for 3 s after a's first success
    recorder = OutageRecorder()
    _turns(
        recorder,
        [
            ("a", 0.0, 0.2, True),
            ("a", 5.0, 5.01, False), ("b", 5.5, 5.51, False),
            ("a", 8.0, 8.2, True),
            ("b", 8.5, 8.51, False), ("b", 10.0, 10.01, False), ("b", 11.0, 11.2, True),
            ("b", 30.0, 30.01, False), ("b", 31.0, 31.2, True),  # a second, separate outage
        ],
    )  # fmt: skip
    first, second = _outages(recorder)
    assert (first.start_s, first.end_s, first.failed_turns, first.users) == (T0 + 5.01, T0 + 8.2, 4, 2)
    assert first.recovery_s == pytest.approx(10.01 - 8.2)
    assert (second.start_s, second.failed_turns, second.users, second.recovery_s) == (T0 + 30.01, 1, 1, 0.0)


def test_a_turn_sent_before_the_comeback_that_times_out_after_it_is_not_recovery() -> None:
    recorder = OutageRecorder()
    _turns(
        recorder,
        [("a", 0.0, 0.1, True), ("a", 1.0, 6.0, False), ("b", 2.0, 2.1, False), ("b", 4.0, 4.1, True),
         ("a", 8.0, 8.1, True)],
    )  # fmt: skip
    (outage,) = _outages(recorder)
    assert (outage.failed_turns, outage.users, outage.recovery_s) == (2, 2, 0.0)


def test_still_out_at_the_end() -> None:
    recorder = OutageRecorder()
    _turns(recorder, [("a", 0.0, 0.1, True), ("a", 1.0, 1.1, False), ("b", 2.0, 2.1, False)])
    (outage,) = _outages(recorder)
    assert outage.to_json(T0)["end_s"] is None
    assert (outage.failed_turns, outage.users, outage.recovery_s, outage.duration_s) == (2, 2, None, None)


def test_two_processes_merge_to_what_one_process_finds() -> None:
    rng = random.Random(7)
    turns = []
    for user in range(20):
        t = rng.uniform(0, 2)
        while t < 60:
            down = 20 <= t < 30 or (user % 3 == 0 and 30 <= t < 33)  # a third of users recover late
            turns.append((f"u{user}", t, t + 0.3, not down))
            t += 0.3 + rng.uniform(1, 3)
    single = OutageRecorder()
    _turns(single, turns)
    left, right = OutageRecorder(), OutageRecorder()
    _turns(left, [t for t in turns if int(t[0][1:]) < 10])
    _turns(right, [t for t in turns if int(t[0][1:]) >= 10])
    expected = _outages(single)
    assert len(expected) == 1
    assert expected[0].recovery_s is not None and 0.5 < expected[0].recovery_s < 3.5
    assert _outages(left, right) == expected


def test_failures_past_the_cap_are_counted_not_kept() -> None:
    recorder = OutageRecorder()
    for i in range(MAX_FAILURES_PER_REPORT + 5):
        recorder.turn("rest", "u", T0 + i, T0 + i + 0.5, False)
    wire = recorder.take_wire()
    assert len(wire["t"]["rest"]["f"]) == MAX_FAILURES_PER_REPORT
    assert wire["t"]["rest"]["d"] == 5


def test_transports_are_kept_apart() -> None:
    recorder = OutageRecorder()
    _turns(recorder, [("a", 0, 0.1, True), ("a", 1, 1.1, False), ("a", 2, 2.1, True)], transport="grpc")
    _turns(recorder, [("a", 0, 0.1, True)], transport="rest")
    merged = OutageEvents()
    merged.merge_wire(recorder.take_wire())
    assert [o.transport for o in find_outages("grpc", merged.of("grpc"))] == ["grpc"]
    assert find_outages("rest", merged.of("rest")) == []
