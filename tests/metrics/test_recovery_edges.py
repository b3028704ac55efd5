"""The outage tracker (loadgen.metrics.recovery) held to exact values: outages still open to change, a settle at
the horizon's edge, the longest failed turn remembered across settles, the events dropped once settled or folded,
the recovery figures' rounding, and the settled record's counts."""

from __future__ import annotations

from typing import Any

from loadgen.metrics.outages import Outage, OutageEvents, OutageRecorder, find_outages
from loadgen.metrics.recovery import MAX_LISTED, OutageTracker, _Settled

T0 = 1_000_000.0
HORIZON_S = 20.0

Turn = tuple[str, float, float, bool]  # user, sent, done (seconds from T0), ok


def _wire(turns: list[Turn]) -> dict[str, Any]:
    recorder = OutageRecorder()
    for user, sent, done, ok in turns:
        recorder.turn("rest", user, T0 + sent, T0 + done, ok)
    return recorder.take_wire()


def _one_look(*wires: dict[str, Any]) -> list[dict[str, Any]]:
    events = OutageEvents()
    for wire in wires:
        events.merge_wire(wire)
    return [o.to_json(T0) for o in find_outages("rest", events.of("rest"))]


def test_the_settled_record_lists_the_first_outages_and_counts_every_one() -> None:
    settled = _Settled()
    for k in range(MAX_LISTED + 1):
        recovery = None if k % 4 == 0 else 0.25 * (k % 3)
        settled.add(Outage("rest", float(k), None if recovery is None else k + 1.0, 1, 1, recovery))
    assert len(settled.listed) == MAX_LISTED
    assert settled.listed[-1].start_s == MAX_LISTED - 1.0
    assert settled.count == MAX_LISTED + 1
    assert settled.ended == MAX_LISTED + 1 - (MAX_LISTED // 4 + 1)
    assert settled.recovery_us.count == settled.ended
    assert settled.max_recovery_s == 0.5


def test_a_flapping_service_keeps_only_the_listed_outages() -> None:
    tracker = OutageTracker(HORIZON_S)
    turns: list[Turn] = []
    for k in range(MAX_LISTED + 3):
        turns += [("a", 2.0 * k, 2.0 * k + 0.1, False), ("a", 2.0 * k + 0.5, 2.0 * k + 0.6, True)]
    tracker.merge_wire(_wire(turns))
    tracker.settle(T0 + 2.0 * (MAX_LISTED + 3) + 100)
    assert len(tracker.outages()["rest"]) == MAX_LISTED
    assert tracker.to_json(T0)[1] == {"rest": {"outages": MAX_LISTED + 3, "max_s": 0.0, "p50_s": 0.0}}


def test_events_never_settled_are_outages_already() -> None:
    tracker = OutageTracker(HORIZON_S)
    tracker.merge_wire(_wire([("a", 10.0, 10.1, False), ("a", 12.0, 12.2, True)]))
    assert not tracker.is_empty()
    assert tracker.to_json(T0) == (
        [
            {
                "transport": "rest",
                "start_s": 10.1,
                "end_s": 12.2,
                "duration_s": 2.1,
                "failed_turns": 1,
                "users": 1,
                "recovery_s": 0.0,
            }
        ],
        {"rest": {"outages": 1, "max_s": 0.0, "p50_s": 0.0}},
        [],
    )
    assert [o.transport for o in tracker.outages()["rest"]] == ["rest"]


def test_a_long_recovery_to_the_millisecond() -> None:
    # a stale connection kept failing turns for 1000.341503 s after the service was back (the top of its
    # histogram bucket: one more microsecond per second would read the next bucket, 1000.866 s)
    recovery = 1000.341503
    turns: list[Turn] = [
        ("a", 10.0, 10.1, False),
        ("b", 10.2, 10.3, False),
        ("a", 11.0, 12.0, True),  # back at 12 s
        ("b", 12.5, 12.0 + recovery, False),
        ("b", 1013.0, 1013.5, True),
    ]
    for settle_at in (None, 1100.0):  # still open to change, then settled
        tracker = OutageTracker(HORIZON_S)
        tracker.merge_wire(_wire(turns))
        if settle_at is not None:
            tracker.settle(T0 + settle_at)
            assert tracker.events.of("rest").failures == []
        outages, figures, _ = tracker.to_json(T0)
        assert [o["recovery_s"] for o in outages] == [1000.342]
        assert figures == {"rest": {"outages": 1, "max_s": 1000.342, "p50_s": 1000.342}}


def test_recovery_figures_keep_three_decimals() -> None:
    tracker = OutageTracker(HORIZON_S)
    tracker.merge_wire(
        _wire(
            [
                ("a", 10.0, 10.1, False),
                ("b", 10.2, 10.3, False),
                ("a", 11.0, 12.0, True),
                ("b", 12.5, 13.23456, False),
                ("b", 14.0, 14.5, True),
            ]
        )
    )
    assert tracker.to_json(T0)[1] == {"rest": {"outages": 1, "max_s": 1.235, "p50_s": 1.235}}


def test_a_settled_outage_leaves_no_events_behind() -> None:
    tracker = OutageTracker(HORIZON_S)
    tracker.merge_wire(_wire([("a", 10.0, 10.1, False), ("a", 11.0, 11.1, True)]))
    tracker.settle(T0 + 31.5)  # settles at 11.2 s: 11.5 s is a horizon ago
    events = tracker.events.of("rest")
    assert (events.failures, events.comebacks) == ([], [])
    assert not tracker.is_empty()  # the settled outage is still to report
    assert tracker.to_json(T0)[1] == {"rest": {"outages": 1, "max_s": 0.0, "p50_s": 0.0}}


def test_a_comeback_left_after_its_outage_settled_is_kept_in_order() -> None:
    tracker = OutageTracker(HORIZON_S)
    turns: list[Turn] = [
        ("a", 10.0, 10.1, False),
        ("b", 10.2, 10.3, False),
        ("a", 11.0, 11.2, True),  # the end
        ("c", 11.4, 11.5, False),  # sent after the end: a stale failure, in the outage
        ("d", 11.45, 11.55, False),
        ("b", 11.8, 12.0, True),  # all back
        ("c", 12.5, 16.0, True),  # c's comeback sent first, done last
        ("d", 13.0, 13.5, True),
    ]
    wire = _wire(turns)
    tracker.merge_wire(wire)
    tracker.settle(T0 + 40)
    assert tracker.events.of("rest").failures == []
    assert tracker.events.of("rest").comebacks == [(T0 + 13.0, T0 + 13.5, "d"), (T0 + 12.5, T0 + 16.0, "c")]
    tracker.settle(T0 + 41)  # nothing left to settle: the comebacks stay
    assert len(tracker.events.of("rest").comebacks) == 2
    outages, figures, _ = tracker.to_json(T0)
    assert outages == _one_look(wire)
    assert [(o["failed_turns"], o["users"], o["recovery_s"]) for o in outages] == [(4, 4, 0.35)]
    assert figures == {"rest": {"outages": 1, "max_s": 0.35, "p50_s": 0.35}}


def test_a_comeback_sent_before_an_outage_and_done_after_it_ends_it() -> None:
    # q's comeback ends the first outage; a stall (8 s) keeps it open until 11.5 s; r fails after everyone is
    # back, so a second outage starts at 9.5 s, and p's slow success (sent 4.2 s, done 20 s) ends it
    turns: list[Turn] = [
        ("q", 0.5, 0.6, False),
        ("a", 0.0, 8.0, False),
        ("q", 3.0, 3.5, True),
        ("p", 4.0, 4.1, False),
        ("x", 4.3, 4.4, False),
        ("p", 4.2, 20.0, True),
        ("x", 5.0, 5.5, True),
        ("a", 8.1, 8.2, True),
        ("r", 9.0, 9.5, False),
    ]
    wire = _wire(turns)
    tracker = OutageTracker(HORIZON_S)
    tracker.merge_wire(wire)
    tracker.settle(T0 + 32)
    assert tracker.events.of("rest").comebacks == [(T0 + 4.2, T0 + 20.0, "p")]
    outages = tracker.to_json(T0)[0]
    assert outages == _one_look(wire)
    assert [(o["start_s"], o["end_s"], o["failed_turns"]) for o in outages] == [(0.6, 3.5, 4), (9.5, 20.0, 1)]


def test_an_outage_settles_only_once_its_settle_time_is_more_than_a_horizon_old() -> None:
    first = _wire(
        [
            ("a", 10.0, 10.1, False),
            ("b", 10.2, 10.3, False),
            ("a", 11.0, 11.5, True),  # the end
            ("b", 13.5, 14.0, True),  # all back at 14 s: it settles at 14 s
        ]
    )
    # a stale failure done at 14 s exactly, reported a horizon later: still in the outage
    late = _wire([("d", 12.0, 14.0, False), ("d", 15.0, 15.5, True)])
    tracker = OutageTracker(HORIZON_S)
    tracker.merge_wire(first)
    tracker.settle(T0 + 20)
    tracker.settle(T0 + 34)  # 14 s is exactly a horizon ago: not yet
    tracker.merge_wire(late)
    tracker.settle(T0 + 34.5)
    tracker.settle(T0 + 60)
    outages, figures, _ = tracker.to_json(T0)
    assert outages == _one_look(first, late)
    assert [(o["failed_turns"], o["users"], o["recovery_s"]) for o in outages] == [(3, 3, 2.5)]
    assert figures == {"rest": {"outages": 1, "max_s": 2.5, "p50_s": 2.501}}


def test_the_longest_failed_turn_is_remembered_after_its_events_are_gone() -> None:
    first = _wire([("a", 0.0, 8.0, False), ("a", 9.0, 9.2, True)])  # an 8 s stall, settled and dropped
    tracker = OutageTracker(HORIZON_S)
    tracker.merge_wire(first)
    tracker.settle(T0 + 40)
    assert tracker.events.of("rest").is_empty()
    second = _wire([("b", 100.0, 100.1, False), ("b", 101.0, 101.2, True)])
    tracker.merge_wire(second)
    tracker.settle(T0 + 125)  # a turn sent before 101.2 s may still fail until 109.2 s: not settled
    stalled = _wire([("c", 101.0, 109.0, False), ("c", 110.0, 110.2, True)])  # reported 16 s after
    tracker.merge_wire(stalled)
    tracker.settle(T0 + 200)
    outages = tracker.to_json(T0)[0]
    assert outages == _one_look(first, second, stalled)
    assert [(o["start_s"], o["failed_turns"], o["users"]) for o in outages] == [(8.0, 1, 1), (100.1, 2, 2)]


def test_failures_a_horizon_old_are_folded_into_the_open_outage() -> None:
    tracker = OutageTracker(HORIZON_S)
    tracker.merge_wire(_wire([("u", k - 0.01, float(k), False) for k in range(1, 6)]))
    tracker.settle(T0 + 23)  # failures done by 3 s (exactly a horizon ago included) are folded
    assert [f[1] for f in tracker.events.of("rest").failures] == [T0 + 4.0, T0 + 5.0]
    (outage,), figures, _ = tracker.to_json(T0)
    assert (outage["start_s"], outage["end_s"], outage["failed_turns"], outage["users"]) == (1.0, None, 5, 1)
    assert figures == {"rest": {"outages": 1, "max_s": None, "p50_s": None}}  # still open: no recovery yet
    tracker.settle(T0 + 30)
    assert tracker.events.of("rest").failures == []
    assert tracker.to_json(T0)[0] == [outage]
